//! HttpBuddyBoss against the fake BuddyBoss site, over real TCP.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bbrt_buddyboss::fake::Fault;
use bbrt_buddyboss::{BuddyBoss, BuddyBossError, Credential, SendRequest};
use bbrt_protocol::api::SiteErrorKind;
use common::{client, client_at, seeded, thread, user};

/// The client timeout in tests that make the site hang: long enough that a loaded
/// machine does not time out a request that was answered.
const HANG_TIMEOUT: Duration = Duration::from_secs(1);

fn alice() -> Credential {
    Credential::bearer("alice-token")
}

fn bob() -> Credential {
    Credential::bearer("bob-token")
}

fn carol() -> Credential {
    Credential::bearer("carol-token")
}

fn kind_code(e: &BuddyBossError) -> (SiteErrorKind, &str) {
    (e.kind(), e.code())
}

#[tokio::test]
async fn verify_with_each_auth_scheme() {
    let site = seeded().await;
    let bb = client(&site);
    for (credential, scheme) in [
        (Credential::bearer("alice-token"), "bearer"),
        (Credential::basic("alice:alice-app-pass"), "basic"),
        (
            Credential::basic("alice@example.test:alice-app-pass"),
            "basic",
        ),
        (Credential::access_token("alice-jwt"), "access-token"),
        (
            Credential::cookie("wordpress_logged_in=alice", "alice-nonce"),
            "cookie-nonce",
        ),
    ] {
        let me = bb
            .verify(Some(&credential), None, None)
            .await
            .expect("verified");
        assert_eq!(me.id, user("2"));
        assert_eq!(me.name, "Alice Anderson");
        assert!(
            me.avatar
                .as_deref()
                .is_some_and(|a| a.ends_with("profile-avatar-buddyboss-50.png"))
        );
        let last = site.requests().pop().expect("a request was made");
        assert_eq!(
            (last.method.as_str(), last.route.as_str()),
            ("GET", "/wp/v2/users/me")
        );
        assert_eq!(last.auth.as_deref(), Some(scheme));
    }
}

#[tokio::test]
async fn verify_maps_wordpress_auth_errors() {
    let site = seeded().await;
    let bb = client(&site);
    let err = |c: Credential| {
        let bb = &bb;
        async move { bb.verify(Some(&c), None, None).await.expect_err("rejected") }
    };
    let e = err(Credential::bearer("nobody-token")).await;
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Unauthenticated, "rest_not_logged_in")
    );
    let e = err(Credential::basic("alice:wrong")).await;
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Unauthenticated, "incorrect_password")
    );
    assert_eq!(
        e.message(),
        "The provided password is an invalid application password."
    );
    let e = err(Credential::basic("nobody:x")).await;
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Unauthenticated, "invalid_username")
    );
    let e = err(Credential::cookie("wordpress_logged_in=alice", "stale")).await;
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Unauthenticated, "rest_cookie_invalid_nonce")
    );
    let before = site.requests().len();
    let e = bb
        .verify(None, Some(&user("2")), None)
        .await
        .expect_err("no credential");
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Unauthenticated, "missing_credential")
    );
    assert_eq!(
        site.requests().len(),
        before,
        "no request without a credential"
    );
}

#[tokio::test]
async fn verify_cache_positive_negative_and_revocation() {
    let site = seeded().await;
    let bb = client(&site);
    let me = |c: &Credential| {
        let (bb, c) = (&bb, c.clone());
        async move { bb.verify(Some(&c), None, None).await }
    };
    me(&alice()).await.expect("verified");
    me(&alice()).await.expect("verified from cache");
    assert_eq!(
        site.count("GET", "/wp/v2/users/me"),
        1,
        "the second verify is cached"
    );

    let bad = Credential::basic("alice:wrong");
    me(&bad).await.expect_err("rejected");
    me(&bad).await.expect_err("rejected from cache");
    assert_eq!(
        site.count("GET", "/wp/v2/users/me"),
        2,
        "401s are cached too"
    );

    // A revoked credential is noticed at the next site call, which evicts the cache.
    site.revoke("alice-token");
    me(&alice()).await.expect("still cached");
    let (t, _) = site.create_thread(2, &[3], "hi");
    let e = bb
        .participants(Some(&alice()), &user("2"), &thread(&t.to_string()), false)
        .await
        .expect_err("revoked");
    assert_eq!(e.kind(), SiteErrorKind::Unauthenticated);
    let e = me(&alice()).await.expect_err("revoked");
    assert_eq!(e.code(), "rest_not_logged_in");
    assert_eq!(site.count("GET", "/wp/v2/users/me"), 3);

    // forget() drops a cached result on request.
    me(&bob()).await.expect("verified");
    site.revoke("bob-token");
    bb.forget(&bob());
    me(&bob()).await.expect_err("revoked");
}

