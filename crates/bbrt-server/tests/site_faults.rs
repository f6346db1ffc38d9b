//! Site faults through the fake BuddyBoss site, end to end: membership changes take effect
//! mid-conversation, retries and concurrent duplicates never post twice, a refusal is
//! `refused`, garbage from the site is `site_error`.

mod common;

use std::time::Duration;

use bbrt_buddyboss::fake::{FakeSite, Fault};
use common::{Client, Server, config};
use serde_json::json;

/// alice = 2, bob = 3, carol = 4; one thread with all three.
async fn setup() -> (FakeSite, Server, u64) {
    let site = FakeSite::start_seeded().await.expect("fake site");
    let (thread, _) = site.create_thread(2, &[3, 4], "the three of us");
    let mut cfg = config();
    cfg.buddyboss_url = Some(site.api_root());
    cfg.site_timeout = Duration::from_secs(1);
    cfg.site_probe_interval = Duration::from_secs(3600);
    let server = Server::start(cfg).await;
    common::site_probed(&server).await;
    (site, server, thread)
}

async fn joined(server: &Server, token: &str, thread: u64) -> Client {
    let auth = format!("Bearer {token}");
    let mut c = Client::connect(&server.url, &[("authorization", auth.as_str())]).await;
    c.send(json!({"type": "join_thread", "threadId": thread, "requestId": "j"}))
        .await;
    assert_eq!(c.recv_type("joined").await["requestId"], "j");
    c
}

#[tokio::test]
async fn a_user_removed_mid_conversation_stops_receiving_and_sending() {
    let (site, server, thread) = setup().await;
    let mut alice = joined(&server, "alice-token", thread).await;
    let mut bob = joined(&server, "bob-token", thread).await;
    let mut carol = joined(&server, "carol-token", thread).await;
    alice
        .send(json!({"type": "send_message", "threadId": thread, "message": "all three"}))
        .await;
    for c in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(c.recv_type("message").await["message"], "all three");
    }
    site.remove_from_thread(thread, 4);
    carol.send(json!({"type": "send_message", "threadId": thread, "message": "still here?", "requestId": 1})).await;
    let e = carol.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["requestId"].as_i64()),
        (Some("forbidden"), Some(1))
    );
    alice
        .send(json!({"type": "send_message", "threadId": thread, "message": "two of us"}))
        .await;
    assert_eq!(bob.recv_type("message").await["message"], "two of us");
    assert_eq!(alice.recv_type("message").await["message"], "two of us");
    carol
        .send(json!({"type": "typing", "threadId": thread, "requestId": 2}))
        .await;
    let e = carol.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["requestId"].as_i64()),
        (Some("forbidden"), Some(2))
    );
    let seen: Vec<_> = carol.drain(Duration::from_millis(300)).await;
    assert!(
        seen.iter()
            .all(|f| f["type"] != "message" && f["type"] != "typing"),
        "carol saw {seen:?}"
    );
    assert!(
        site.messages(thread)
            .iter()
            .all(|m| !m.stored.contains("still here?")),
        "nothing stored for carol"
    );
}

#[tokio::test]
async fn retries_and_concurrent_duplicates_post_once_even_when_the_post_times_out() {
    let (site, server, thread) = setup().await;
    let mut alice = joined(&server, "alice-token", thread).await;
    let before = site.messages(thread).len();
    site.clear_requests();
    // The site stores the message and never answers: bbrt must reconcile, not repost.
    site.inject(Fault::StoreThenHang, 1);
    let send = |request: i64| json!({"type": "send_message", "threadId": thread, "message": "exactly once", "clientMessageId": "c-1", "requestId": request});
    alice.send(send(1)).await;
    alice.send(send(2)).await;
    let mut acks = Vec::new();
    while acks.len() < 2 {
        let f = alice.recv_skip_presence().await;
        assert_ne!(f["type"], "error", "{f}");
        if f["type"] == "ack" {
            acks.push(f);
        }
    }
    assert_eq!(
        acks[0]["id"], acks[1]["id"],
        "both requests name the one stored message"
    );
    alice.send(send(3)).await;
    let retry = alice.recv_type("ack").await;
    assert_eq!(
        (retry["requestId"].as_i64(), &retry["id"]),
        (Some(3), &acks[0]["id"])
    );
    assert_eq!(
        site.messages(thread).len(),
        before + 1,
        "stored exactly once"
    );
    assert_eq!(
        site.count("POST", "/buddyboss/v1/messages"),
        1,
        "posted exactly once"
    );
}

#[tokio::test]
async fn a_refusal_is_refused_and_garbage_is_a_site_error() {
    let (site, server, thread) = setup().await;
    let mut alice = joined(&server, "alice-token", thread).await;
    alice.send(json!({"type": "send_message", "recipientId": "999", "message": "to nobody", "requestId": "r"})).await;
    let e = alice.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["retryable"].as_bool()),
        (Some("refused"), Some(false))
    );
    let (other, _) = site.create_thread(3, &[2], "bob writes");
    site.inject(Fault::NotJson, 1);
    alice
        .send(json!({"type": "join_thread", "threadId": other, "requestId": "g"}))
        .await;
    let e = alice.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["requestId"].as_str()),
        (Some("site_error"), Some("g"))
    );
    assert_eq!(e["retryable"], true);
    alice.send(json!({"type": "send_message", "threadId": thread, "message": "still works", "requestId": "w"})).await;
    assert_eq!(alice.recv_type("ack").await["requestId"], "w");
}
