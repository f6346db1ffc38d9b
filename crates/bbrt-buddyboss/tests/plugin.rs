//! HttpBuddyBoss with bbrt's companion plugin on the fake site: sends go to
//! `bbrt/v1/messages` with a key and are stored exactly once however they are retried.

mod common;

use std::time::Duration;

use bbrt_buddyboss::fake::{FakeSite, Fault};
use bbrt_buddyboss::{BuddyBoss, Credential, HttpBuddyBoss, SendRequest};
use bbrt_protocol::api::SiteErrorKind;
use bbrt_protocol::ids::ClientMessageId;
use common::{client_at, seeded, thread, user};

/// The client timeout in tests where the site is slower than it: long enough that a
/// loaded machine does not time out a request that was answered.
const TIMEOUT: Duration = Duration::from_secs(1);

fn alice() -> Credential {
    Credential::basic("alice:alice-app-pass")
}

fn key(k: &str) -> ClientMessageId {
    ClientMessageId::new(k).expect("valid key")
}

/// A site with the plugin, a thread of alice and bob, and a client that has probed it.
async fn with_plugin(timeout: Duration) -> (FakeSite, HttpBuddyBoss, u64) {
    let site = seeded().await;
    site.set_plugin(true);
    let bb = client_at(&site.api_root(), |c| c.request_timeout = timeout);
    bb.probe().await.expect("the site is healthy");
    let (t, _) = site.create_thread(2, &[3], "hello");
    (site, bb, t)
}

async fn send(
    bb: &HttpBuddyBoss,
    t: u64,
    text: &str,
    k: Option<&ClientMessageId>,
    unconfirmed_since: Option<i64>,
) -> Result<bbrt_protocol::api::StoredMessage, bbrt_buddyboss::BuddyBossError> {
    bb.send(&SendRequest {
        client_message_id: k,
        unconfirmed_since,
        ..SendRequest::reply(Some(&alice()), &user("2"), &thread(&t.to_string()), text)
    })
    .await
}