#[tokio::test]
async fn verify_cache_ttls_are_configurable_and_unavailable_is_never_cached() {
    let site = seeded().await;
    let bb = client_at(&site.api_root(), |c| {
        c.verify_negative_ttl = Duration::ZERO;
        c.read_retries = 0;
    });
    let bad = Credential::basic("alice:wrong");
    bb.verify(Some(&bad), None, None)
        .await
        .expect_err("rejected");
    bb.verify(Some(&bad), None, None)
        .await
        .expect_err("rejected");
    assert_eq!(
        site.count("GET", "/wp/v2/users/me"),
        2,
        "a zero negative TTL caches nothing"
    );

    site.inject(Fault::ServerError, 1);
    let e = bb
        .verify(Some(&alice()), None, None)
        .await
        .expect_err("site down");
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Unavailable, "internal_server_error")
    );
    bb.verify(Some(&alice()), None, None)
        .await
        .expect("site back, not cached");
    assert_eq!(site.count("GET", "/wp/v2/users/me"), 4);
}

#[tokio::test]
async fn participants_and_membership() {
    let site = seeded().await;
    let bb = client(&site);
    let (t, m) = site.create_thread(2, &[3], "Hi Bob, this is Alice.");
    let tid = thread(&t.to_string());
    let info = bb
        .participants(Some(&bob()), &user("3"), &tid, true)
        .await
        .expect("bob is in");
    assert_eq!(info.participants, vec![user("2"), user("3")]);
    assert_eq!(
        info.last_message.map(|m| m.to_string()),
        Some(m.to_string())
    );

    let e = bb
        .participants(Some(&carol()), &user("4"), &tid, true)
        .await
        .expect_err("carol is not");
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Forbidden, "bp_rest_authorization_required")
    );
    assert_eq!(
        e.message(),
        "Sorry, you are not allowed to see this thread."
    );
    let e = bb
        .participants(Some(&alice()), &user("2"), &thread("99999"), false)
        .await
        .expect_err("no thread");
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Forbidden, "bp_rest_authorization_required")
    );

    // An admin (bp_moderate) may read the thread, but is not a participant.
    site.set_moderator(1, true);
    let e = bb
        .participants(
            Some(&Credential::bearer("admin-token")),
            &user("1"),
            &tid,
            true,
        )
        .await
        .expect_err("moderator");
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Forbidden, "not_a_participant")
    );

    site.remove_from_thread(t, 3);
    let e = bb
        .participants(Some(&bob()), &user("3"), &tid, false)
        .await
        .expect_err("bob was removed");
    assert_eq!(e.kind(), SiteErrorKind::Forbidden);

    let e = bb
        .participants(None, &user("2"), &tid, false)
        .await
        .expect_err("no credential");
    assert_eq!(e.code(), "missing_credential");
}

#[tokio::test]
async fn non_numeric_ids_are_invalid_without_a_request() {
    let site = seeded().await;
    let bb = client(&site);
    let e = bb
        .participants(Some(&alice()), &user("2"), &thread("THREAD_ID"), true)
        .await
        .expect_err("bad id");
    assert_eq!(kind_code(&e), (SiteErrorKind::InvalidId, "invalid_id"));
    let e = bb
        .send_unkeyed(&SendRequest::reply(
            Some(&alice()),
            &user("2"),
            &thread("THREAD_ID"),
            "hi",
        ))
        .await
        .expect_err("bad id");
    assert_eq!(e.code(), "invalid_id");
    let e = bb
        .send_unkeyed(&SendRequest::new_thread(
            Some(&alice()),
            &user("2"),
            &[user("RECIPIENT_ID")],
            "hi",
        ))
        .await
        .expect_err("bad id");
    assert_eq!(e.code(), "invalid_id");
    let e = bb
        .send_unkeyed(&SendRequest::new_thread(
            Some(&alice()),
            &user("USER_ID"),
            &[user("3")],
            "hi",
        ))
        .await
        .expect_err("bad id");
    assert_eq!(e.code(), "invalid_id");
    let e = bb
        .mark_read(Some(&alice()), &user("2"), &thread("0"))
        .await
        .expect_err("bad id");
    assert_eq!(e.code(), "invalid_id");
    let e = bb
        .find_recent(
            &SendRequest::reply(Some(&alice()), &user("2"), &thread("x"), "hi"),
            0,
        )
        .await
        .expect_err("bad id");
    assert_eq!(e.code(), "invalid_id");
    assert!(site.requests().is_empty(), "no request for an invalid id");
}

