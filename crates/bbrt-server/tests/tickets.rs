//! Connection tickets (issue 18) over real sockets, against the fake site: a ticket
//! connection acts for its member with the site credential it carries, every refusal
//! closes it, single use holds across two nodes through Redis, and logging out on the
//! site ends the connection at the next re-verification.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bbrt_buddyboss::fake::{FakeSite, sign_ticket};
use common::{Client, Process, Server, config};
use serde_json::{Value, json};

const KID: &str = "2026a";
const SECRET: &str = "a-ticket-secret-of-at-least-32-bytes-for-tests";
const AUDIENCE: &str = "wss://rt.example.test";
/// bbrt's close code for a refused credential.
const CREDENTIAL_REJECTED: u16 = 4001;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// alice = 2, bob = 3, carol = 4; a thread between alice and bob.
async fn setup(tweak: impl FnOnce(&mut common::Config)) -> (FakeSite, Server, u64) {
    let site = FakeSite::start_seeded().await.expect("fake site");
    let (thread, _) = site.create_thread(2, &[3], "hello from the site");
    let mut cfg = config();
    cfg.buddyboss_url = Some(site.api_root());
    cfg.site_timeout = Duration::from_secs(1);
    cfg.site_probe_interval = Duration::from_secs(3600);
    cfg.ticket_keys = Some(
        format!("old:{}, {KID}:{SECRET}", "o".repeat(40))
            .parse()
            .unwrap(),
    );
    cfg.public_url = Some(format!("{AUDIENCE}/"));
    tweak(&mut cfg);
    let server = Server::start(cfg).await;
    common::site_probed(&server).await;
    (site, server, thread)
}

fn ticket_url(server_url: &str, ticket: &str) -> String {
    format!("{server_url}?ticket={ticket}")
}

/// Connected by `ticket` and identified as `user`, or `Err` with the close code.
async fn connect(server_url: &str, ticket: &str, user: &str) -> Result<Client, Option<u16>> {
    let mut c = Client::connect(&ticket_url(server_url, ticket), &[]).await;
    c.send(json!({"type": "user_connected", "userId": user, "requestId": "u"}))
        .await;
    loop {
        match tokio::time::timeout(common::WAIT, futures_util::StreamExt::next(&mut c.ws)).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).expect("json");
                if v["type"] == "ack" && v["requestId"] == "u" {
                    return Ok(c);
                }
            }
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f)))) => {
                return Err(f.map(|f| u16::from(f.code)));
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => return Err(None),
            Err(_) => panic!("no answer in time"),
        }
    }
}

fn claims(site: &FakeSite, user: u64, session: &str) -> Value {
    let now = now();
    json!({"iss": site.url(), "aud": AUDIENCE, "sub": user.to_string(), "iat": now,
           "nbf": now, "exp": now + 30, "jti": format!("{:032x}", rand_id()),
           "sc": site.site_credential(user, session)})
}

fn rand_id() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    nanos ^ (u128::from(std::process::id()) << 96) ^ u128::from(N.fetch_add(1, Ordering::Relaxed))
}

#[tokio::test]
async fn a_ticket_connection_joins_sends_and_is_refused_where_a_non_member_would_be() {
    let (site, server, thread) = setup(|_| {}).await;
    let (other, _) = site.create_thread(3, &[4], "bob and carol only");
    let session = site.login(2);
    let ticket = site.ticket(2, &session, KID, SECRET, AUDIENCE);
    let mut alice = connect(&server.url, &ticket, "2")
        .await
        .expect("ticket accepted");
    site.clear_requests();
    alice
        .send(json!({"type": "join_thread", "threadId": thread}))
        .await;
    assert_eq!(
        alice.recv_type("joined").await["threadId"],
        thread.to_string()
    );
    alice.send(json!({"type": "send_message", "threadId": thread, "message": "by ticket", "requestId": 1})).await;
    let ack = alice.recv_type("ack").await;
    let stored = site.messages(thread);
    let last = stored.last().expect("stored");
    assert_eq!(
        (ack["id"].clone(), last.sender),
        (json!(last.id.to_string()), 2)
    );
    alice
        .send(json!({"type": "join_thread", "threadId": other, "requestId": "j"}))
        .await;
    let refused = alice.recv_type("error").await;
    assert_eq!(refused["requestId"], "j");
    assert_eq!(refused["code"], "forbidden", "{refused}");
    let requests = site.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(r.auth.as_deref(), Some("site-session"), "{r:?}");
        assert!(!r.headers.contains_key("authorization"), "{r:?}");
        assert_eq!(
            r.headers.get("x-bbrt-session").map(String::as_str),
            Some("[redacted]")
        );
    }

    // In user_connected instead of the URL.
    let ticket = site.ticket(3, &site.login(3), KID, SECRET, AUDIENCE);
    let mut bob = Client::connect(&server.url, &[]).await;
    bob.send(json!({"type": "user_connected", "userId": "3", "ticket": ticket, "requestId": "u"}))
        .await;
    assert_eq!(bob.recv_type("ack").await["requestId"], "u");
    bob.send(
        json!({"type": "user_connected", "userId": "3", "ticket": ticket, "requestId": "again"}),
    )
    .await;
    let again = bob.recv_type("error").await;
    assert_eq!(
        (again["requestId"].clone(), again["code"].clone()),
        (json!("again"), json!("unauthenticated")),
        "{again}"
    );
}