fn posted_keys(site: &FakeSite) -> Vec<String> {
    site.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.route == "/bbrt/v1/messages")
        .map(|r| {
            r.body.as_ref().expect("a body")["client_message_id"]
                .as_str()
                .expect("a key")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn sends_go_to_the_plugin_with_the_clients_key_or_a_random_one() {
    let (site, bb, t) = with_plugin(Duration::from_secs(20)).await;
    let stored = send(&bb, t, "keyed", Some(&key("k-1")), None)
        .await
        .expect("stored");
    assert_eq!(stored.sender, user("2"));
    assert_eq!(stored.text, "keyed");
    send(&bb, t, "unkeyed one", None, None)
        .await
        .expect("stored");
    send(&bb, t, "unkeyed two", None, None)
        .await
        .expect("stored");
    assert_eq!(site.count("POST", "/buddyboss/v1/messages"), 0);
    let keys = posted_keys(&site);
    assert_eq!(keys[0], "k-1");
    for generated in &keys[1..] {
        assert!(
            generated.starts_with("bbrt-") && generated.len() == 37,
            "{generated}"
        );
    }
    assert_ne!(keys[1], keys[2], "a fresh key per send");
    // No sender_id, ever.
    assert!(
        site.requests()
            .iter()
            .all(|r| r.body.as_ref().is_none_or(|b| b.get("sender_id").is_none()))
    );
    assert_eq!(site.messages(t).len(), 4);
}

#[tokio::test]
async fn the_same_key_answers_the_stored_message_and_other_text_conflicts() {
    let (site, bb, t) = with_plugin(Duration::from_secs(20)).await;
    let first = send(&bb, t, "once", Some(&key("k-2")), None)
        .await
        .expect("stored");
    let again = send(&bb, t, "once", Some(&key("k-2")), None)
        .await
        .expect("answered");
    assert_eq!(first.id, again.id);
    let e = send(&bb, t, "other", Some(&key("k-2")), None)
        .await
        .expect_err("conflict");
    assert_eq!(
        (e.kind(), e.code()),
        (SiteErrorKind::IdempotencyConflict, "idempotency_conflict")
    );
    assert!(!e.retryable());
    assert_eq!(site.messages(t).len(), 2, "one message stored");
}

#[tokio::test]
async fn a_slow_write_past_the_timeout_is_retried_with_its_key_and_stored_once() {
    // The request is slow before the site claims the key (Slow), then slow after the
    // claim and before the INSERT (SlowStore): the retries wait, then get the message.
    for fault in [Fault::Slow(TIMEOUT * 2), Fault::SlowStore(TIMEOUT * 2)] {
        let (site, bb, t) = with_plugin(TIMEOUT).await;
        site.set_in_progress_wait(Duration::from_millis(100));
        site.inject(fault, 1);
        let stored = send(&bb, t, "slow one", Some(&key("k-slow")), None)
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: stored, got {e}"));
        // Let the slow request finish too.
        tokio::time::sleep(TIMEOUT * 2).await;
        let messages = site.messages(t);
        assert_eq!(messages.len(), 2, "{fault:?}: one copy: {messages:?}");
        assert_eq!(stored.id.as_str(), messages[1].id.to_string());
        assert!(site.count("POST", "/bbrt/v1/messages") >= 2, "{fault:?}");
        assert_eq!(site.count("GET", &format!("/buddyboss/v1/messages/{t}")), 0);
        assert_eq!(site.send_keys(), 1);
    }
}

#[tokio::test]
async fn a_key_still_in_progress_is_unconfirmed_and_its_retry_gets_the_message() {
    let (site, bb, t) = with_plugin(Duration::from_secs(20)).await;
    site.set_in_progress_wait(Duration::from_millis(50));
    // The first attempt hangs after claiming; every retry finds the key pending.
    site.inject(Fault::SlowStore(Duration::from_secs(4)), 1);
    let bb_short = client_at(&site.api_root(), |c| {
        c.request_timeout = TIMEOUT;
        c.keyed_send_attempts = 2;
        c.max_retry_after = Duration::from_millis(100);
    });
    bb_short.probe().await.expect("healthy");
    let e = send(&bb_short, t, "pending", Some(&key("k-p")), None)
        .await
        .expect_err("not known yet");
    assert_eq!(
        (e.kind(), e.code()),
        (SiteErrorKind::Unconfirmed, "send_unconfirmed")
    );
    for _ in 0..100 {
        if site.messages(t).len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored = send(&bb, t, "pending", Some(&key("k-p")), Some(0))
        .await
        .expect("the stored message");
    let messages = site.messages(t);
    assert_eq!(messages.len(), 2, "one copy: {messages:?}");
    assert_eq!(stored.id.as_str(), messages[1].id.to_string());
}

#[tokio::test]
async fn a_text_the_site_rewrote_is_found_by_its_id() {
    let (site, bb, t) = with_plugin(Duration::from_secs(20)).await;
    let sent = "if a < b and c > d";
    let stored = send(&bb, t, sent, Some(&key("k-kses")), None)
        .await
        .expect("stored");
    let again = send(&bb, t, sent, Some(&key("k-kses")), None)
        .await
        .expect("answered");
    assert_eq!(stored.id, again.id);
    assert_ne!(stored.text, sent, "the site rewrote it");
    assert_eq!(site.messages(t).len(), 2);
}

#[tokio::test]
async fn a_key_store_that_is_down_is_retried_and_5xx_too() {
    let (site, bb, t) = with_plugin(Duration::from_secs(20)).await;
    site.inject(Fault::KeyStoreDown, 1);
    site.inject(Fault::ServerError, 1);
    let stored = send(&bb, t, "eventually", Some(&key("k-down")), None)
        .await
        .expect("stored on the third attempt");
    assert_eq!(site.count("POST", "/bbrt/v1/messages"), 3);
    assert_eq!(site.messages(t).len(), 2);
    assert_eq!(stored.text, "eventually");
    // Down on every attempt and nothing could have been stored: not unconfirmed.
    site.inject(Fault::KeyStoreDown, 3);
    let e = send(&bb, t, "never", Some(&key("k-down-2")), None)
        .await
        .expect_err("unavailable");
    assert_eq!(
        (e.kind(), e.code()),
        (SiteErrorKind::Unavailable, "bbrt_store_unavailable")
    );
}

#[tokio::test]
async fn a_plugin_that_went_away_falls_back_and_one_that_came_is_found() {
    let (site, bb, t) = with_plugin(Duration::from_secs(20)).await;
    site.set_plugin(false);
    send(&bb, t, "fallback", Some(&key("k-f")), None)
        .await
        .expect("stored through BuddyBoss's route");
    assert_eq!(site.count("POST", "/bbrt/v1/messages"), 1);
    assert_eq!(site.count("POST", "/buddyboss/v1/messages"), 1);
    // Known absent now: no more tries of the plugin's route.
    send(&bb, t, "fallback 2", None, None)
        .await
        .expect("stored");
    assert_eq!(site.count("POST", "/bbrt/v1/messages"), 1);
    // The plugin comes back; the next probe sees it.
    site.set_plugin(true);
    bb.probe().await.expect("healthy");
    send(&bb, t, "keyed again", Some(&key("k-g")), None)
        .await
        .expect("stored");
    assert_eq!(site.count("POST", "/bbrt/v1/messages"), 2);
    assert_eq!(site.messages(t).len(), 4);
}

#[tokio::test]
async fn without_a_probe_the_first_send_reads_the_index() {
    let site = seeded().await;
    site.set_plugin(true);
    let bb = client_at(&site.api_root(), |_| {});
    let (t, _) = site.create_thread(2, &[3], "hello");
    send(&bb, t, "first", None, None).await.expect("stored");
    assert_eq!(site.count("GET", "/"), 1);
    assert_eq!(site.count("POST", "/bbrt/v1/messages"), 1);
    send(&bb, t, "second", None, None).await.expect("stored");
    assert_eq!(site.count("GET", "/"), 1, "remembered");
}

#[tokio::test]
async fn the_namespace_without_the_send_route_is_not_the_plugin() {
    // The plugin with its sends feature off still has `bbrt/v1` (its ticket route).
    let site = seeded().await;
    site.set_namespaces(&["oembed/1.0", "buddyboss/v1", "wp/v2", "bbrt/v1"]);
    let bb = client_at(&site.api_root(), |_| {});
    bb.probe().await.expect("healthy");
    let (t, _) = site.create_thread(2, &[3], "hello");
    send(&bb, t, "plain", Some(&key("k-n")), None)
        .await
        .expect("stored");
    assert_eq!(site.count("POST", "/bbrt/v1/messages"), 0);
    assert_eq!(site.count("POST", "/buddyboss/v1/messages"), 1);
}