#[tokio::test]
async fn send_reply_and_new_threads() {
    let site = seeded().await;
    let bb = client(&site);
    // A new thread alice → bob.
    let first = bb
        .send_unkeyed(&SendRequest::new_thread(
            Some(&alice()),
            &user("2"),
            &[user("3")],
            "Hi Bob, this is Alice.",
        ))
        .await
        .expect("stored");
    assert_eq!(first.sender, user("2"));
    assert_eq!(first.text, "Hi Bob, this is Alice.");
    assert_eq!(first.html.as_deref(), Some("<p>Hi Bob, this is Alice.</p>"));
    assert!(
        first.sent_at.ends_with('Z') && first.sent_at.len() == 20,
        "{}",
        first.sent_at
    );
    assert_eq!(first.participants, vec![user("2"), user("3")]);
    let t: u64 = first.thread.as_str().parse().expect("numeric thread id");
    assert_eq!(site.messages(t).len(), 1);

    // A reply from bob, with characters kses turns into entities.
    let reply = bb
        .send_unkeyed(&SendRequest::reply(
            Some(&bob()),
            &user("3"),
            &first.thread,
            "a & c > d 'q' \"dq\"",
        ))
        .await
        .expect("stored");
    assert_eq!(reply.thread, first.thread);
    assert_eq!(reply.text, "a & c > d 'q' \"dq\"");
    assert_ne!(reply.id, first.id);
    assert_eq!(
        site.messages(t).last().map(|m| m.stored.clone()).as_deref(),
        Some("a &amp; c &gt; d 'q' \"dq\"")
    );

    // A `<` opens a tag for kses, up to the next `>`: the site keeps `<b>` (issue 15).
    let rewritten = bb
        .send_unkeyed(&SendRequest::reply(
            Some(&bob()),
            &user("3"),
            &first.thread,
            "if a < b and c > d",
        ))
        .await
        .expect("found although the site rewrote it");
    assert_eq!(
        site.messages(t).last().map(|m| m.stored.clone()).as_deref(),
        Some("if a <b> d</b>")
    );
    assert_eq!(rewritten.text, "if a  d", "what the site kept");

    // Tags are stripped by the site: the plain text is what the site kept.
    let tagged = bb
        .send_unkeyed(&SendRequest::reply(
            Some(&alice()),
            &user("2"),
            &first.thread,
            "<b>bold</b> move",
        ))
        .await
        .expect("stored");
    assert_eq!(tagged.text, "bold move");
    assert_eq!(tagged.html.as_deref(), Some("<p><b>bold</b> move</p>"));

    // A "new thread" to the same pair appends to the existing one, as BuddyBoss does.
    let again = bb
        .send_unkeyed(&SendRequest::new_thread(
            Some(&alice()),
            &user("2"),
            &[user("3")],
            "Does this open a new thread?",
        ))
        .await
        .expect("stored");
    assert_eq!(again.thread, first.thread);

    // A group thread is new.
    let trio = bb
        .send_unkeyed(&SendRequest::new_thread(
            Some(&alice()),
            &user("2"),
            &[user("3"), user("4")],
            "Hi Bob and Carol.",
        ))
        .await
        .expect("stored");
    assert_ne!(trio.thread, first.thread);
    assert_eq!(trio.participants, vec![user("2"), user("3"), user("4")]);

    // bbrt never sends sender_id; replies carry only id and message.
    for r in site.requests().iter().filter(|r| r.method == "POST") {
        let body = r.body.as_ref().expect("a JSON body");
        assert!(body.get("sender_id").is_none(), "{body}");
    }
    let reply_body = site
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .nth(1)
        .and_then(|r| r.body.clone());
    assert_eq!(
        reply_body,
        Some(serde_json::json!({ "id": t, "message": "a & c > d 'q' \"dq\"" }))
    );
}

#[tokio::test]
async fn identical_texts_resolve_to_the_newest_message() {
    let site = seeded().await;
    let bb = client(&site);
    let one = bb
        .send_unkeyed(&SendRequest::new_thread(
            Some(&alice()),
            &user("2"),
            &[user("3")],
            "ok",
        ))
        .await
        .expect("stored");
    let two = bb
        .send_unkeyed(&SendRequest::reply(
            Some(&alice()),
            &user("2"),
            &one.thread,
            "ok",
        ))
        .await
        .expect("stored");
    let _bob = bb
        .send_unkeyed(&SendRequest::reply(
            Some(&bob()),
            &user("3"),
            &one.thread,
            "ok",
        ))
        .await
        .expect("stored");
    let three = bb
        .send_unkeyed(&SendRequest::reply(
            Some(&alice()),
            &user("2"),
            &one.thread,
            "ok",
        ))
        .await
        .expect("stored");
    assert!(one.id < two.id && two.id < three.id);
    let ids: Vec<u64> = [&one, &two, &three]
        .iter()
        .map(|m| m.id.as_str().parse().expect("numeric"))
        .collect();
    assert_eq!(ids, vec![1, 2, 4]);
}

