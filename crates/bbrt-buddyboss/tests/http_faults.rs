//! HttpBuddyBoss against a failing fake BuddyBoss site, over real TCP: retries,
//! timeouts, and reconciling sends whose outcome is unknown.

mod common;

use std::time::Duration;

use bbrt_buddyboss::fake::Fault;
use bbrt_buddyboss::{BuddyBoss, SendRequest};
use bbrt_protocol::api::SiteErrorKind;
use common::*;

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
