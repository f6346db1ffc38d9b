//! The core flows with HttpBuddyBoss against the fake BuddyBoss site (a real HTTP server):
//! credentials, membership, site faults, and no ack before the site stored the message.

mod common;

use std::time::Duration;

use bbrt_buddyboss::fake::{FakeSite, Fault};
use common::{Client, Server, config};
use serde_json::json;

/// alice = 2, bob = 3, carol = 4 on the seeded site; thread between alice and bob.
async fn setup(tweak: impl FnOnce(&mut common::Config)) -> (FakeSite, Server, u64) {
    let site = FakeSite::start_seeded().await.expect("fake site");
    let (thread, _) = site.create_thread(2, &[3], "hello from the site");
    let mut cfg = config();
    cfg.buddyboss_url = Some(site.api_root());
    cfg.site_timeout = Duration::from_secs(1);
    // One probe, at start-up, before a test injects faults (which any request takes).
    cfg.site_probe_interval = Duration::from_secs(3600);
    tweak(&mut cfg);
    let server = Server::start(cfg).await;
    common::site_probed(&server).await;
    (site, server, thread)
}

async fn bearer(server: &Server, token: &str) -> Client {
    let auth = format!("Bearer {token}");
    Client::connect(&server.url, &[("authorization", auth.as_str())]).await
}

async fn joined(server: &Server, token: &str, user: &str, thread: u64) -> Client {
    let mut c = bearer(server, token).await;
    c.send(json!({"type": "user_connected", "userId": user, "requestId": "u"}))
        .await;
    assert_eq!(c.recv_type("ack").await["requestId"], "u");
    c.send(json!({"type": "join_thread", "threadId": thread}))
        .await;
    let j = c.recv_type("joined").await;
    assert_eq!(j["threadId"], thread.to_string());
    c
}

#[tokio::test]
async fn verified_users_chat_and_messages_are_stored_first() {
    let (site, server, thread) = setup(|_| {}).await;
    let mut alice = joined(&server, "alice-token", "2", thread).await;
    let mut bob = joined(&server, "bob-token", "3", thread).await;
    alice.send(json!({"type": "send_message", "threadId": thread, "message": "stored first", "requestId": 1})).await;
    let ack = alice.recv_type("ack").await;
    let stored = site.messages(thread);
    let last = stored.last().expect("a stored message");
    assert_eq!(
        ack["id"],
        last.id.to_string(),
        "the ack names the stored message"
    );
    assert_eq!(last.sender, 2);
    let m = bob.recv_type("message").await;
    assert_eq!(
        (m["senderId"].as_str(), m["message"].as_str()),
        (Some("2"), Some("stored first"))
    );
    assert_eq!(m["id"], last.id.to_string());
    bob.send(json!({"type": "typing", "threadId": thread}))
        .await;
    assert_eq!(alice.recv_type("typing").await["userId"], "3");
}

#[tokio::test]
async fn token_in_the_frame_as_the_seed_sends_it() {
    let (site, server, thread) = setup(|_| {}).await;
    let mut alice = server.client().await;
    alice.send(json!({"type": "send_message", "recipientId": "3", "threadId": thread, "message": "seed style", "token": "alice-token"})).await;
    let m = alice.recv_type("message").await;
    assert_eq!(m["senderId"], "2");
    assert!(site.messages(thread).iter().any(|x| x.sender == 2));
}

#[tokio::test]
async fn a_bad_credential_is_refused() {
    let (_site, server, _) = setup(|_| {}).await;
    let mut c = server.client().await;
    c.send(
        json!({"type": "user_connected", "userId": "2", "token": "not-a-token", "requestId": 1}),
    )
    .await;
    let e = c.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["requestId"].as_i64()),
        (Some("unauthenticated"), Some(1))
    );
    // A bare userId is not enough for a real site.
    c.send(json!({"type": "user_connected", "userId": "2", "requestId": 2}))
        .await;
    assert_eq!(c.recv_type("error").await["code"], "unauthenticated");
}