#[tokio::test]
async fn send_errors_map_by_code() {
    let site = seeded().await;
    let bb = client(&site);
    let (t, _) = site.create_thread(2, &[3], "hello");
    let tid = thread(&t.to_string());
    let e = bb
        .send_unkeyed(&SendRequest::reply(
            Some(&carol()),
            &user("4"),
            &tid,
            "Carol intruding.",
        ))
        .await
        .expect_err("not a participant");
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Forbidden, "bp_rest_authorization_required")
    );
    assert_eq!(
        e.message(),
        "Sorry, you are not allowed to perform this action."
    );
    let e = bb
        .send_unkeyed(&SendRequest::reply(Some(&alice()), &user("2"), &tid, ""))
        .await
        .expect_err("empty");
    assert_eq!(
        kind_code(&e),
        (
            SiteErrorKind::EmptyMessage,
            "bp_rest_messages_empty_message"
        )
    );
    let e = bb
        .send_unkeyed(&SendRequest::new_thread(
            Some(&alice()),
            &user("2"),
            &[],
            "hi",
        ))
        .await
        .expect_err("no recipients");
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Invalid, "bp_rest_empty_recipients")
    );
    let e = bb
        .send_unkeyed(&SendRequest::new_thread(
            Some(&alice()),
            &user("2"),
            &[user("999")],
            "to nobody",
        ))
        .await
        .expect_err("unknown recipient");
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Refused, "bp_rest_messages_create_failed")
    );
    assert!(!e.retryable());
    let e = bb
        .send_unkeyed(&SendRequest::reply(
            Some(&Credential::bearer("nobody")),
            &user("2"),
            &tid,
            "hi",
        ))
        .await
        .expect_err("anonymous");
    assert_eq!(
        kind_code(&e),
        (
            SiteErrorKind::Unauthenticated,
            "bp_rest_authorization_required"
        )
    );
    assert_eq!(
        e.message(),
        "Sorry, you need to be logged in to create a message."
    );
    assert_eq!(
        site.count("GET", &format!("/buddyboss/v1/messages/{t}")),
        0,
        "known outcomes are not reconciled"
    );
    assert_eq!(site.messages(t).len(), 1);
}

#[tokio::test]
async fn application_password_trap_is_a_refusal() {
    let site = seeded().await;
    let bb = client(&site);
    site.set_app_password_trap(true);
    let app = Credential::basic("alice:alice-app-pass");
    bb.verify(Some(&app), None, None)
        .await
        .expect("users/me works");
    let e = bb
        .send_unkeyed(&SendRequest::new_thread(
            Some(&app),
            &user("2"),
            &[user("3")],
            "hi",
        ))
        .await
        .expect_err("trap");
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Refused, "bp_rest_messages_create_failed")
    );
    // A reply, as the real site answered it without the fix.
    let (t, _) = site.create_thread(2, &[3], "hello");
    let e = bb
        .send_unkeyed(&SendRequest::reply(
            Some(&app),
            &user("2"),
            &thread(&t.to_string()),
            "hi",
        ))
        .await
        .expect_err("trap");
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Forbidden, "bp_rest_authorization_required")
    );
}

#[tokio::test]
async fn reads_are_retried_writes_are_not() {
    let site = seeded().await;
    let bb = client(&site);
    let (t, _) = site.create_thread(2, &[3], "hello");
    let tid = thread(&t.to_string());
    let route = format!("/buddyboss/v1/messages/{t}");

    site.inject(Fault::ServerError, 2);
    bb.participants(Some(&alice()), &user("2"), &tid, false)
        .await
        .expect("third attempt works");
    assert_eq!(site.count("GET", &route), 3);

    site.inject(Fault::ServerError, 3);
    let e = bb
        .participants(Some(&alice()), &user("2"), &tid, false)
        .await
        .expect_err("retries exhausted");
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Unavailable, "internal_server_error")
    );
    assert_eq!(site.count("GET", &route), 6, "1 + 2 retries");

    // A POST answered 500 is not retried: the thread is read to reconcile, and the message
    // is not there, so the send is reported unconfirmed (retryable).
    site.inject(Fault::ServerError, 1);
    let e = bb
        .send_unkeyed(&SendRequest::reply(
            Some(&alice()),
            &user("2"),
            &tid,
            "lost",
        ))
        .await
        .expect_err("not stored");
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Unconfirmed, "send_unconfirmed")
    );
    assert!(e.retryable());
    assert_eq!(
        site.count("POST", "/buddyboss/v1/messages"),
        1,
        "the POST is never retried"
    );
    assert_eq!(site.count("GET", &route), 7, "one reconciliation read");
    assert_eq!(site.messages(t).len(), 1);

    // A 4xx read is not retried.
    let e = bb
        .participants(Some(&carol()), &user("4"), &tid, false)
        .await
        .expect_err("forbidden");
    assert_eq!(e.kind(), SiteErrorKind::Forbidden);
    assert_eq!(site.count("GET", &route), 8);
}

#[tokio::test]
async fn a_post_that_stores_then_times_out_is_reconciled() {
    let site = seeded().await;
    let bb = client_at(&site.api_root(), |c| c.request_timeout = HANG_TIMEOUT);
    let (t, _) = site.create_thread(2, &[3], "hello");
    let tid = thread(&t.to_string());
    site.inject(Fault::StoreThenHang, 1);
    let stored = bb
        .send_unkeyed(&SendRequest::reply(
            Some(&alice()),
            &user("2"),
            &tid,
            "did it land?",
        ))
        .await
        .expect("reconciled");
    let messages = site.messages(t);
    let landed: Vec<_> = messages
        .iter()
        .filter(|m| m.stored == "did it land?")
        .collect();
    assert_eq!(landed.len(), 1, "exactly one stored message");
    assert_eq!(stored.id.as_str(), landed[0].id.to_string());
    assert_eq!(stored.thread, tid);
    assert_eq!(stored.text, "did it land?");
    assert_eq!(site.count("POST", "/buddyboss/v1/messages"), 1);
    assert_eq!(site.count("GET", &format!("/buddyboss/v1/messages/{t}")), 1);
}

