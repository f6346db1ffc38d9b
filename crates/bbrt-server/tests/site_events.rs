//! `POST /site/events` (issue 19) over real sockets: every refusal with its status and
//! its metric, duplicates and reuse, and dedupe across two nodes through Redis.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bbrt_server::site_events::sign_event;
use common::{Server, config};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KID: &str = "2026e";
const SECRET: &str = "a-site-event-secret-of-at-least-32-bytes";
const OLD_KID: &str = "2025e";
const OLD_SECRET: &str = "the-previous-site-event-secret-32-bytes+";
const TICKET_SECRET: &str = "a-ticket-secret-of-at-least-32-bytes-for-tests";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn event_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = nanos
        ^ (u128::from(std::process::id()) << 96)
        ^ u128::from(N.fetch_add(1, Ordering::Relaxed));
    format!("{n:032x}")
}

fn ring() -> String {
    format!("{KID}:{SECRET} {OLD_KID}:{OLD_SECRET}")
}

fn events_config() -> common::Config {
    let mut cfg = config();
    cfg.site_event_keys = Some(ring().parse().unwrap());
    cfg
}

fn body(id: &str, kind: &str, data: Value) -> Vec<u8> {
    json!({"id": id, "type": kind, "site": "https://community.example.test",
           "occurred_at": now(), "data": data})
    .to_string()
    .into_bytes()
}

fn suspended(id: &str, user: u64) -> Vec<u8> {
    body(id, "member.suspended", json!({"user_id": user}))
}

/// The headers the plugin sends, signed with `secret` at `ts`.
fn signed(kid: &str, secret: &str, ts: i64, id: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![
        ("Content-Type".into(), "application/json".into()),
        ("X-BBRT-Key-Id".into(), kid.into()),
        ("X-BBRT-Timestamp".into(), ts.to_string()),
        ("X-BBRT-Event-Id".into(), id.into()),
        ("X-BBRT-Signature".into(), sign_event(secret, ts, id, body)),
    ]
}