#[tokio::test]
async fn every_refusal_closes_the_upgrade_as_a_rejected_credential() {
    let (site, server, _) = setup(|_| {}).await;
    let session = site.login(2);
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut c = claims(&site, 2, &session);
        f(&mut c);
        sign_ticket(KID, SECRET, &c)
    };
    let good = edit(&|_| {});
    let cases: Vec<(&str, String)> = vec![
        ("expired", edit(&|c| c["exp"] = json!(now() - 10))),
        (
            "not yet valid",
            edit(&|c| {
                c["nbf"] = json!(now() + 20);
                c["exp"] = json!(now() + 50);
            }),
        ),
        (
            "other audience",
            edit(&|c| c["aud"] = json!("wss://staging.example.test")),
        ),
        (
            "other issuer",
            edit(&|c| c["iss"] = json!("https://evil.example")),
        ),
        ("lives too long", edit(&|c| c["exp"] = json!(now() + 120))),
        (
            "bad signature",
            sign_ticket(KID, &"x".repeat(40), &claims(&site, 2, &session)),
        ),
        (
            "unknown kid",
            sign_ticket("retired", SECRET, &claims(&site, 2, &session)),
        ),
        ("malformed", "not.a-ticket".into()),
        ("oversized", format!("{good}{}", "A".repeat(2100))),
        (
            "a forged site credential",
            edit(&|c| c["sc"] = json!("bbrt-sc1.0011223344556677.AAAA")),
        ),
        (
            "another member's site credential",
            edit(&|c| c["sub"] = json!("3")),
        ),
    ];
    let refusals = cases.len() as f64;
    for (why, ticket) in cases {
        let closed = connect(&server.url, &ticket, "2").await.err();
        assert_eq!(closed, Some(Some(CREDENTIAL_REJECTED)), "{why}");
    }
    assert_eq!(tickets_counted(&server).await, (0.0, refusals));
    connect(&server.url, &good, "2")
        .await
        .expect("the good one still works");
    let reused = connect(&server.url, &good, "2").await.err();
    assert_eq!(reused, Some(Some(CREDENTIAL_REJECTED)), "already used");
    assert_eq!(tickets_counted(&server).await, (1.0, refusals + 1.0));
}

/// `bbrt_tickets_total`: (accepted, refused).
async fn tickets_counted(server: &Server) -> (f64, f64) {
    let body = common::http_get(server.handle.local_addr(), "/metrics", "")
        .await
        .1;
    let count = |outcome: &str| {
        common::metric(
            &body,
            &format!("bbrt_tickets_total{{outcome=\"{outcome}\"}}"),
        )
        .expect("bbrt_tickets_total")
    };
    (count("accepted"), count("refused"))
}

#[tokio::test]
async fn without_a_key_ring_tickets_are_refused() {
    let (site, server, _) = setup(|c| c.ticket_keys = None).await;
    let ticket = site.ticket(2, &site.login(2), KID, SECRET, AUDIENCE);
    let closed = connect(&server.url, &ticket, "2").await.err();
    assert_eq!(closed, Some(Some(CREDENTIAL_REJECTED)));
}

#[tokio::test]
async fn logging_out_on_the_site_ends_the_connection_at_re_verification() {
    let (site, server, thread) = setup(|c| c.credential_ttl = Duration::from_millis(500)).await;
    let session = site.login(2);
    let ticket = site.ticket(2, &session, KID, SECRET, AUDIENCE);
    let mut alice = connect(&server.url, &ticket, "2").await.expect("accepted");
    alice
        .send(json!({"type": "join_thread", "threadId": thread}))
        .await;
    alice.recv_type("joined").await;
    let other_session = site.login(2);
    let mut alice_too = connect(
        &server.url,
        &site.ticket(2, &other_session, KID, SECRET, AUDIENCE),
        "2",
    )
    .await
    .expect("accepted");
    site.logout(2, &session);
    assert_eq!(alice.closed().await, Some(CREDENTIAL_REJECTED));
    // The member's other login session (another browser) is not ended.
    alice_too
        .send(json!({"type": "ping", "requestId": "p"}))
        .await;
    assert_eq!(alice_too.recv_type("pong").await["requestId"], "p");
}

#[tokio::test]
async fn a_ticket_is_single_use_across_two_nodes_through_redis() {
    let site = FakeSite::start_seeded().await.expect("fake site");
    let prefix = format!("bbrt-tickets-{}-{}", std::process::id(), rand_id());
    let ring = format!("{KID}:{SECRET}");
    let api_root = site.api_root();
    let args = [
        "--redis",
        "redis://127.0.0.1:6379/",
        "--redis-prefix",
        &prefix,
        "--buddyboss-url",
        &api_root,
        "--public-url",
        AUDIENCE,
        "--ticket-keys",
        &ring,
        "--drain-delay",
        "0s",
    ];
    let (a, b) = (Process::start(&args).await, Process::start(&args).await);
    // Linked to Redis first: until then a node refuses every ticket (it cannot know
    // whether another node spent it).
    for node in [&a, &b] {
        let deadline = tokio::time::Instant::now() + common::WAIT;
        loop {
            let (status, body) = common::http_get(node.addr, "/readyz", "").await;
            if status == 200 && body.contains("redis: ok") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "linked to redis in time: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (url_a, url_b) = (format!("ws://{}/", a.addr), format!("ws://{}/", b.addr));
    let ticket = site.ticket(2, &site.login(2), KID, SECRET, AUDIENCE);
    let _first = connect(&url_a, &ticket, "2")
        .await
        .expect("node A takes it");
    let second = connect(&url_b, &ticket, "2").await.err();
    assert_eq!(
        second,
        Some(Some(CREDENTIAL_REJECTED)),
        "node B knows it was used"
    );
    let fresh = site.ticket(2, &site.login(2), KID, SECRET, AUDIENCE);
    connect(&url_b, &fresh, "2")
        .await
        .expect("node B takes a fresh one");
}
