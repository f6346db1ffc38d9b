//! Pins the requests bbrt sends to a BuddyBoss site: method, route, query, headers (secrets
//! redacted by the fake site's log) and body.

mod common;

use bbrt_buddyboss::{BuddyBoss, Credential, SendRequest};
use common::{client, client_at, seeded, thread, user};

#[tokio::test]
async fn requests_bbrt_sends() {
    let site = seeded().await;
    let bb = client(&site);
    let alice = Credential::bearer("alice-token");
    let bob = Credential::bearer("bob-token");
    bb.verify(Some(&alice), None, None).await.expect("verified");
    let first = bb
        .send_unkeyed(&SendRequest::new_thread(
            Some(&alice),
            &user("2"),
            &[user("3")],
            "Hi Bob, this is Alice.",
        ))
        .await
        .expect("stored");
    bb.participants(Some(&bob), &user("3"), &first.thread, true)
        .await
        .expect("bob is in");
    bb.send_unkeyed(&SendRequest::reply(
        Some(&bob),
        &user("3"),
        &first.thread,
        "Reply from Bob.",
    ))
    .await
    .expect("stored");
    bb.mark_read(Some(&bob), &user("3"), &first.thread)
        .await
        .expect("read");
    bb.find_recent(
        &SendRequest::new_thread(
            Some(&alice),
            &user("2"),
            &[user("3")],
            "Hi Bob, this is Alice.",
        ),
        0,
    )
    .await
    .expect("found");
    insta::assert_json_snapshot!("requests_bbrt_sends", site.requests());
}

#[tokio::test]
async fn auth_schemes_and_the_query_root() {
    let site = seeded().await;
    let bb = client_at(&site.query_api_root(), |_| {});
    for credential in [
        Credential::bearer("alice-token"),
        Credential::basic("alice:alice-app-pass"),
        Credential::access_token("alice-jwt"),
        Credential::cookie("wordpress_logged_in=alice", "alice-nonce"),
    ] {
        bb.verify(Some(&credential), None, None)
            .await
            .expect("verified");
    }
    let (t, _) = site.create_thread(2, &[3], "hello");
    bb.participants(
        Some(&Credential::bearer("bob-token")),
        &user("3"),
        &thread(&t.to_string()),
        false,
    )
    .await
    .expect("bob is in");
    insta::assert_json_snapshot!("auth_schemes_and_the_query_root", site.requests());
}