/// Writes a request head (with `Content-Length` unless `length` is `None`) and `body`;
/// returns the status and the body of the answer.
async fn raw_post(
    addr: SocketAddr,
    headers: &[(String, String)],
    length: Option<usize>,
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut head = String::from("POST /site/events HTTP/1.1\r\nHost: bbrt\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(n) = length {
        head.push_str(&format!("Content-Length: {n}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.expect("write head");
    // A refused head is answered before the body is read: the write may then fail.
    let _ = s.write_all(body).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(common::WAIT, s.read_to_end(&mut buf))
        .await
        .expect("an answer in time");
    common::http_status_and_body(&buf)
}

async fn post(addr: SocketAddr, headers: &[(String, String)], body: &[u8]) -> u16 {
    raw_post(addr, headers, Some(body.len()), body).await.0
}

async fn metrics(addr: SocketAddr) -> String {
    common::http_get(addr, "/metrics", "").await.1
}

fn refused(metrics: &str, reason: &str) -> f64 {
    common::metric(
        metrics,
        &format!("bbrt_site_events_refused_total{{reason=\"{reason}\"}}"),
    )
    .unwrap_or(-1.0)
}

fn outcome(metrics: &str, outcome: &str) -> f64 {
    common::metric(
        metrics,
        &format!("bbrt_site_events_total{{outcome=\"{outcome}\"}}"),
    )
    .unwrap_or(-1.0)
}

#[tokio::test]
async fn a_valid_event_is_accepted_once_then_a_duplicate_and_its_id_cannot_be_reused() {
    let server = Server::start(events_config()).await;
    let addr = server.handle.local_addr();
    let id = event_id();
    let b = suspended(&id, 3);
    let ts = now();
    assert_eq!(post(addr, &signed(KID, SECRET, ts, &id, &b), &b).await, 200);
    // The same request again (a retry, or a replay within the window).
    assert_eq!(post(addr, &signed(KID, SECRET, ts, &id, &b), &b).await, 200);
    // The same event re-signed later is still the same event.
    assert_eq!(
        post(addr, &signed(KID, SECRET, ts + 1, &id, &b), &b).await,
        200
    );
    let other = suspended(&id, 4);
    assert_eq!(
        post(addr, &signed(KID, SECRET, ts, &id, &other), &other).await,
        409
    );
    // The previous key of the ring verifies too (rotation).
    let id2 = event_id();
    let b2 = suspended(&id2, 3);
    assert_eq!(
        post(addr, &signed(OLD_KID, OLD_SECRET, ts, &id2, &b2), &b2).await,
        200
    );
    let m = metrics(addr).await;
    assert_eq!(outcome(&m, "accepted"), 2.0, "{m}");
    assert_eq!(outcome(&m, "duplicate"), 2.0, "{m}");
    assert_eq!(refused(&m, "reused"), 1.0, "{m}");
}

#[tokio::test]
async fn every_refusal_has_its_status_and_its_count_and_reaches_no_client() {
    let mut cfg = events_config();
    cfg.handshake_timeout = Duration::from_millis(300);
    let server = Server::start(cfg).await;
    let addr = server.handle.local_addr();
    let mut watcher = server.user("3").await;
    let ts = now();
    let id = event_id();
    let good = suspended(&id, 3);
    let headers = signed(KID, SECRET, ts, &id, &good);
    let without = |name: &str| -> Vec<(String, String)> {
        headers.iter().filter(|(n, _)| n != name).cloned().collect()
    };
    let replaced = |name: &str, value: &str| -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(n, v)| {
                if n == name {
                    (n.clone(), value.to_owned())
                } else {
                    (n.clone(), v.clone())
                }
            })
            .collect()
    };

    // Size first: a declared length over 64 KiB is refused before a byte of it is read.
    let (status, _) = raw_post(addr, &headers, Some(64 * 1024 + 1), b"").await;
    assert_eq!(status, 413);
    let big_id = event_id();
    let big = body(
        &big_id,
        "member.suspended",
        json!({"user_id": 3, "pad": "x".repeat(64 * 1024)}),
    );
    // (The bodies of refused heads are not sent: unread, they could reset the connection
    // before the answer is read.)
    let (status, _) = raw_post(
        addr,
        &signed(KID, SECRET, ts, &big_id, &big),
        Some(big.len()),
        b"",
    )
    .await;
    assert_eq!(status, 413, "signed, but too large");
    assert_eq!(raw_post(addr, &headers, None, b"").await.0, 411);
    let (status, _) = raw_post(addr, &headers, Some(good.len()), &good[..10]).await;
    assert_eq!(status, 408, "the body never completes");

    for name in [
        "X-BBRT-Key-Id",
        "X-BBRT-Timestamp",
        "X-BBRT-Event-Id",
        "X-BBRT-Signature",
    ] {
        assert_eq!(
            post(addr, &without(name), &good).await,
            401,
            "without {name}"
        );
    }
    let mut twice = headers.clone();
    twice.push((
        "X-BBRT-Signature".into(),
        sign_event(SECRET, ts, &id, b"other"),
    ));
    assert_eq!(post(addr, &twice, &good).await, 401, "two signatures");
    assert_eq!(
        post(addr, &replaced("X-BBRT-Timestamp", "soon"), &good).await,
        401
    );
    assert_eq!(
        post(addr, &replaced("X-BBRT-Key-Id", "nobody"), &good).await,
        401
    );
    // (The exact bounds are the unit tests'; a margin here keeps a second's tick harmless.)
    for stale in [ts - 360, ts + 360] {
        assert_eq!(
            post(addr, &signed(KID, SECRET, stale, &id, &good), &good).await,
            401,
            "signed at {stale}, now {ts}"
        );
    }
    assert_eq!(
        post(addr, &replaced("X-BBRT-Signature", "v1=00"), &good).await,
        401
    );
    // Signed with the ticket key under the event key's id: another key, so refused.
    assert_eq!(
        post(addr, &signed(KID, TICKET_SECRET, ts, &id, &good), &good).await,
        401
    );
    let mut tampered = good.clone();
    let at = tampered.len() - 3;
    tampered[at] = b'4';
    assert_eq!(post(addr, &headers, &tampered).await, 401, "body changed");

    let cases: [(&str, Vec<u8>); 4] = [
        ("malformed", b"{\"id\": nope".to_vec()),
        (
            "unknown_type",
            body(&id, "member.exploded", json!({"user_id": 3})),
        ),
        (
            "bad_data",
            body(&id, "member.suspended", json!({"user_id": "3"})),
        ),
        ("id_mismatch", suspended(&event_id(), 3)),
    ];
    for (reason, b) in &cases {
        assert_eq!(
            post(addr, &signed(KID, SECRET, ts, &id, b), b).await,
            400,
            "{reason}"
        );
    }

    let m = metrics(addr).await;
    for (reason, count) in [
        ("too_large", 2.0),
        ("length_required", 1.0),
        ("body_timeout", 1.0),
        ("missing_header", 5.0),
        ("bad_header", 1.0),
        ("unknown_kid", 1.0),
        ("stale", 2.0),
        ("bad_signature", 3.0),
        ("malformed", 1.0),
        ("unknown_type", 1.0),
        ("bad_data", 1.0),
        ("id_mismatch", 1.0),
    ] {
        assert_eq!(refused(&m, reason), count, "{reason}: {m}");
    }
    assert_eq!(outcome(&m, "accepted"), 0.0, "{m}");

    // Every refused request would have suspended the watcher; none reached it.
    nothing_more(&mut watcher).await;
    // Nothing refused burned the id: the real event is still accepted, and acted on.
    assert_eq!(post(addr, &headers, &good).await, 200);
    assert_eq!(watcher.closed().await, Some(4001));
}

#[tokio::test]
async fn without_an_event_ring_the_route_is_off() {
    let server = Server::start(config()).await;
    let addr = server.handle.local_addr();
    let id = event_id();
    let b = suspended(&id, 3);
    assert_eq!(
        post(addr, &signed(KID, SECRET, now(), &id, &b), &b).await,
        404
    );
    assert_eq!(refused(&metrics(addr).await, "disabled"), 1.0);
}

async fn redis_node(prefix: &str, redis: &str) -> Server {
    let mut cfg = events_config();
    cfg.redis = Some(redis.parse().unwrap());
    cfg.redis_prefix = prefix.to_owned();
    cfg.allow_dev_site_with_redis = true;
    cfg.redis_heartbeat = Duration::from_millis(200);
    Server::start(cfg).await
}

async fn linked(server: &Server) {
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let (status, body) = common::http_get(server.handle.local_addr(), "/readyz", "").await;
        if status == 200 && body.contains("redis: ok") {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "linked to redis in time: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_event_is_deduplicated_across_two_nodes_through_redis() {
    let prefix = format!("bbrt-site-events-{}", event_id());
    let redis = "redis://127.0.0.1:6379/";
    let (a, b) = (
        redis_node(&prefix, redis).await,
        redis_node(&prefix, redis).await,
    );
    linked(&a).await;
    linked(&b).await;
    let (addr_a, addr_b) = (a.handle.local_addr(), b.handle.local_addr());
    let id = event_id();
    let first = suspended(&id, 3);
    let ts = now();
    assert_eq!(
        post(addr_a, &signed(KID, SECRET, ts, &id, &first), &first).await,
        200
    );
    assert_eq!(
        post(addr_b, &signed(KID, SECRET, ts, &id, &first), &first).await,
        200
    );
    let other = suspended(&id, 4);
    assert_eq!(
        post(addr_b, &signed(KID, SECRET, ts, &id, &other), &other).await,
        409
    );
    let (ma, mb) = (metrics(addr_a).await, metrics(addr_b).await);
    assert_eq!(outcome(&ma, "accepted"), 1.0, "{ma}");
    assert_eq!(
        outcome(&mb, "accepted"),
        0.0,
        "node B never acted on it: {mb}"
    );
    assert_eq!(outcome(&mb, "duplicate"), 1.0, "{mb}");
    assert_eq!(refused(&mb, "reused"), 1.0, "{mb}");
}

#[tokio::test]
async fn an_unreachable_ledger_refuses_with_503_rather_than_risk_a_second_delivery() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port();
    // Nothing listens there: the node runs cut off from Redis.
    let server = redis_node(
        "bbrt-site-events-down",
        &format!("redis://127.0.0.1:{port}/"),
    )
    .await;
    let addr = server.handle.local_addr();
    let id = event_id();
    let b = suspended(&id, 3);
    assert_eq!(
        post(addr, &signed(KID, SECRET, now(), &id, &b), &b).await,
        503
    );
    assert_eq!(refused(&metrics(addr).await, "ledger_unavailable"), 1.0);
}

/// `message.sent` as the plugin reports a message 2 sent to 3 on the website.
fn website_message(id: &str, message_id: u64, key: Option<&str>) -> Vec<u8> {
    body(
        id,
        "message.sent",
        json!({"thread_id": 7, "message_id": message_id, "sender_id": 2, "new_thread": false,
               "subject": {"raw": "Plans", "rendered": "Plans"},
               "message": {"raw": "Café at 5?", "rendered": "<p>Café at 5?</p>"},
               "date_sent": "2026-12-01T10:00:00Z", "client_message_id": key,
               "participants": [2, 3],
               "unread": [{"user_id": 3, "thread_unread": 1, "inbox_unread": 4}]}),
    )
}

/// The next frame that is not presence is the answer to a ping: nothing else came first.
async fn nothing_more(client: &mut common::Client) {
    client
        .send(json!({"type": "ping", "requestId": "quiet"}))
        .await;
    let next = client.recv_skip_presence().await;
    assert_eq!(next["type"], "pong", "{next}");
}

#[tokio::test]
async fn a_message_sent_on_the_website_reaches_the_recipients_client_with_its_counts() {
    let server = Server::start(events_config()).await;
    let addr = server.handle.local_addr();
    let mut bob = server.user("3").await;
    let mut alice = server.user("2").await;
    let id = event_id();
    let b = website_message(&id, 41, None);
    assert_eq!(
        post(addr, &signed(KID, SECRET, now(), &id, &b), &b).await,
        200
    );
    let mut got = bob.recv_type("message").await;
    // Its place in the thread (the epoch is this process's own, random).
    let position = got
        .as_object_mut()
        .and_then(|o| o.remove("position"))
        .expect("a position");
    assert_eq!(position["offset"], 1, "{position}");
    assert!(position["epoch"].is_string(), "{position}");
    assert_eq!(
        got,
        json!({"type": "message", "id": "41", "threadId": "7", "senderId": "2",
               "message": "Café at 5?", "html": "<p>Café at 5?</p>",
               "sentAt": "2026-12-01T10:00:00Z", "unread": {"thread": 1, "total": 4}})
    );
    assert!(alice.recv_type("message").await.get("unread").is_none());
    // The same request again is a duplicate: nothing more.
    assert_eq!(
        post(addr, &signed(KID, SECRET, now(), &id, &b), &b).await,
        200
    );
    nothing_more(&mut bob).await;
}

#[tokio::test]
async fn a_message_bbrt_sent_is_not_delivered_again_by_its_event() {
    let server = Server::start(events_config()).await;
    let addr = server.handle.local_addr();
    let mut bob = server.user("3").await;
    let mut alice = server.user("2").await;
    alice
        .send(
            json!({"type": "send_message", "recipientId": "3", "message": "by bbrt",
                     "clientMessageId": "k-bbrt-1", "requestId": "s"}),
        )
        .await;
    let ack = alice.recv_type("ack").await;
    let delivered = bob.recv_type("message").await;
    assert_eq!(delivered["id"], ack["id"]);
    let message_id: u64 = ack["id"].as_str().unwrap().parse().unwrap();
    let id = event_id();
    let b = website_message(&id, message_id, Some("k-bbrt-1"));
    assert_eq!(
        post(addr, &signed(KID, SECRET, now(), &id, &b), &b).await,
        200
    );
    nothing_more(&mut bob).await;
}

#[tokio::test]
async fn a_suspended_member_is_disconnected() {
    let server = Server::start(events_config()).await;
    let addr = server.handle.local_addr();
    let mut bob = server.user("3").await;
    let mut alice = server.user("2").await;
    let id = event_id();
    let b = suspended(&id, 3);
    assert_eq!(
        post(addr, &signed(KID, SECRET, now(), &id, &b), &b).await,
        200
    );
    assert_eq!(bob.closed().await, Some(4001));
    nothing_more(&mut alice).await;
}

#[tokio::test]
async fn a_website_message_reaches_a_client_on_another_node_once() {
    let prefix = format!("bbrt-site-events-{}", event_id());
    let redis = "redis://127.0.0.1:6379/";
    let (a, b) = (
        redis_node(&prefix, redis).await,
        redis_node(&prefix, redis).await,
    );
    linked(&a).await;
    linked(&b).await;
    let mut bob = b.user("3").await;
    let id = event_id();
    let body = website_message(&id, 42, None);
    let headers = signed(KID, SECRET, now(), &id, &body);
    assert_eq!(post(a.handle.local_addr(), &headers, &body).await, 200);
    let got = bob.recv_type("message").await;
    assert_eq!(
        (got["id"].clone(), got["unread"]["total"].clone()),
        (json!("42"), json!(4))
    );
    // The same event reaching the other node (a retry through a load balancer).
    assert_eq!(post(b.handle.local_addr(), &headers, &body).await, 200);
    nothing_more(&mut bob).await;
}

#[tokio::test]
async fn a_suspended_members_ticket_is_refused_even_while_the_site_would_take_it() {
    const TICKET_KID: &str = "t1";
    const AUDIENCE: &str = "wss://rt.example.test";
    let site = bbrt_buddyboss::fake::FakeSite::start_seeded()
        .await
        .expect("fake site");
    let mut cfg = events_config();
    cfg.buddyboss_url = Some(site.api_root());
    cfg.site_probe_interval = Duration::from_secs(3600);
    cfg.ticket_keys = Some(format!("{TICKET_KID}:{TICKET_SECRET}").parse().unwrap());
    cfg.public_url = Some(AUDIENCE.into());
    let server = Server::start(cfg).await;
    common::site_probed(&server).await;
    let connect = |ticket: String| {
        let url = format!("{}?ticket={ticket}", server.url);
        async move {
            let mut c = common::Client::connect(&url, &[]).await;
            c.send(json!({"type": "ping", "requestId": "p"})).await;
            c
        }
    };
    // The fake site still accepts 3's login session: only the event refuses them.
    let mut before =
        connect(site.ticket(3, &site.login(3), TICKET_KID, TICKET_SECRET, AUDIENCE)).await;
    assert_eq!(before.recv_skip_presence().await["type"], "pong");
    let id = event_id();
    let b = suspended(&id, 3);
    let addr = server.handle.local_addr();
    assert_eq!(
        post(addr, &signed(KID, SECRET, now(), &id, &b), &b).await,
        200
    );
    assert_eq!(
        before.closed().await,
        Some(4001),
        "the open connection closes"
    );
    let mut after =
        connect(site.ticket(3, &site.login(3), TICKET_KID, TICKET_SECRET, AUDIENCE)).await;
    assert_eq!(after.closed().await, Some(4001), "a new ticket is refused");
    let mut other =
        connect(site.ticket(2, &site.login(2), TICKET_KID, TICKET_SECRET, AUDIENCE)).await;
    assert_eq!(
        other.recv_skip_presence().await["type"],
        "pong",
        "other members connect"
    );
}

/// A signed `POST /site/api`; returns the status and the answer's body.
async fn api(addr: SocketAddr, kind: &str, data: Value) -> (u16, String) {
    let id = event_id();
    let b = body(&id, kind, data);
    api_raw(addr, &signed(KID, SECRET, now(), &id, &b), &b).await
}

async fn api_raw(addr: SocketAddr, headers: &[(String, String)], body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut head = String::from("POST /site/api HTTP/1.1\r\nHost: bbrt\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(body).await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(common::WAIT, s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let answer = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, answer)
}

#[tokio::test]
async fn the_server_api_answers_who_is_online_publishes_and_disconnects() {
    let server = Server::start(events_config()).await;
    let addr = server.handle.local_addr();
    let mut bob = server.user("3").await;
    let mut alice = server.user("2").await;
    let (status, answer) = api(addr, "online", json!({"user_ids": [2, 3, 4]})).await;
    assert_eq!((status, answer.as_str()), (200, r#"{"online":[2,3]}"#));

    let publish = json!({"message": {"thread_id": 7, "message_id": 60, "sender_id": 2, "new_thread": false,
                                     "subject": {"raw": "", "rendered": ""},
                                     "message": {"raw": "from a backend", "rendered": "<p>from a backend</p>"},
                                     "date_sent": "2026-12-01T10:00:00Z", "client_message_id": null,
                                     "participants": [2, 3], "unread": []},
                         "user_ids": [3]});
    let id = event_id();
    let b = body(&id, "publish", publish);
    let headers = signed(KID, SECRET, now(), &id, &b);
    assert_eq!(api_raw(addr, &headers, &b).await.0, 200);
    assert_eq!(bob.recv_type("message").await["id"], "60");
    // Replayed: answered, not acted on again.
    assert_eq!(api_raw(addr, &headers, &b).await.0, 200);
    nothing_more(&mut bob).await;
    nothing_more(&mut alice).await;
    // Signed with another key: refused, and nothing happens.
    let forged = signed(KID, OLD_SECRET, now(), &id, &b);
    assert_eq!(api_raw(addr, &forged, &b).await.0, 401);

    assert_eq!(api(addr, "disconnect", json!({"user_id": 3})).await.0, 200);
    assert_eq!(bob.closed().await, Some(4001));
    let (_, answer) = api(addr, "online", json!({"user_ids": [2, 3]})).await;
    assert_eq!(answer, r#"{"online":[2]}"#);
    assert_eq!(
        api(addr, "member.suspended", json!({"user_id": 2})).await.0,
        400,
        "events are not requests"
    );
    let m = metrics(addr).await;
    assert_eq!(
        common::metric(&m, "bbrt_site_api_requests_total{type=\"online\"}"),
        Some(2.0),
        "{m}"
    );
    assert_eq!(refused(&m, "bad_signature"), 1.0);
}
