//! HttpBuddyBoss sends against the fake BuddyBoss site, over real TCP: replies, new
//! threads, and how the site's refusals map.

mod common;

use bbrt_buddyboss::{BuddyBoss, Credential, SendRequest};
use bbrt_protocol::api::SiteErrorKind;
use common::*;

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