#[tokio::test]
async fn a_new_thread_post_that_stores_then_times_out_is_reconciled() {
    let site = seeded().await;
    let bb = client_at(&site.api_root(), |c| c.request_timeout = HANG_TIMEOUT);
    site.create_thread(2, &[4], "an older thread with carol");
    site.inject(Fault::StoreThenHang, 1);
    let stored = bb
        .send_unkeyed(&SendRequest::new_thread(
            Some(&alice()),
            &user("2"),
            &[user("3")],
            "first words",
        ))
        .await
        .expect("reconciled");
    let t: u64 = stored.thread.as_str().parse().expect("numeric");
    assert_eq!(site.participants(t), vec![2, 3]);
    assert_eq!(site.messages(t).len(), 1);
    let list = site
        .requests()
        .into_iter()
        .find(|r| r.method == "GET" && r.route == "/buddyboss/v1/messages")
        .expect("listed");
    assert!(list.query.contains(&("box".into(), "sentbox".into())));
}

#[tokio::test]
async fn a_post_whose_answer_is_garbage_is_reconciled() {
    let site = seeded().await;
    let bb = client(&site);
    let (t, _) = site.create_thread(2, &[3], "hello");
    let tid = thread(&t.to_string());
    site.inject(Fault::Truncated, 1);
    let stored = bb
        .send_unkeyed(&SendRequest::reply(
            Some(&alice()),
            &user("2"),
            &tid,
            "half an answer",
        ))
        .await
        .expect("reconciled");
    assert_eq!(stored.text, "half an answer");
    site.inject(Fault::NotJson, 1);
    bb.send_unkeyed(&SendRequest::reply(
        Some(&alice()),
        &user("2"),
        &tid,
        "html answer",
    ))
    .await
    .expect("reconciled");
    site.inject(Fault::CutOff, 1);
    let cut = bb
        .send_unkeyed(&SendRequest::reply(
            Some(&alice()),
            &user("2"),
            &tid,
            "cut off",
        ))
        .await
        .expect("reconciled");
    assert_eq!(cut.text, "cut off");
    assert_eq!(site.messages(t).len(), 4);
    assert_eq!(site.count("POST", "/buddyboss/v1/messages"), 3);
    assert_eq!(
        site.count("GET", &format!("/buddyboss/v1/messages/{t}")),
        3,
        "one reconciliation read each"
    );

    // A read cut off is unavailable (and retried).
    site.inject(Fault::CutOff, 3);
    let e = bb
        .participants(Some(&alice()), &user("2"), &tid, false)
        .await
        .expect_err("cut off thrice");
    assert_eq!(kind_code(&e), (SiteErrorKind::Unavailable, "transport"));
}

#[tokio::test]
async fn a_post_that_hangs_without_storing_is_unconfirmed() {
    let site = seeded().await;
    let bb = client_at(&site.api_root(), |c| c.request_timeout = HANG_TIMEOUT);
    let (t, _) = site.create_thread(2, &[3], "hello");
    site.inject(Fault::Hang, 1);
    let e = bb
        .send_unkeyed(&SendRequest::reply(
            Some(&alice()),
            &user("2"),
            &thread(&t.to_string()),
            "never",
        ))
        .await
        .expect_err("lost");
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Unconfirmed, "send_unconfirmed")
    );
    assert!(e.message().contains("timeout"), "{e}");
    assert_eq!(site.messages(t).len(), 1);
}

#[tokio::test]
async fn timeouts_connection_refused_and_garbage() {
    let site = seeded().await;
    let bb = client_at(&site.api_root(), |c| {
        c.request_timeout = HANG_TIMEOUT;
        c.read_retries = 1;
    });
    let (t, _) = site.create_thread(2, &[3], "hello");
    let tid = thread(&t.to_string());

    site.inject(Fault::Hang, 1);
    bb.participants(Some(&alice()), &user("2"), &tid, false)
        .await
        .expect("the retry answers");
    site.inject(Fault::Hang, 2);
    let e = bb
        .participants(Some(&alice()), &user("2"), &tid, false)
        .await
        .expect_err("hangs twice");
    assert_eq!(kind_code(&e), (SiteErrorKind::Unavailable, "timeout"));

    site.inject(Fault::NotJson, 1);
    let e = bb
        .participants(Some(&alice()), &user("2"), &tid, false)
        .await
        .expect_err("html");
    assert_eq!(kind_code(&e), (SiteErrorKind::Protocol, "bad_response"));
    site.inject(Fault::Truncated, 1);
    let e = bb
        .verify(Some(&alice()), None, None)
        .await
        .expect_err("truncated");
    assert_eq!(kind_code(&e), (SiteErrorKind::Protocol, "bad_response"));
    bb.verify(Some(&alice()), None, None)
        .await
        .expect("a protocol error is not cached");

    // Nothing listens on a port we just released.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let dead = client_at(&format!("http://127.0.0.1:{port}/wp-json/"), |c| {
        c.read_retries = 1
    });
    let e = dead
        .verify(Some(&alice()), None, None)
        .await
        .expect_err("refused");
    assert_eq!(kind_code(&e), (SiteErrorKind::Unavailable, "connect"));
    let e = dead
        .send_unkeyed(&SendRequest::reply(Some(&alice()), &user("2"), &tid, "hi"))
        .await
        .expect_err("refused");
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Unavailable, "connect"),
        "a POST that never left needs no reconciliation"
    );
}