#[tokio::test]
async fn a_non_member_cannot_join_or_type() {
    let (_site, server, thread) = setup(|_| {}).await;
    let mut carol = bearer(&server, "carol-token").await;
    carol
        .send(json!({"type": "user_connected", "userId": "4"}))
        .await;
    carol
        .send(json!({"type": "join_thread", "threadId": thread, "requestId": 1}))
        .await;
    let e = carol.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["requestId"].as_i64()),
        (Some("forbidden"), Some(1))
    );
    carol
        .send(json!({"type": "typing", "threadId": thread, "requestId": 2}))
        .await;
    assert_eq!(carol.recv_type("error").await["code"], "forbidden");
}

#[tokio::test]
async fn site_down_answers_site_unavailable() {
    let (site, server, thread) = setup(|_| {}).await;
    let mut alice = joined(&server, "alice-token", "2", thread).await;
    let before = site.messages(thread).len();
    site.inject(Fault::ServerError, 1);
    alice
        .send(
            json!({"type": "send_message", "threadId": thread, "message": "lost?", "requestId": 5}),
        )
        .await;
    let e = alice.recv_type("error").await;
    // A 500 may come after the site stored it: unknown, not "not stored".
    assert_eq!(
        (e["code"].as_str(), e["retryable"].as_bool()),
        (Some("send_unconfirmed"), Some(true)),
        "{e}"
    );
    assert_eq!(site.messages(thread).len(), before);
    let unreachable = {
        let mut cfg = config();
        cfg.buddyboss_url = Some("http://127.0.0.1:9/wp-json/".into());
        cfg.site_timeout = Duration::from_secs(1);
        Server::start(cfg).await
    };
    let mut c = Client::connect(&unreachable.url, &[("authorization", "Bearer alice-token")]).await;
    c.send(json!({"type": "user_connected", "userId": "2", "requestId": 1}))
        .await;
    assert_eq!(c.recv_type("error").await["code"], "site_unavailable");
}

#[tokio::test]
async fn no_ack_and_no_message_when_the_post_hangs() {
    let (site, server, thread) = setup(|_| {}).await;
    let mut alice = joined(&server, "alice-token", "2", thread).await;
    let mut bob = joined(&server, "bob-token", "3", thread).await;
    site.inject(Fault::Hang, 1);
    alice.send(json!({"type": "send_message", "threadId": thread, "message": "never stored", "requestId": 9})).await;
    let e = alice.recv_type("error").await;
    assert_eq!(e["requestId"], 9);
    assert!(
        site.messages(thread)
            .iter()
            .all(|m| m.stored != "never stored")
    );
    let kinds = bob.kinds_within(Duration::from_millis(200)).await;
    assert!(!kinds.contains(&"message".to_owned()), "{kinds:?}");
}

