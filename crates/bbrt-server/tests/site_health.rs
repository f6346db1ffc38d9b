//! What operators see of the site (issue 15, item 6): one test per misconfiguration
//! against the fake site, each read from `/readyz` and `/metrics`.

mod common;

use std::time::Duration;

use bbrt_buddyboss::fake::FakeSite;
use bbrt_server::config::AuthSchemeArg;
use common::{Client, Server, config, http_get};
use serde_json::json;

async fn server_for(url: &str, tweak: impl FnOnce(&mut common::Config)) -> Server {
    let mut cfg = config();
    cfg.buddyboss_url = Some(url.to_owned());
    cfg.site_timeout = Duration::from_secs(1);
    cfg.site_probe_interval = Duration::from_millis(200);
    tweak(&mut cfg);
    Server::start(cfg).await
}

/// Waits (bounded) until `/readyz` names `problem`; returns its status and body.
async fn readyz_names(server: &Server, problem: &str) -> (u16, String) {
    let addr = server.handle.local_addr();
    for _ in 0..100 {
        let (status, body) = http_get(addr, "/readyz", "").await;
        if body.contains(&format!("site: {problem}")) {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, body) = http_get(addr, "/readyz", "").await;
    panic!("/readyz never named {problem}: {body}");
}

async fn metrics(server: &Server) -> String {
    http_get(server.handle.local_addr(), "/metrics", "").await.1
}

#[tokio::test]
async fn a_healthy_site_is_ok_in_readyz_and_the_gauge() {
    let site = FakeSite::start_seeded().await.expect("fake site");
    let server = server_for(&site.api_root(), |_| {}).await;
    let (status, body) = readyz_names(&server, "ok").await;
    assert_eq!(status, 200);
    assert!(body.contains("auth bearer"), "{body}");
    assert!(metrics(&server).await.contains("bbrt_site_up 1"));
}

#[tokio::test]
async fn connection_refused() {
    let server = server_for("http://127.0.0.1:9/", |_| {}).await;
    let (status, body) = readyz_names(&server, "unreachable").await;
    assert_eq!(status, 200, "ready by default, as for Redis");
    assert!(body.contains("is --buddyboss-url right"), "{body}");
    let m = metrics(&server).await;
    assert!(m.contains("bbrt_site_up 0"), "{m}");
    assert!(
        m.contains("bbrt_site_problem{problem=\"unreachable\"} 1"),
        "{m}"
    );

    let strict = server_for("http://127.0.0.1:9/", |c| c.site_required_for_ready = true).await;
    assert_eq!(readyz_names(&strict, "unreachable").await.0, 503);
}

#[tokio::test]
async fn no_rest_api_at_the_url_html_200_or_404() {
    for status in [200, 404] {
        let site = FakeSite::start_seeded().await.expect("fake site");
        site.set_no_rest_api(Some(status));
        let server = server_for(&site.api_root(), |_| {}).await;
        let (_, body) = readyz_names(&server, "no_rest_api").await;
        assert!(body.contains(&format!("HTTP {status}")), "{body}");
        assert!(body.contains("?rest_route="), "names the fix: {body}");
        // The site is fixed: the next probe says so.
        site.set_no_rest_api(None);
        readyz_names(&server, "ok").await;
    }
}

#[tokio::test]
async fn no_buddyboss_namespace() {
    let site = FakeSite::start_seeded().await.expect("fake site");
    site.set_namespaces(&["oembed/1.0", "wp/v2"]);
    let server = server_for(&site.api_root(), |_| {}).await;
    let (_, body) = readyz_names(&server, "no_buddyboss").await;
    assert!(body.contains("activate BuddyBoss Platform"), "{body}");
}

#[tokio::test]
async fn every_verification_refused_with_codes_of_the_wrong_auth_scheme() {
    // The site knows Application Passwords; bbrt presents them as Bearer tokens, which
    // WordPress ignores: users/me answers 401 rest_not_logged_in.
    let site = FakeSite::start_seeded().await.expect("fake site");
    site.add_app_password(2, "abcd efgh ijkl");
    let server = server_for(&site.api_root(), |_| {}).await;
    readyz_names(&server, "ok").await;
    for i in 0..3 {
        let mut c = Client::connect(&server.url, &[]).await;
        c.send(json!({"type": "user_connected", "userId": "2", "token": "alice:abcd efgh ijkl", "requestId": i}))
            .await;
        assert_eq!(c.recv_type("error").await["code"], "unauthenticated");
    }
    let (_, body) = readyz_names(&server, "wrong_auth_scheme").await;
    assert!(body.contains("rest_not_logged_in"), "{body}");
    assert!(
        body.contains("--auth-scheme basic"),
        "names the fix: {body}"
    );
}

#[tokio::test]
async fn under_basic_users_me_works_but_sends_are_refused() {
    let site = FakeSite::start_seeded().await.expect("fake site");
    let (thread, _) = site.create_thread(2, &[3], "hello");
    site.add_app_password(2, "abcd efgh ijkl");
    site.set_app_password_trap(true);
    let server = server_for(&site.api_root(), |c| c.auth_scheme = AuthSchemeArg::Basic).await;
    readyz_names(&server, "ok").await;
    let mut alice = Client::connect(&server.url, &[]).await;
    alice
        .send(json!({"type": "user_connected", "userId": "2", "token": "alice:abcd efgh ijkl", "requestId": "u"}))
        .await;
    assert_eq!(alice.recv_type("ack").await["requestId"], "u");
    // A reply is refused 403, a new thread 500, as the real site refuses them.
    for (i, (code, send)) in [
        ("forbidden", json!({"threadId": thread})),
        ("refused", json!({"recipientId": "3"})),
        ("forbidden", json!({"threadId": thread})),
    ]
    .into_iter()
    .enumerate()
    {
        let mut frame = json!({"type": "send_message", "message": "hi", "requestId": i});
        frame
            .as_object_mut()
            .expect("object")
            .extend(send.as_object().expect("object").clone());
        alice.send(frame).await;
        assert_eq!(alice.recv_type("error").await["code"], code);
    }
    let (_, body) = readyz_names(&server, "app_passwords_fix").await;
    assert!(body.contains("Application Passwords fix"), "{body}");
}