#[tokio::test]
async fn undocumented_routes_are_protocol_errors() {
    let site = seeded().await;
    let bb = client_at(&format!("{}wrong/", site.api_root()), |_| {});
    let e = bb
        .verify(Some(&alice()), None, None)
        .await
        .expect_err("no route");
    assert_eq!(kind_code(&e), (SiteErrorKind::Protocol, "rest_no_route"));
}

#[tokio::test]
async fn concurrent_requests_are_capped() {
    let site = Arc::new(seeded().await);
    let (t, _) = site.create_thread(2, &[3, 4], "hello");
    site.set_latency(Duration::from_millis(100));
    for cap in [1, 2] {
        let bb = Arc::new(client_at(&site.api_root(), |c| {
            c.max_concurrent_requests = cap
        }));
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let bb = Arc::clone(&bb);
                tokio::spawn(async move {
                    bb.participants(Some(&alice()), &user("2"), &thread(&t.to_string()), false)
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task ran").expect("participants");
        }
        assert!(
            site.max_in_flight() <= cap,
            "cap {cap}: {} in flight",
            site.max_in_flight()
        );
    }
    assert!(site.max_in_flight() >= 1);
}

#[tokio::test]
async fn both_api_root_forms_work() {
    let site = seeded().await;
    for root in [site.api_root(), site.query_api_root()] {
        let bb = client_at(&root, |_| {});
        let me = bb
            .verify(Some(&alice()), None, None)
            .await
            .expect("verified");
        assert_eq!(me.id, user("2"));
        let stored = bb
            .send_unkeyed(&SendRequest::new_thread(
                Some(&alice()),
                &user("2"),
                &[user("3")],
                "via any root",
            ))
            .await
            .expect("stored");
        let info = bb
            .participants(Some(&bob()), &user("3"), &stored.thread, false)
            .await
            .expect("bob is in");
        assert_eq!(info.last_message, Some(stored.id.clone()));
        bb.mark_read(Some(&bob()), &user("3"), &stored.thread)
            .await
            .expect("read");
    }
    let forms: Vec<String> = site.requests().into_iter().map(|r| r.form).collect();
    assert_eq!(forms.iter().filter(|f| *f == "wp-json").count(), 4);
    assert_eq!(forms.iter().filter(|f| *f == "rest_route").count(), 4);
}

#[tokio::test]
async fn mark_read_clears_the_readers_unread_count() {
    let site = seeded().await;
    let bb = client(&site);
    let (t, _) = site.create_thread(2, &[3], "hello");
    site.post_message(t, 2, "again");
    assert_eq!(site.unread(t, 3), Some(2));
    let tid = thread(&t.to_string());
    bb.mark_read(Some(&bob()), &user("3"), &tid)
        .await
        .expect("read");
    assert_eq!(site.unread(t, 3), Some(0));
    let post = site.requests().pop().expect("a request");
    assert_eq!(post.route, format!("/buddyboss/v1/messages/action/{t}"));
    assert_eq!(
        post.body,
        Some(serde_json::json!({ "action": "unread", "value": false }))
    );
    let e = bb
        .mark_read(Some(&carol()), &user("4"), &tid)
        .await
        .expect_err("not a participant");
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Forbidden, "bp_rest_authorization_required")
    );
}

#[tokio::test]
async fn find_recent_respects_sender_text_and_time() {
    let site = seeded().await;
    let bb = client(&site);
    let (t, m) = site.create_thread(2, &[3], "a &amp; b");
    let tid = thread(&t.to_string());
    let found = bb
        .find_recent(
            &SendRequest::reply(Some(&bob()), &user("2"), &tid, "a & b"),
            0,
        )
        .await
        .expect("read");
    assert_eq!(found.map(|f| f.id.to_string()), Some(m.to_string()));
    let none = bb
        .find_recent(
            &SendRequest::reply(Some(&bob()), &user("3"), &tid, "a & b"),
            0,
        )
        .await
        .expect("read");
    assert!(none.is_none(), "another sender");
    let none = bb
        .find_recent(
            &SendRequest::reply(Some(&bob()), &user("2"), &tid, "a & c"),
            0,
        )
        .await
        .expect("read");
    assert!(none.is_none(), "another text");
    let none = bb
        .find_recent(
            &SendRequest::reply(Some(&bob()), &user("2"), &tid, "a & b"),
            i64::MAX,
        )
        .await
        .expect("read");
    assert!(none.is_none(), "too old");
}