#[tokio::test]
async fn a_slow_site_does_not_slow_other_connections() {
    let (site, server, thread) = setup(|_| {}).await;
    let mut alice = joined(&server, "alice-token", "2", thread).await;
    let mut bob = joined(&server, "bob-token", "3", thread).await;
    site.set_latency(Duration::from_millis(700));
    alice
        .send(
            json!({"type": "send_message", "threadId": thread, "message": "slow", "requestId": 1}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    bob.send(json!({"type": "ping", "requestId": "p"})).await;
    let first = bob.recv_skip_presence().await;
    assert_eq!(
        first["type"], "pong",
        "bob is answered while alice's send waits for the site"
    );
    assert_eq!(bob.recv_type("message").await["message"], "slow");
    site.set_latency(Duration::ZERO);
}

#[tokio::test]
async fn a_revoked_credential_closes_its_connections_4001() {
    let (site, server, thread) = setup(|c| c.credential_ttl = Duration::from_millis(600)).await;
    let mut alice = joined(&server, "alice-token", "2", thread).await;
    let mut bob = joined(&server, "bob-token", "3", thread).await;
    site.revoke("alice-token");
    assert_eq!(alice.closed().await, Some(4001));
    bob.send(json!({"type": "ping"})).await;
    assert_eq!(
        bob.recv_skip_presence().await["type"],
        "pong",
        "bob is not affected"
    );
}

/// Waits (bounded) until the site holds a message with this stored text.
async fn until_stored(site: &FakeSite, thread: u64, text: &str) {
    for _ in 0..200 {
        if site.messages(thread).iter().any(|m| m.stored == text) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the site never stored {text:?}");
}

/// The real site's two fault cases (issue 15): a write that outlives bbrt's timeout and
/// is stored afterwards, and a site paused for longer than the timeout. The client is told
/// `send_unconfirmed`, never "not stored"; its retry with the same `clientMessageId` finds
/// the message instead of posting a second copy.
#[tokio::test]
async fn a_write_stored_after_the_timeout_is_unconfirmed_and_the_retry_finds_it() {
    for (case, text) in [("slow write", "slow write"), ("paused site", "paused site")] {
        let (site, server, thread) = setup(|_| {}).await;
        let mut alice = joined(&server, "alice-token", "2", thread).await;
        let mut bob = joined(&server, "bob-token", "3", thread).await;
        match case {
            "slow write" => site.inject(Fault::Slow(Duration::from_secs(3)), 1),
            // Longer than the POST, the reconcile delay and the reads with their retries.
            _ => site.pause(Duration::from_secs(8)),
        }
        let send = json!({"type": "send_message", "threadId": thread, "message": text,
                          "clientMessageId": "c-1", "requestId": 1});
        alice.send(send.clone()).await;
        let e = alice.recv_type("error").await;
        assert_eq!(
            (
                e["code"].as_str(),
                e["retryable"].as_bool(),
                e["requestId"].as_i64()
            ),
            (Some("send_unconfirmed"), Some(true), Some(1)),
            "{case}: {e}"
        );
        assert!(
            !e["message"].as_str().unwrap_or("").contains("not stored"),
            "{e}"
        );
        until_stored(&site, thread, text).await;

        alice.send(send).await;
        let m = alice.recv_type("message").await;
        let ack = alice.recv_type("ack").await;
        let stored: Vec<_> = site
            .messages(thread)
            .into_iter()
            .filter(|m| m.stored == text)
            .collect();
        assert_eq!(stored.len(), 1, "{case}: one copy");
        assert_eq!(ack["id"], stored[0].id.to_string(), "{case}");
        assert_eq!(m["id"], stored[0].id.to_string(), "{case}");
        assert_eq!(bob.recv_type("message").await["message"], text, "{case}");
        assert_eq!(site.count("POST", "/buddyboss/v1/messages"), 1, "{case}");
    }
}

#[tokio::test]
async fn a_reused_client_message_id_with_other_text_is_a_conflict() {
    let (site, server, thread) = setup(|_| {}).await;
    let mut alice = joined(&server, "alice-token", "2", thread).await;
    alice
        .send(
            json!({"type": "send_message", "threadId": thread, "message": "first",
                      "clientMessageId": "c-1", "requestId": 1}),
        )
        .await;
    assert_eq!(alice.recv_type("ack").await["requestId"], 1);
    alice
        .send(
            json!({"type": "send_message", "threadId": thread, "message": "second",
                      "clientMessageId": "c-1", "requestId": 2}),
        )
        .await;
    let e = alice.recv_type("error").await;
    assert_eq!(
        (
            e["code"].as_str(),
            e["retryable"].as_bool(),
            e["requestId"].as_i64()
        ),
        (Some("idempotency_conflict"), Some(false), Some(2)),
        "{e}"
    );
    assert!(site.messages(thread).iter().all(|m| m.stored != "second"));
}

#[tokio::test]
async fn a_credential_presented_while_the_site_is_down_is_verified_once_it_is_back() {
    let (site, server, thread) = setup(|_| {}).await;
    // The verify and its two read retries.
    site.inject(Fault::ServerError, 3);
    let mut alice = bearer(&server, "alice-token").await;
    alice.send(json!({"type": "ping", "requestId": "p"})).await;
    assert_eq!(alice.recv_type("pong").await["requestId"], "p");
    alice
        .send(json!({"type": "join_thread", "threadId": thread, "requestId": 1}))
        .await;
    let e = alice.recv_type("error").await;
    assert_eq!(
        (
            e["code"].as_str(),
            e["retryable"].as_bool(),
            e["requestId"].as_i64()
        ),
        (Some("site_unavailable"), Some(true), Some(1)),
        "{e}"
    );
    // The retry (within a second or so) verifies the kept credential.
    let mut identified = false;
    for attempt in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        alice
            .send(json!({"type": "user_connected", "userId": "2", "requestId": attempt}))
            .await;
        let answer = alice.recv_skip_presence().await;
        if answer["type"] == "ack" {
            identified = true;
            break;
        }
        assert_eq!(
            answer["code"], "site_unavailable",
            "never anonymous: {answer}"
        );
    }
    assert!(identified, "the kept credential was verified again");
    alice
        .send(json!({"type": "join_thread", "threadId": thread, "requestId": "j"}))
        .await;
    assert_eq!(alice.recv_type("joined").await["requestId"], "j");
}

#[tokio::test]
async fn a_fresh_token_replaces_the_first_which_may_then_expire() {
    let (site, server, thread) = setup(|c| c.credential_ttl = Duration::from_millis(600)).await;
    site.add_bearer(2, "alice-token-2");
    let mut alice = joined(&server, "alice-token", "2", thread).await;
    alice
        .send(json!({"type": "user_connected", "userId": "2", "token": "alice-token-2", "requestId": "b"}))
        .await;
    assert_eq!(alice.recv_type("ack").await["requestId"], "b");
    assert_eq!(
        server.handle.credentials_held(),
        1,
        "the first one is released"
    );
    site.revoke("alice-token");
    // Past two re-verification periods: the connection acts with the second token.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    alice
        .send(json!({"type": "send_message", "threadId": thread, "message": "still here", "requestId": 2}))
        .await;
    assert_eq!(alice.recv_type("ack").await["requestId"], 2);
    assert!(
        site.messages(thread)
            .iter()
            .any(|m| m.stored == "still here")
    );
}

#[tokio::test]
async fn the_outer_deadline_does_not_cut_reconciliation_short() {
    // An --api-timeout shorter than the POST's timeout, the reconcile delay and the read:
    // the executor's deadline is derived from those steps instead.
    let (site, server, thread) = setup(|c| c.api_timeout = Duration::from_millis(1500)).await;
    let mut alice = joined(&server, "alice-token", "2", thread).await;
    site.inject(Fault::StoreThenHang, 1);
    alice
        .send(
            json!({"type": "send_message", "threadId": thread, "message": "landed",
                     "clientMessageId": "c-5", "requestId": 5}),
        )
        .await;
    let answer = alice.recv_skip_presence().await;
    assert_eq!(
        answer["type"], "message",
        "reconciled, not cut short: {answer}"
    );
    let ack = alice.recv_type("ack").await;
    let stored: Vec<_> = site
        .messages(thread)
        .into_iter()
        .filter(|m| m.stored == "landed")
        .collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(ack["id"], stored[0].id.to_string());
}

/// The error that answers `frame` on `c`: (code, message).
async fn error_for(c: &mut Client, frame: serde_json::Value) -> (String, String) {
    c.send(frame).await;
    let e = c.recv_type("error").await;
    let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
    (text("code"), text("message"))
}

#[tokio::test]
async fn clients_read_one_plain_text_per_code_never_the_sites() {
    use bbrt_protocol::wire::ErrorCode;
    let (site, server, thread) =
        setup(|c| c.auth_scheme = bbrt_server::config::AuthSchemeArg::Basic).await;
    // Every unauthenticated cause, on anonymous connections: an unknown username (the site
    // answers `invalid_username` in HTML), a wrong password (`incorrect_password`), no
    // credential at all, a frame before identifying, and a credential already refused.
    let mut causes = Vec::new();
    for token in ["nobody:whatever", "alice:wrong-app-pass"] {
        let mut c = server.client().await;
        let frame = json!({"type": "user_connected", "userId": "2", "token": token});
        causes.push(error_for(&mut c, frame.clone()).await);
        causes.push(error_for(&mut c, frame).await);
    }
    let mut c = server.client().await;
    causes.push(error_for(&mut c, json!({"type": "user_connected", "userId": "2"})).await);
    let frame = json!({"type": "join_thread", "threadId": thread});
    causes.push(error_for(&mut c, frame).await);
    let unauthenticated = ErrorCode::Unauthenticated;
    for (code, message) in &causes {
        assert_eq!(
            (code.as_str(), message.as_str()),
            (unauthenticated.as_str(), unauthenticated.message()),
            "one wording for every cause: {causes:?}"
        );
    }

    // The site's other refusals and failures: its HTML or its words never reach clients.
    let mut carol = server.client().await;
    let identify = json!({"type": "user_connected", "userId": "4", "token": "carol:carol-app-pass", "requestId": 1});
    carol.send(identify).await;
    assert_eq!(carol.recv_type("ack").await["requestId"], 1);
    let frame = json!({"type": "join_thread", "threadId": thread});
    let forbidden = error_for(&mut carol, frame).await;
    let (other, _) = site.create_thread(4, &[3], "carol writes");
    site.inject(Fault::NotJson, 1);
    let frame = json!({"type": "join_thread", "threadId": other});
    let garbage = error_for(&mut carol, frame).await;
    let unreachable = {
        let mut cfg = config();
        cfg.buddyboss_url = Some("http://127.0.0.1:9/wp-json/".into());
        cfg.site_timeout = Duration::from_secs(1);
        Server::start(cfg).await
    };
    let mut c = Client::connect(&unreachable.url, &[("authorization", "Bearer alice-token")]).await;
    let refused = error_for(&mut c, json!({"type": "user_connected", "userId": "2"})).await;
    for ((code, message), expected) in [
        (&forbidden, ErrorCode::Forbidden),
        (&garbage, ErrorCode::SiteError),
        (&refused, ErrorCode::SiteUnavailable),
    ] {
        assert_eq!(
            (code.as_str(), message.as_str()),
            (expected.as_str(), expected.message())
        );
    }
    for (_, message) in causes.iter().chain([&forbidden, &garbage, &refused]) {
        for site_word in [
            "<", "Unknown", "username", "password", "Sorry", "tcp", "os error",
        ] {
            assert!(
                !message.contains(site_word),
                "{message:?} says {site_word:?}"
            );
        }
    }
}

/// [`setup`] on a site with bbrt's companion plugin, seen by the start-up probe.
async fn setup_with_plugin(tweak: impl FnOnce(&mut common::Config)) -> (FakeSite, Server, u64) {
    let site = FakeSite::start_seeded().await.expect("fake site");
    site.set_plugin(true);
    site.set_in_progress_wait(Duration::from_millis(100));
    let (thread, _) = site.create_thread(2, &[3], "hello from the site");
    let mut cfg = config();
    cfg.buddyboss_url = Some(site.api_root());
    cfg.site_timeout = Duration::from_secs(1);
    cfg.site_probe_interval = Duration::from_secs(3600);
    tweak(&mut cfg);
    let server = Server::start(cfg).await;
    common::site_probed(&server).await;
    (site, server, thread)
}

/// Sends `frame` until it is acked (bounded), as a client retrying with the same
/// `clientMessageId` does after `send_unconfirmed`; the ack.
async fn until_acked(c: &mut Client, frame: &serde_json::Value) -> serde_json::Value {
    for _ in 0..30 {
        c.send(frame.clone()).await;
        loop {
            let v = c.recv().await;
            match v["type"].as_str() {
                Some("ack") => return v,
                Some("error") => {
                    assert_eq!(v["retryable"], true, "{v}");
                    break;
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("never acked");
}

/// With the plugin, a write slower than bbrt's timeout is posted again with its key: the
/// site answers the stored message, so one copy is stored and no thread is read.
#[tokio::test]
async fn with_the_plugin_a_slow_write_past_the_timeout_is_stored_once() {
    let (site, server, thread) = setup_with_plugin(|_| {}).await;
    let mut alice = joined(&server, "alice-token", "2", thread).await;
    let thread_reads = site.count("GET", &format!("/buddyboss/v1/messages/{thread}"));
    // The site claims the key, then takes 3 s to store (bbrt gives it 1 s).
    site.inject(Fault::SlowStore(Duration::from_secs(3)), 1);
    let send = json!({"type": "send_message", "threadId": thread, "message": "slow write",
                      "clientMessageId": "c-slow", "requestId": 1});
    let ack = until_acked(&mut alice, &send).await;
    let stored: Vec<_> = site
        .messages(thread)
        .into_iter()
        .filter(|m| m.stored == "slow write")
        .collect();
    assert_eq!(stored.len(), 1, "one copy");
    assert_eq!(ack["id"], stored[0].id.to_string());
    assert_eq!(site.count("POST", "/buddyboss/v1/messages"), 0);
    assert!(
        site.count("POST", "/bbrt/v1/messages") >= 2,
        "posted again with the key"
    );
    assert_eq!(
        site.count("GET", &format!("/buddyboss/v1/messages/{thread}")),
        thread_reads,
        "no reconciliation read"
    );
}

/// With the plugin, a text the site rewrites (kses) whose answer is lost is answered by
/// its key on the retry: one copy, found by id, not by text.
#[tokio::test]
async fn with_the_plugin_a_rewritten_text_whose_answer_was_lost_is_stored_once() {
    let (site, server, thread) = setup_with_plugin(|_| {}).await;
    let mut alice = joined(&server, "alice-token", "2", thread).await;
    site.inject(Fault::StoreThenHang, 1);
    let text = "if a < b and c > d";
    let send = json!({"type": "send_message", "threadId": thread, "message": text,
                      "clientMessageId": "c-kses", "requestId": 1});
    let ack = until_acked(&mut alice, &send).await;
    let messages = site.messages(thread);
    assert_eq!(messages.len(), 2, "one copy: {messages:?}");
    assert_eq!(messages[1].stored, "if a <b> d</b>", "the site rewrote it");
    assert_eq!(ack["id"], messages[1].id.to_string());
    assert_eq!(site.count("POST", "/buddyboss/v1/messages"), 0);
    assert_eq!(site.send_keys(), 1);
}

/// The key lives on the site: a server that forgot the send (restarted, no Redis) still
/// gets the stored message for the same text and `idempotency_conflict` for another.
#[tokio::test]
async fn with_the_plugin_a_restarted_server_without_redis_still_stores_once() {
    let (site, server, thread) = setup_with_plugin(|_| {}).await;
    let mut alice = joined(&server, "alice-token", "2", thread).await;
    let send = json!({"type": "send_message", "threadId": thread, "message": "before",
                      "clientMessageId": "c-r", "requestId": 1});
    let first = until_acked(&mut alice, &send).await;
    drop(alice);
    let Server { handle, .. } = server;
    handle.shutdown();
    handle.wait().await.expect("stopped cleanly");
    let mut cfg = config();
    cfg.buddyboss_url = Some(site.api_root());
    cfg.site_probe_interval = Duration::from_secs(3600);
    let server = Server::start(cfg).await;
    common::site_probed(&server).await;
    let mut alice = joined(&server, "alice-token", "2", thread).await;
    // Other text first: only the site knows the key now.
    alice
        .send(
            json!({"type": "send_message", "threadId": thread, "message": "other",
                     "clientMessageId": "c-r", "requestId": 2}),
        )
        .await;
    let e = alice.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["retryable"].as_bool()),
        (Some("idempotency_conflict"), Some(false)),
        "{e}"
    );
    let again = until_acked(&mut alice, &send).await;
    assert_eq!(first["id"], again["id"]);
    assert_eq!(site.messages(thread).len(), 2, "one copy, nothing else");
}
