//! Reconnect recovery across nodes: positions counted in Redis, the window kept there, and
//! every node delivering a thread's messages in position order.

use super::harness::*;

/// A client of `node` identified as `login` that resumes `thread` from `since` in the same
/// write (nothing live can come between), then reads up to and including `resumed`.
async fn come_back(node: &Node, login: &str, id: &str, thread: u64, since: &Value) -> Vec<Value> {
    let auth = format!("Bearer {login}-token");
    let mut c = Client::connect(&node.url(), &[("authorization", auth.as_str())]).await;
    c.send(json!({"type": "user_connected", "userId": id}))
        .await;
    c.send(json!({"type": "join_thread", "threadId": thread, "since": since, "requestId": 5}))
        .await;
    let mut got = Vec::new();
    loop {
        let frame = c.recv_skip_presence().await;
        let last = frame["type"] == "resumed" || frame["type"] == "error";
        if frame["type"] != "ack" {
            got.push(frame);
        }
        if last {
            return got;
        }
    }
}

#[tokio::test]
async fn a_client_back_on_another_node_resumes_from_the_window_in_redis() {
    let (site, t) = site().await;
    let nodes = cluster(2, &site, &[]).await;
    let mut alice = nodes[0].user("alice", "2", t).await;
    let mut bob = nodes[1].user("bob", "3", t).await;
    alice
        .send(json!({"type": "send_message", "threadId": t, "message": "one"}))
        .await;
    let seen = recv_message(&mut bob, "one").await;
    assert_eq!(seen["position"]["offset"], 1, "counted in redis: {seen}");
    drop(bob);
    let mut sent = Vec::new();
    for text in ["two", "three"] {
        alice
            .send(json!({"type": "send_message", "threadId": t, "message": text}))
            .await;
        sent.push(recv_message(&mut alice, text).await);
    }
    let route = format!("/buddyboss/v1/messages/{t}");
    let site_reads = site.count("GET", &route);
    let got = come_back(&nodes[0], "bob", "3", t, &seen["position"]).await;
    assert_eq!(
        site.count("GET", &route),
        site_reads,
        "a window hit asks the site nothing"
    );
    let kinds: Vec<&str> = got.iter().filter_map(|f| f["type"].as_str()).collect();
    assert_eq!(
        kinds,
        ["joined", "message", "message", "resumed"],
        "{got:?}"
    );
    assert_eq!(got[1], sent[0], "the frame as delivered");
    assert_eq!(got[2], sent[1]);
    let resumed = &got[3];
    assert_eq!(
        (
            &resumed["source"],
            &resumed["complete"],
            &resumed["position"]
        ),
        (&json!("window"), &json!(true), &sent[1]["position"])
    );
    let ahead = json!({"offset": 99, "epoch": seen["position"]["epoch"]});
    let got = come_back(&nodes[1], "bob", "3", t, &ahead).await;
    assert_eq!(
        got.last().map(|f| f["code"].clone()),
        Some(json!("position_ahead"))
    );
    let (_, metrics) = http_get(nodes[0].addr, "/metrics", "").await;
    assert_eq!(
        crate::common::metric(&metrics, "bbrt_resumes_window_total"),
        Some(1.0)
    );
}

#[tokio::test]
async fn concurrent_senders_on_two_nodes_are_delivered_in_one_order_everywhere() {
    let (site, t) = site().await;
    let nodes = cluster(2, &site, &[]).await;
    let mut alice = nodes[0].user("alice", "2", t).await;
    let mut bob = nodes[1].user("bob", "3", t).await;
    let mut bob_too = nodes[0].user("bob", "3", t).await;
    const EACH: u64 = 15;
    for n in 0..EACH {
        alice
            .send(json!({"type": "send_message", "threadId": t, "message": format!("a{n}")}))
            .await;
        bob.send(json!({"type": "send_message", "threadId": t, "message": format!("b{n}")}))
            .await;
    }
    let mut orders = Vec::new();
    for c in [&mut alice, &mut bob, &mut bob_too] {
        let mut got = Vec::new();
        while got.len() < (2 * EACH) as usize {
            got.push(c.recv_type("message").await);
        }
        let offsets: Vec<u64> = got
            .iter()
            .map(|m| m["position"]["offset"].as_u64().expect("a position"))
            .collect();
        assert_eq!(
            offsets,
            (1..=2 * EACH).collect::<Vec<_>>(),
            "in order, once"
        );
        orders.push(got.iter().map(|m| m["id"].clone()).collect::<Vec<_>>());
    }
    assert!(orders.windows(2).all(|w| w[0] == w[1]), "{orders:?}");
}
