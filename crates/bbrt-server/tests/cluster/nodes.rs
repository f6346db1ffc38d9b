//! Nodes that share an id, die, stop gracefully or restart.

use super::harness::*;

#[tokio::test]
async fn two_processes_given_one_node_id_are_reported_and_keep_serving() {
    let (site, t) = site().await;
    let p = prefix();
    let nodes = [
        Node::start("same", SHARED_REDIS, &p, &site, &[]),
        Node::start("same", SHARED_REDIS, &p, &site, &[]),
    ];
    for n in &nodes {
        n.linked().await;
    }
    let mut alice = nodes[0].user("alice", "2", t).await;
    let mut bob = nodes[1].user("bob", "3", t).await;
    recv_about(&mut alice, "user_connected", "3").await;
    alice
        .send(json!({"type": "send_message", "threadId": t, "message": "still crosses"}))
        .await;
    recv_message(&mut bob, "still crosses").await;
    bob.send(json!({"type": "typing", "threadId": t})).await;
    assert_eq!(alice.recv_type("typing").await["userId"], "3");
    for n in &nodes {
        wait_for(|| async {
            let (status, body) = http_get(n.addr, "/readyz", "").await;
            status == 200 && body.contains("node id: conflict")
        })
        .await;
        let (_, ready) = http_get(n.addr, "/readyz", "").await;
        assert!(ready.contains("--node-id"), "names the fix: {ready}");
        let (_, metrics) = http_get(n.addr, "/metrics", "").await;
        assert!(metrics.contains("\nbbrt_node_id_conflict 1\n"), "{metrics}");
        let errors = n.errors();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("this node's id") && e.contains("--node-id")),
            "{errors:?}"
        );
    }
    // One of them leaves gracefully: the other's users no longer see its users, and the
    // conflict is over.
    let [first, second] = nodes;
    second.stop();
    recv_about(&mut alice, "user_disconnected", "3").await;
    wait_for(|| async {
        let (_, body) = http_get(first.addr, "/readyz", "").await;
        !body.contains("conflict")
    })
    .await;
}

#[tokio::test]
async fn a_killed_node_takes_its_users_offline_elsewhere() {
    let (site, t) = site().await;
    let mut nodes = cluster(2, &site, &[]).await;
    let mut alice = nodes[0].user("alice", "2", t).await;
    let _bob = nodes[1].user("bob", "3", t).await;
    recv_about(&mut alice, "user_connected", "3").await;
    // SIGKILL: no goodbye; n1 notices the expired heartbeat (3 × 200 ms).
    nodes.pop().expect("two nodes").kill();
    recv_about(&mut alice, "user_disconnected", "3").await;
    let (_, metrics) = http_get(nodes[0].addr, "/metrics", "").await;
    assert!(
        metrics.contains("bbrt_redis_nodes_down_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_node_stopping_gracefully_takes_its_users_offline_at_once() {
    let (site, t) = site().await;
    // A heartbeat TTL of 30 s: only the goodbye can tell alice in time.
    let mut nodes = cluster(2, &site, &["--redis-heartbeat", "10s"]).await;
    let mut alice = nodes[0].user("alice", "2", t).await;
    let mut bob = nodes[1].user("bob", "3", t).await;
    recv_about(&mut alice, "user_connected", "3").await;
    let stopping = Instant::now();
    nodes.pop().expect("two nodes").stop();
    assert_eq!(bob.closed().await, Some(1001));
    recv_about(&mut alice, "user_disconnected", "3").await;
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "offline only after {:?}: no goodbye",
        stopping.elapsed()
    );
}

#[tokio::test]
async fn a_restarted_node_leaves_no_ghosts() {
    let (site, t) = site().await;
    let p = prefix();
    // A heartbeat TTL (30 s) far beyond the test's patience: only the restart can tell.
    let slow = ["--redis-heartbeat", "10s", "--presence-snapshot", "60s"];
    let n1 = Node::start("n1", SHARED_REDIS, &p, &site, &slow);
    let n2 = Node::start("n2", SHARED_REDIS, &p, &site, &slow);
    n1.linked().await;
    n2.linked().await;
    let mut alice = n1.user("alice", "2", t).await;
    let _bob = n2.user("bob", "3", t).await;
    recv_about(&mut alice, "user_connected", "3").await;
    n2.kill();
    let n2 = Node::start("n2", SHARED_REDIS, &p, &site, &slow);
    n2.linked().await;
    recv_about(&mut alice, "user_disconnected", "3").await;
    // And the new n2 serves bob again.
    let _bob = n2.user("bob", "3", t).await;
    recv_about(&mut alice, "user_connected", "3").await;
}