#[tokio::test]
async fn perform_runs_the_hubs_requests() {
    use bbrt_buddyboss::perform;
    use bbrt_protocol::api::{ApiRequest, ApiResponse};
    use bbrt_protocol::ids::CredentialId;

    let site = seeded().await;
    let bb = client(&site);
    let verify = ApiRequest::Verify {
        credential: Some(CredentialId(1)),
        claimed_user: Some(user("2")),
        current_user: None,
    };
    let Ok(ApiResponse::User(me)) = perform(&bb, &verify, Some(&alice())).await else {
        panic!("verified")
    };
    assert_eq!(me.id, user("2"));
    let e = perform(&bb, &verify, None)
        .await
        .expect_err("the executor had no credential");
    assert_eq!(
        (e.kind, e.code.as_str()),
        (SiteErrorKind::Unauthenticated, "missing_credential")
    );

    let send = ApiRequest::Send {
        credential: Some(CredentialId(1)),
        sender: user("2"),
        thread: None,
        recipients: vec![user("3")],
        text: "through perform".into(),
        client_message_id: None,
        unconfirmed_since: None,
    };
    let Ok(ApiResponse::Stored(m)) = perform(&bb, &send, Some(&alice())).await else {
        panic!("stored")
    };
    assert_eq!(m.text, "through perform");
    let read = ApiRequest::MarkRead {
        credential: Some(CredentialId(2)),
        user: user("3"),
        thread: m.thread.clone(),
    };
    assert_eq!(
        perform(&bb, &read, Some(&bob())).await,
        Ok(ApiResponse::MarkedRead)
    );
    let join = ApiRequest::Participants {
        credential: Some(CredentialId(3)),
        user: user("4"),
        thread: m.thread,
        join: true,
    };
    let e = perform(&bb, &join, Some(&carol()))
        .await
        .expect_err("carol is not in");
    assert_eq!(e.kind, SiteErrorKind::Forbidden);
}

/// Waits (bounded) until the fake site holds `n` messages in `t`.
async fn until_stored(site: &bbrt_buddyboss::fake::FakeSite, t: u64, n: usize) {
    for _ in 0..200 {
        if site.messages(t).len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the site never stored message {n} of thread {t}");
}

#[tokio::test]
async fn a_slow_write_past_the_timeout_is_unconfirmed_and_its_retry_finds_it() {
    // The real site took 13 s over a write that bbrt gave 10 s: PHP stored it afterwards.
    let site = seeded().await;
    let bb = client_at(&site.api_root(), |c| c.request_timeout = HANG_TIMEOUT);
    let (t, _) = site.create_thread(2, &[3], "hello");
    let tid = thread(&t.to_string());
    site.inject(Fault::Slow(HANG_TIMEOUT * 3), 1);
    let e = bb
        .send_unkeyed(&SendRequest::reply(
            Some(&alice()),
            &user("2"),
            &tid,
            "slow one",
        ))
        .await
        .expect_err("not confirmed in time");
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Unconfirmed, "send_unconfirmed")
    );
    assert!(!e.message().contains("not stored"), "{e}");
    let since = unix_now();

    // A retry while the site is still at it neither posts nor says "not stored".
    let e = bb
        .send_unkeyed(&SendRequest {
            unconfirmed_since: Some(since),
            ..SendRequest::reply(Some(&alice()), &user("2"), &tid, "slow one")
        })
        .await
        .expect_err("still settling");
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Unconfirmed, "send_unconfirmed")
    );

    until_stored(&site, t, 2).await;
    let found = bb
        .send_unkeyed(&SendRequest {
            unconfirmed_since: Some(since),
            ..SendRequest::reply(Some(&alice()), &user("2"), &tid, "slow one")
        })
        .await
        .expect("found the first attempt");
    let messages = site.messages(t);
    assert_eq!(messages.len(), 2, "one copy: {messages:?}");
    assert_eq!(found.id.as_str(), messages[1].id.to_string());
    assert_eq!(site.count("POST", "/buddyboss/v1/messages"), 1);
}

