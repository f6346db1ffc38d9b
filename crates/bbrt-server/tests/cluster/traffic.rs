//! Messages, typing, presence and reads across nodes, and sends posted once across them.

use super::harness::*;

#[tokio::test]
async fn messages_typing_presence_and_reads_cross_two_nodes() {
    let (site, t) = site().await;
    let nodes = cluster(2, &site, &[]).await;
    let mut alice = nodes[0].user("alice", "2", t).await;
    let mut bob = nodes[1].user("bob", "3", t).await;

    // Presence: bob came online on n2, alice on n1 hears it.
    recv_about(&mut alice, "user_connected", "3").await;

    // Messages both ways, each delivered once.
    alice
        .send(json!({"type": "send_message", "threadId": t, "message": "from n1", "requestId": 1}))
        .await;
    let m = bob.recv_type("message").await;
    assert_eq!(
        (m["senderId"].as_str(), m["message"].as_str()),
        (Some("2"), Some("from n1"))
    );
    assert_eq!(alice.recv_type("message").await["message"], "from n1");
    bob.send(json!({"type": "send_message", "threadId": t, "message": "from n2"}))
        .await;
    assert_eq!(alice.recv_type("message").await["message"], "from n2");
    assert_eq!(bob.recv_type("message").await["message"], "from n2");

    // Typing and read receipts.
    bob.send(json!({"type": "typing", "threadId": t})).await;
    let typing = alice.recv_type("typing").await;
    assert_eq!(
        (typing["userId"].as_str(), typing["typing"].as_bool()),
        (Some("3"), Some(true))
    );
    alice
        .send(json!({"type": "mark_read", "threadId": t}))
        .await;
    let read = bob.recv_type("read").await;
    assert_eq!(
        (read["userId"].as_str(), read["threadId"].as_str()),
        (Some("2"), Some(t.to_string().as_str()))
    );

    // Nothing arrived twice.
    let rest = bob.kinds_within(Duration::from_millis(300)).await;
    assert!(!rest.contains(&"message".to_owned()), "{rest:?}");
    assert_eq!(site.messages(t).len(), 3);

    // bob leaves: alice hears it.
    drop(bob);
    recv_about(&mut alice, "user_disconnected", "3").await;
}

#[tokio::test]
async fn two_nodes_started_with_identical_flags_are_one_service() {
    // The operator's first try: the same flags on both, apart from the port (which is 0
    // here for both). Each process then picks a node id of its own.
    let (site, t) = site().await;
    let p = prefix();
    let nodes = [
        Node::start_unnamed("same-a", &p, &site, &[]),
        Node::start_unnamed("same-b", &p, &site, &[]),
    ];
    for n in &nodes {
        n.linked().await;
    }
    let mut alice = nodes[0].user("alice", "2", t).await;
    let mut bob = nodes[1].user("bob", "3", t).await;
    recv_about(&mut alice, "user_connected", "3").await;

    alice
        .send(json!({"type": "send_message", "threadId": t, "message": "a to b"}))
        .await;
    assert_eq!(recv_message(&mut bob, "a to b").await["senderId"], "2");
    bob.send(json!({"type": "send_message", "threadId": t, "message": "b to a"}))
        .await;
    assert_eq!(recv_message(&mut alice, "b to a").await["senderId"], "3");
    bob.send(json!({"type": "typing", "threadId": t})).await;
    assert_eq!(alice.recv_type("typing").await["userId"], "3");

    alice
        .send(
            json!({"type": "call_initiated", "recipientId": "3", "threadId": t, "requestId": "c"}),
        )
        .await;
    let call = alice.recv_type("ack").await["callId"]
        .as_str()
        .expect("a call id")
        .to_owned();
    // A short random node id prefixes it.
    let (node, counter) = call.rsplit_once('-').expect("<node>-<counter>");
    assert_eq!((node.len(), counter), (8, "1"), "{call}");
    assert_eq!(bob.recv_type("call_initiated").await["callId"], call);
    bob.send(json!({"type": "answer", "answer": {"sdp": "A"}, "recipientId": "2", "threadId": t, "callId": call}))
        .await;
    assert_eq!(alice.recv_type("answer").await["answer"]["sdp"], "A");

    drop(bob);
    recv_about(&mut alice, "user_disconnected", "3").await;
    for n in &nodes {
        let (_, ready) = http_get(n.addr, "/readyz", "").await;
        assert!(!ready.contains("conflict"), "{ready}");
        assert_eq!(n.errors(), Vec::<String>::new());
    }
}

#[tokio::test]
async fn a_retried_client_message_id_on_another_node_posts_once() {
    let (site, t) = site().await;
    let nodes = cluster(2, &site, &[]).await;
    let mut on1 = nodes[0].user("alice", "2", t).await;
    let mut on2 = nodes[1].user("alice", "2", t).await;
    let send = json!({"type": "send_message", "threadId": t, "message": "once", "clientMessageId": "cm-1"});
    on1.send(send.clone()).await;
    let first = on1.recv_type("ack").await;
    on2.send(send).await;
    let second = on2.recv_type("ack").await;
    assert_eq!(first["id"], second["id"], "{first} {second}");
    assert_eq!(
        site.messages(t)
            .iter()
            .filter(|m| m.stored.contains("once"))
            .count(),
        1
    );
}

/// With bbrt's plugin, a send whose node restarts while the site is still storing it is
/// stored once when the client retries it on the restarted node: the key is on the site.
#[tokio::test]
async fn with_the_plugin_a_send_cut_short_by_a_restart_is_stored_once() {
    let (site, t) = site().await;
    site.set_plugin(true);
    site.set_in_progress_wait(Duration::from_millis(100));
    let p = prefix();
    let n1 = Node::start("n1", SHARED_REDIS, &p, &site, &[]);
    n1.linked().await;
    let mut alice = n1.user("alice", "2", t).await;
    // The site claims the key, then takes 4 s to store it; the node restarts meanwhile.
    site.inject(Fault::SlowStore(Duration::from_secs(4)), 1);
    let send = json!({"type": "send_message", "threadId": t, "message": "across a restart",
                      "clientMessageId": "cm-restart", "requestId": 1});
    alice.send(send.clone()).await;
    wait_for(|| async { site.send_keys() == 1 }).await;
    drop(alice);
    n1.stop();
    let n1 = Node::start("n1", SHARED_REDIS, &p, &site, &[]);
    n1.linked().await;
    let mut alice = n1.user("alice", "2", t).await;
    let mut ack = None;
    for _ in 0..30 {
        alice.send(send.clone()).await;
        let v = loop {
            let v = alice.recv().await;
            if matches!(v["type"].as_str(), Some("ack" | "error")) {
                break v;
            }
        };
        if v["type"] == "ack" {
            ack = Some(v);
            break;
        }
        assert_eq!(v["retryable"], true, "{v}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ack = ack.expect("acked");
    let stored: Vec<_> = site
        .messages(t)
        .into_iter()
        .filter(|m| m.stored == "across a restart")
        .collect();
    assert_eq!(stored.len(), 1, "one copy");
    assert_eq!(ack["id"], stored[0].id.to_string());
    assert_eq!(site.count("POST", "/buddyboss/v1/messages"), 0);
    assert!(n1.errors().is_empty(), "{:?}", n1.errors());
}
