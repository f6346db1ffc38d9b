//! ICE servers over real sockets: a verified user gets STUN and a fresh TURN credential
//! (coturn's `use-auth-secret` scheme), ringing devices get them just before
//! `call_initiated`, anonymous connections never, and the rate limit answers
//! `rate_limited`. The secret is in no frame, metric or `Debug`.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::{Server, config, http_get};
use serde_json::{Value, json};

const SECRET: &str = "turn-shared-secret-for-the-test";
const TTL: u64 = 600;

fn ice_config() -> bbrt_server::config::Config {
    let mut cfg = config();
    cfg.ice_urls = vec![
        "stun:127.0.0.1:3478".into(),
        "turn:127.0.0.1:3478?transport=udp".into(),
    ];
    cfg.turn_secret = Some(SECRET.parse().expect("a secret"));
    cfg.turn_credential_ttl = Duration::from_secs(TTL);
    cfg
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Checks `frame` is an `ice_servers` for `user` minted between `before` and `after`.
fn check_turn(frame: &Value, user: &str, before: u64, after: u64) -> String {
    assert_eq!(frame["type"], "ice_servers", "{frame}");
    assert_eq!(frame["ttl"], TTL);
    let servers = frame["iceServers"].as_array().expect("a list");
    assert_eq!(servers[0], json!({"urls": ["stun:127.0.0.1:3478"]}));
    let turn = &servers[1];
    assert_eq!(turn["urls"], json!(["turn:127.0.0.1:3478?transport=udp"]));
    let username = turn["username"].as_str().expect("a username");
    let (expiry, named) = username.split_once(':').expect("expiry:user");
    assert_eq!(named, user);
    let expiry: u64 = expiry.parse().expect("unix seconds");
    assert!((before + TTL..=after + TTL).contains(&expiry), "{expiry}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, SECRET.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD
        .encode(ring::hmac::sign(&key, username.as_bytes()).as_ref());
    assert_eq!(turn["credential"], expected.as_str());
    expected
}

#[tokio::test]
async fn a_verified_user_gets_a_fresh_turn_credential() {
    let cfg = ice_config();
    assert!(
        !format!("{cfg:?}").contains(SECRET),
        "Config's Debug hides it"
    );
    let server = Server::start(cfg).await;
    let mut alice = server.user("alice").await;
    let before = unix_now();
    alice
        .send(json!({"type": "get_ice_servers", "requestId": "ice-1"}))
        .await;
    let frame = alice.recv_type("ice_servers").await;
    let after = unix_now();
    assert_eq!(frame["requestId"], "ice-1");
    let credential = check_turn(&frame, "alice", before, after);

    let (_, metrics) = http_get(server.handle.local_addr(), "/metrics", "").await;
    assert!(metrics.contains("ice_servers"), "the frame type is counted");
    assert!(!metrics.contains(SECRET) && !metrics.contains(&credential));
}

#[tokio::test]
async fn an_anonymous_connection_is_refused() {
    let server = Server::start(ice_config()).await;
    let mut anonymous = server.client().await;
    anonymous
        .send(json!({"type": "get_ice_servers", "requestId": 5}))
        .await;
    let error = anonymous.recv().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "unauthenticated");
    assert_eq!(error["requestId"], 5);
    let text = error.to_string();
    assert!(!text.contains("turn:") && !text.contains(SECRET));
}

#[tokio::test]
async fn requests_beyond_the_per_user_rate_are_rate_limited() {
    let mut cfg = ice_config();
    cfg.ice_requests_per_minute = 2;
    let server = Server::start(cfg).await;
    let mut a1 = server.user("alice").await;
    let mut a2 = server.user("alice").await;
    a1.send(json!({"type": "get_ice_servers", "requestId": 1}))
        .await;
    assert_eq!(a1.recv_type("ice_servers").await["requestId"], 1);
    a2.send(json!({"type": "get_ice_servers", "requestId": 2}))
        .await;
    assert_eq!(a2.recv_type("ice_servers").await["requestId"], 2);
    a1.send(json!({"type": "get_ice_servers", "requestId": 3}))
        .await;
    let error = a1.recv_type("error").await;
    assert_eq!(
        (error["code"].as_str(), error["requestId"].as_i64()),
        (Some("rate_limited"), Some(3))
    );
}

#[tokio::test]
async fn ringing_devices_get_ice_servers_just_before_call_initiated() {
    let server = Server::start(ice_config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    for c in [&mut alice, &mut bob] {
        c.send(json!({"type": "join_thread", "threadId": "T"}))
            .await;
        c.recv_type("joined").await;
    }
    let before = unix_now();
    alice
        .send(json!({"type": "call_initiated", "recipientId": "bob", "threadId": "T"}))
        .await;
    let first = bob.recv_skip_presence().await;
    let after = unix_now();
    check_turn(&first, "bob", before, after);
    assert!(first.get("requestId").is_none(), "{first}");
    assert_eq!(bob.recv_skip_presence().await["type"], "call_initiated");
}

#[tokio::test]
async fn without_ice_servers_a_request_gets_an_empty_list_and_ringing_nothing_extra() {
    let server = Server::start(config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    alice
        .send(json!({"type": "get_ice_servers", "requestId": 1}))
        .await;
    let frame = alice.recv_type("ice_servers").await;
    assert_eq!(
        frame,
        json!({"type": "ice_servers", "iceServers": [], "requestId": 1})
    );
    for c in [&mut alice, &mut bob] {
        c.send(json!({"type": "join_thread", "threadId": "T"}))
            .await;
        c.recv_type("joined").await;
    }
    alice
        .send(json!({"type": "call_initiated", "recipientId": "bob", "threadId": "T"}))
        .await;
    assert_eq!(bob.recv_skip_presence().await["type"], "call_initiated");
}