#[tokio::test]
async fn a_send_to_a_paused_site_is_unconfirmed_and_its_retry_finds_it() {
    // The real site's PHP was stopped for 12 s: every request waited, then all were done.
    let site = seeded().await;
    let bb = client_at(&site.api_root(), |c| {
        c.request_timeout = HANG_TIMEOUT;
        c.read_retries = 0;
    });
    let (t, _) = site.create_thread(2, &[3], "hello");
    let tid = thread(&t.to_string());
    site.pause(HANG_TIMEOUT * 4);
    let e = bb
        .send_unkeyed(&SendRequest::reply(
            Some(&alice()),
            &user("2"),
            &tid,
            "paused one",
        ))
        .await
        .expect_err("not confirmed");
    assert_eq!(
        kind_code(&e),
        (SiteErrorKind::Unconfirmed, "send_unconfirmed")
    );
    let since = unix_now();
    until_stored(&site, t, 2).await;
    let found = bb
        .send_unkeyed(&SendRequest {
            unconfirmed_since: Some(since),
            ..SendRequest::reply(Some(&alice()), &user("2"), &tid, "paused one")
        })
        .await
        .expect("found the first attempt");
    assert_eq!(site.messages(t).len(), 2, "one copy");
    assert_eq!(found.id.as_str(), site.messages(t)[1].id.to_string());
    assert_eq!(site.count("POST", "/buddyboss/v1/messages"), 1);
}

#[tokio::test]
async fn a_retry_posts_again_only_after_the_settle_time() {
    let site = seeded().await;
    let bb = client_at(&site.api_root(), |c| c.reconcile_settle = Duration::ZERO);
    let (t, _) = site.create_thread(2, &[3], "hello");
    let tid = thread(&t.to_string());
    let long_ago = unix_now() - 120;
    let stored = bb
        .send_unkeyed(&SendRequest {
            unconfirmed_since: Some(long_ago),
            ..SendRequest::reply(Some(&alice()), &user("2"), &tid, "never landed")
        })
        .await
        .expect("posted: nothing to find and nothing pending");
    assert_eq!(site.messages(t).len(), 2);
    assert_eq!(stored.text, "never landed");
}

#[tokio::test]
async fn reconciliation_recognises_a_text_wordpress_rewrote() {
    let site = seeded().await;
    let bb = client_at(&site.api_root(), |c| c.request_timeout = HANG_TIMEOUT);
    let (t, _) = site.create_thread(2, &[3], "hello");
    let tid = thread(&t.to_string());
    site.inject(Fault::StoreThenHang, 1);
    let stored = bb
        .send_unkeyed(&SendRequest::reply(
            Some(&alice()),
            &user("2"),
            &tid,
            "if a < b and c > d",
        ))
        .await
        .expect("reconciled although kses rewrote it");
    assert_eq!(site.messages(t)[1].stored, "if a <b> d</b>");
    assert_eq!(stored.id.as_str(), site.messages(t)[1].id.to_string());
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

#[tokio::test]
async fn the_deadline_covers_every_step_of_a_request() {
    use bbrt_protocol::api::ApiRequest;
    let tweak = |c: &mut bbrt_buddyboss::Config| {
        c.request_timeout = Duration::from_secs(10);
        c.read_retries = 2;
        c.retry_backoff = Duration::from_millis(200);
        c.reconcile_delay = Duration::from_secs(1);
    };
    // A site without bbrt's plugin, known to be without it.
    let site = seeded().await;
    let bb = client_at(&site.api_root(), tweak);
    bb.probe().await.expect("healthy");
    let send = |thread: Option<&str>, unconfirmed_since| ApiRequest::Send {
        credential: None,
        sender: user("2"),
        thread: thread.map(self::thread),
        recipients: vec![user("3")],
        text: "x".into(),
        client_message_id: None,
        unconfirmed_since,
    };
    let verify = ApiRequest::Verify {
        credential: None,
        claimed_user: None,
        current_user: None,
    };
    let s = Duration::from_millis;
    // A read: 3 attempts of 10 s and backoffs of 0.2 s and 0.4 s; plus 10 s for a slot.
    assert_eq!(bb.deadline(&verify), Some(s(30_600 + 10_000)));
    // POST 10 s, delay 1 s, one read.
    assert_eq!(
        bb.deadline(&send(Some("1"), None)),
        Some(s(10_000 + 1_000 + 30_600 + 10_000))
    );
    // A new thread reads the sentbox and up to 3 threads.
    assert_eq!(
        bb.deadline(&send(None, None)),
        Some(s(10_000 + 1_000 + 4 * 30_600 + 10_000))
    );
    // A retry after an unconfirmed attempt looks first.
    assert_eq!(
        bb.deadline(&send(Some("1"), Some(0))),
        Some(s(1_000 + 30_600 + 10_000 + 1_000 + 30_600 + 10_000))
    );

    // With the plugin: three keyed posts of 10 s with two waits of at most 2 s, or a 404
    // and the send above on BuddyBoss's route, whichever is longer.
    site.set_plugin(true);
    let bb = client_at(&site.api_root(), tweak);
    let keyed = 3 * 10_000 + 2 * 2_000;
    let fallback = 10_000 + (10_000 + 1_000 + 30_600);
    assert_eq!(
        bb.deadline(&send(Some("1"), None)),
        Some(s(10_000 + keyed.max(fallback) + 10_000)),
        "not known yet: the index is read first"
    );
    bb.probe().await.expect("healthy");
    assert_eq!(
        bb.deadline(&send(Some("1"), None)),
        Some(s(keyed.max(fallback) + 10_000))
    );
}
