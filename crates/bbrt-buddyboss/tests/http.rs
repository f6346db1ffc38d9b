//! HttpBuddyBoss against the fake BuddyBoss site, over real TCP: verifying, membership,
//! ids, API roots, limits, `perform` and deadlines.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bbrt_buddyboss::fake::Fault;
use bbrt_buddyboss::{BuddyBoss, Credential, SendRequest};
use bbrt_protocol::api::SiteErrorKind;
use common::*;

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
