//! Secrets never reach the logs: every log line of an authenticated flow, at TRACE, is
//! captured and searched for the tokens used. What the site said when it refused a
//! credential is there, at INFO, since clients only read a fixed text.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bbrt_buddyboss::fake::FakeSite;
use common::{Client, Server, config};
use serde_json::json;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn tokens_never_appear_in_logs() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        // Everything at TRACE except the test's own WebSocket client (tungstenite logs the
        // client's request, header included; the server does not use it).
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "trace,tungstenite=off,tokio_tungstenite=off",
        ))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let site = FakeSite::start_seeded().await.expect("fake site");
    let secret = "s3cr3t-bearer-0123456789";
    let query_secret = "s3cr3t-query-9876543210";
    let frame_secret = "s3cr3t-frame-5555555555";
    site.add_bearer(2, secret);
    site.add_bearer(3, query_secret);
    site.add_bearer(2, frame_secret);
    let (thread, _) = site.create_thread(2, &[3], "hi");
    let mut cfg = config();
    cfg.buddyboss_url = Some(site.api_root());
    let server = Server::start(cfg).await;

    let auth = format!("Bearer {secret}");
    let mut alice = Client::connect(&server.url, &[("authorization", auth.as_str())]).await;
    alice
        .send(json!({"type": "user_connected", "userId": "2", "requestId": 1}))
        .await;
    alice.recv_type("ack").await;
    let url = format!("{}?token={query_secret}", server.url);
    let mut bob = Client::connect(&url, &[]).await;
    bob.send(json!({"type": "join_thread", "threadId": thread}))
        .await;
    bob.recv_type("joined").await;
    let mut seed = server.client().await;
    for i in 0..3 {
        let send = json!({"type": "send_message", "threadId": thread, "recipientId": "3", "message": format!("m{i}"), "token": frame_secret});
        seed.send(send).await;
        seed.recv_type("message").await;
    }
    // A refused token too.
    let mut bad = server.client().await;
    bad.send(json!({"type": "user_connected", "userId": "2", "token": "s3cr3t-refused-42"}))
        .await;
    bad.recv_type("error").await;
    server.handle.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(10), server.handle.wait()).await;
    // Application Passwords refused: the client reads a fixed text, the log says why.
    let mut cfg = config();
    cfg.buddyboss_url = Some(site.api_root());
    cfg.auth_scheme = bbrt_server::config::AuthSchemeArg::Basic;
    let basic = Server::start(cfg).await;
    let wrong = ["alice:s3cr3t-wrong-app-pass", "nobody:s3cr3t-any-pass"];
    for token in wrong {
        let mut c = basic.client().await;
        c.send(json!({"type": "user_connected", "userId": "2", "token": token}))
            .await;
        c.recv_type("error").await;
    }
    basic.handle.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(10), basic.handle.wait()).await;

    // Connection tickets: the ring, the tickets (URL and frame, good, reused and forged)
    // and the site credential they carry.
    let ticket_secret = "tkt-ring-secret-0123456789-0123456789";
    let mut cfg = config();
    cfg.buddyboss_url = Some(site.api_root());
    cfg.ticket_keys = Some(format!("k1:{ticket_secret}").parse().expect("ring"));
    cfg.public_url = Some("wss://rt.example.test".into());
    cfg.log = "trace".into();
    assert!(
        !format!("{cfg:?}").contains(ticket_secret),
        "Config's Debug hides the ring"
    );
    let tickets = Server::start(cfg).await;
    let session = site.login(2);
    let sc = site.site_credential(2, &session);
    let url_ticket = site.ticket(2, &session, "k1", ticket_secret, "wss://rt.example.test");
    let frame_ticket = site.ticket(2, &session, "k1", ticket_secret, "wss://rt.example.test");
    let forged = site.ticket(
        2,
        &session,
        "k1",
        "a-wrong-ring-secret-0123456789-0123456789",
        "wss://rt.example.test",
    );
    for ticket in [&url_ticket, &url_ticket, &forged] {
        let mut c = Client::connect(&format!("{}?ticket={ticket}", tickets.url), &[]).await;
        c.send(json!({"type": "user_connected", "userId": "2", "requestId": 1}))
            .await;
        let _ = c.drain(Duration::from_millis(200)).await;
    }
    let mut c = Client::connect(&tickets.url, &[]).await;
    c.send(
        json!({"type": "user_connected", "userId": "2", "ticket": frame_ticket, "requestId": 1}),
    )
    .await;
    c.recv_type("ack").await;
    tickets.handle.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(10), tickets.handle.wait()).await;

    // Site events: the ring, the signatures and the bodies (message text).
    let event_secret = "evt-ring-secret-0123456789-0123456789";
    let mut cfg = config();
    cfg.site_event_keys = Some(format!("e1:{event_secret}").parse().expect("ring"));
    cfg.log = "trace".into();
    assert!(
        !format!("{cfg:?}").contains(event_secret),
        "Config's Debug hides the event ring"
    );
    let events = Server::start(cfg).await;
    let id = "0123456789abcdef0123456789abcdef";
    let event_body = format!(
        r#"{{"id":"{id}","type":"thread.deleted","site":"https://s.example","occurred_at":1,"data":{{"thread_id":1,"participants":[2,3],"private":"evt-body-words"}}}}"#
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let good_sig =
        bbrt_server::site_events::sign_event(event_secret, now, id, event_body.as_bytes());
    let forged_sig = bbrt_server::site_events::sign_event(
        "a-wrong-event-secret-0123456789-0123456789",
        now,
        id,
        event_body.as_bytes(),
    );
    for sig in [&good_sig, &good_sig, &forged_sig] {
        let head = format!(
            "POST /site/events HTTP/1.1\r\nHost: x\r\nX-BBRT-Key-Id: e1\r\nX-BBRT-Timestamp: {now}\r\nX-BBRT-Event-Id: {id}\r\nX-BBRT-Signature: {sig}\r\nContent-Length: {}\r\n\r\n{event_body}",
            event_body.len()
        );
        let mut s = tokio::net::TcpStream::connect(events.handle.local_addr())
            .await
            .expect("connect");
        tokio::io::AsyncWriteExt::write_all(&mut s, head.as_bytes())
            .await
            .expect("write");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            common::WAIT,
            tokio::io::AsyncReadExt::read_to_end(&mut s, &mut answer),
        )
        .await;
        assert!(!answer.is_empty(), "answered");
    }
    events.handle.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(10), events.handle.wait()).await;

    // TURN: the shared secret and the credentials minted from it.
    let turn_secret = "turn-static-auth-secret-0123456789";
    let mut cfg = config();
    cfg.ice_urls = vec!["turn:127.0.0.1:3478".into()];
    cfg.turn_secret = Some(turn_secret.parse().expect("secret"));
    cfg.log = "trace".into();
    assert!(
        !format!("{cfg:?}").contains(turn_secret),
        "Config's Debug hides the TURN secret"
    );
    let turn = Server::start(cfg).await;
    let mut minted = Vec::new();
    for rid in 1..=2 {
        let mut c = turn.user("alice").await;
        c.send(json!({"type": "get_ice_servers", "requestId": rid}))
            .await;
        let frame = c.recv_type("ice_servers").await;
        let credential = frame["iceServers"][0]["credential"]
            .as_str()
            .expect("minted");
        minted.push(credential.to_owned());
    }
    turn.handle.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(10), turn.handle.wait()).await;

    let logs = String::from_utf8_lossy(&capture.0.lock().expect("lock")).into_owned();
    assert!(logs.contains("conn"), "logs were captured: {logs}");
    assert!(
        logs.contains("ICE servers handed to clients"),
        "the start-up line is there"
    );
    for s in [turn_secret, &minted[0], &minted[1]] {
        let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(s)).take(3).collect();
        assert!(
            leaks.is_empty(),
            "TURN secret {s} leaked into the logs: {leaks:#?}"
        );
    }
    assert!(
        logs.lines()
            .any(|l| l.contains("site event refused") && l.contains("bad_signature")),
        "site-event refusals are logged, with their reason"
    );
    for s in [
        event_secret,
        good_sig.trim_start_matches("v1="),
        forged_sig.trim_start_matches("v1="),
        "evt-body-words",
    ] {
        let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(s)).take(3).collect();
        assert!(
            leaks.is_empty(),
            "site-event secret {s} leaked into the logs: {leaks:#?}"
        );
    }
    assert!(
        logs.contains("connection ticket refused"),
        "refusals are logged, with their reason"
    );
    let signatures =
        [&url_ticket, &frame_ticket, &forged].map(|t| t.rsplit('.').next().unwrap_or(t).to_owned());
    let sealed = sc.rsplit('.').next().unwrap_or(&sc).to_owned();
    for s in [
        ticket_secret,
        &url_ticket,
        &frame_ticket,
        &forged,
        &sc,
        &sealed,
        &signatures[0],
        &signatures[1],
        &signatures[2],
    ] {
        let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(s)).take(3).collect();
        assert!(
            leaks.is_empty(),
            "ticket secret {s} leaked into the logs: {leaks:#?}"
        );
    }
    for code in ["incorrect_password", "invalid_username", "Unknown username"] {
        assert!(
            logs.lines().any(|l| l.contains("INFO") && l.contains(code)),
            "the site's {code:?} is in the server log at the default level"
        );
    }
    let encoded = wrong.map(|t| base64::engine::general_purpose::STANDARD.encode(t));
    for s in [
        secret,
        query_secret,
        frame_secret,
        "s3cr3t",
        &encoded[0],
        &encoded[1],
    ] {
        let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(s)).take(3).collect();
        assert!(
            leaks.is_empty(),
            "secret {s} leaked into the logs: {leaks:#?}"
        );
    }
}
