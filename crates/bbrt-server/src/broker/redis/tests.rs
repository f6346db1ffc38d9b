//! Round trips through a real Redis: the shared one at 127.0.0.1:6379 (`scripts/test.sh`
//! starts it), each test under its own prefix; a private `redis-server` where a test stops it.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

use std::sync::atomic::Ordering::Relaxed;

use async_trait::async_trait;
use bbrt_protocol::hub::{
    BrokerEvent, BrokerMessage, CoordRequest, CoordResponse, SendFingerprint, SendOutcome,
};
use bbrt_protocol::ids::DeviceRef;

use super::super::contract::{Cluster, claim, coordinator_contract, finish, receipt};
use super::*;
use crate::broker::{Broker, Coordinator};

/// Fails a test instead of hanging it; never a performance threshold.
const WAIT: Duration = Duration::from_secs(10);
const SHARED: &str = "redis://127.0.0.1:6379/";

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().expect("valid id")
}

fn fingerprint(text: &str) -> SendFingerprint {
    SendFingerprint::of(Some(&id("t1")), None, text)
}

fn prefix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "bbrt-test-{}-{}-{}",
        std::process::id(),
        now.as_nanos(),
        N.fetch_add(1, Relaxed)
    )
}

/// Options for node `node`, whose instance is named `node` too (so that [`deliver`] can
/// stand for its publications).
fn options(url: &str, prefix: &str, node: &str) -> RedisOptions {
    let mut o = RedisOptions::new(url, prefix, id(node));
    o.instance = id(node);
    o.heartbeat = Duration::from_millis(100);
    o.node_ttl = Duration::from_millis(300);
    o.claim_wait = Duration::from_secs(5);
    o
}

/// The next input that is not a periodic snapshot.
async fn next(rx: &mut mpsc::Receiver<BrokerInput>) -> BrokerInput {
    loop {
        match tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("an input in time")
            .expect("open")
        {
            BrokerInput::Snapshot => {}
            input => return input,
        }
    }
}

/// Waits for the first `Resync`: subscribed and connected.
async fn up(rx: &mut mpsc::Receiver<BrokerInput>) {
    assert_eq!(next(rx).await, BrokerInput::Resync);
}

/// A publication of the process `instance` of node `origin`.
fn deliver_from(origin: &str, instance: &str, text: &str) -> BrokerMessage {
    BrokerMessage {
        origin: id(origin),
        instance: id(instance),
        event: BrokerEvent::Deliver {
            users: vec![id("u1")],
            frame: bytes::Bytes::from(text.to_owned()),
            sequenced: None,
        },
    }
}

/// A publication of the node `origin` (instance named alike, as [`options`] sets it).
fn deliver(origin: &str, text: &str) -> BrokerMessage {
    deliver_from(origin, origin, text)
}

#[test]
fn options_hide_the_password() {
    let o = RedisOptions::new("redis://app:s3cret@redis.internal:6379/2", "p", id("n1"));
    let shown = format!("{o:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(
        shown.contains("redis://app:[redacted]@redis.internal:6379/2"),
        "{shown}"
    );
    assert_eq!(redact("redis://:pw@h/"), "redis://:[redacted]@h/");
    assert_eq!(redact("redis://h:6379/"), "redis://h:6379/");
}

#[tokio::test]
async fn publications_cross_between_brokers_and_not_back() {
    let p = prefix();
    let (a, _ca) = connect(options(SHARED, &p, "a")).expect("valid options");
    let (b, _cb) = connect(options(SHARED, &p, "b")).expect("valid options");
    let mut ra = a.subscribe();
    let mut rb = b.subscribe();
    let mut second = b.subscribe();
    up(&mut ra).await;
    up(&mut rb).await;
    up(&mut second).await;
    for i in 0..100 {
        a.publish(deliver("a", &format!("{{\"n\":{i}}}")));
    }
    b.publish(deliver("b", "{\"from\":\"b\"}"));
    for i in 0..100 {
        assert_eq!(
            next(&mut rb).await,
            BrokerInput::Message(deliver("a", &format!("{{\"n\":{i}}}")))
        );
        assert_eq!(
            next(&mut second).await,
            BrokerInput::Message(deliver("a", &format!("{{\"n\":{i}}}")))
        );
    }
    // a hears b's publication and none of its own.
    assert_eq!(
        next(&mut ra).await,
        BrokerInput::Message(deliver("b", "{\"from\":\"b\"}"))
    );
    assert_eq!(a.status().published.load(Relaxed), 100);
    assert_eq!(b.status().received.load(Relaxed), 100);
    assert!(!a.status().degraded());
}

#[tokio::test]
async fn two_processes_with_one_node_id_hear_each_other() {
    let p = prefix();
    let mut first = options(SHARED, &p, "same");
    first.instance = id("first");
    let mut second = first.clone();
    second.instance = id("second");
    let (a, _ca) = connect(first).expect("valid options");
    let (b, _cb) = connect(second).expect("valid options");
    let mut ra = a.subscribe();
    let mut rb = b.subscribe();
    up(&mut ra).await;
    up(&mut rb).await;
    a.publish(deliver_from("same", "first", "{\"from\":\"first\"}"));
    b.publish(deliver_from("same", "second", "{\"from\":\"second\"}"));
    assert_eq!(
        next(&mut rb).await,
        BrokerInput::Message(deliver_from("same", "first", "{\"from\":\"first\"}"))
    );
    assert_eq!(
        next(&mut ra).await,
        BrokerInput::Message(deliver_from("same", "second", "{\"from\":\"second\"}"))
    );
    // The second one's goodbye reaches the first as its own id going down: what the
    // second said of its users is void there.
    b.goodbye().await;
    assert_eq!(next(&mut ra).await, BrokerInput::NodeDown(id("same")));
}

/// Nodes under one fresh prefix of the shared Redis, with one idempotency secret (so that
/// their digests compare).
struct Shared {
    prefix: String,
    digester: SendDigester,
}

impl Shared {
    fn new() -> Self {
        Self {
            prefix: prefix(),
            digester: SendDigester::from_secret(b"the same on every node"),
        }
    }
}

#[async_trait]
impl Cluster for Shared {
    async fn node(&self, name: &str) -> Arc<dyn Coordinator> {
        let mut o = options(SHARED, &self.prefix, name);
        o.digester = self.digester.clone();
        let (_broker, coordinator) = connect(o).expect("valid options");
        wait_commands(&coordinator.status()).await;
        Arc::new(coordinator)
    }
}

coordinator_contract!(Shared::new());

#[tokio::test]
async fn only_the_holder_releases_a_claim_and_a_held_claim_is_waited_for_so_long() {
    let p = prefix();
    let (_a, ca) = connect(options(SHARED, &p, "a")).expect("valid options");
    let (_b, cb) = connect(options(SHARED, &p, "b")).expect("valid options");
    wait_commands(&ca.status()).await;
    wait_commands(&cb.status()).await;
    let c2 = || claim("u2", "c2", "hi");
    let release = || finish("u2", "c2", "hi", SendOutcome::Failed);
    assert_eq!(ca.request(c2()).await, CoordResponse::Claimed);
    assert_eq!(ca.request(release()).await, CoordResponse::Ok);
    assert_eq!(cb.request(c2()).await, CoordResponse::Claimed);
    // Only the holder's release deletes the claim.
    assert_eq!(ca.request(release()).await, CoordResponse::Ok);
    let mut short = options(SHARED, &p, "c");
    short.claim_wait = Duration::from_millis(100);
    let (_c, cc) = connect(short).expect("valid options");
    wait_commands(&cc.status()).await;
    assert_eq!(
        cc.request(c2()).await,
        CoordResponse::Unavailable,
        "still in flight on b"
    );
}

#[tokio::test]
async fn an_idempotency_record_holds_a_keyed_digest_and_no_text() {
    let p = prefix();
    let (_a, ca) = connect(options(SHARED, &p, "a")).expect("valid options");
    wait_commands(&ca.status()).await;
    assert_eq!(
        ca.request(claim("u1", "c1", "hi")).await,
        CoordResponse::Claimed
    );
    let stored = SendOutcome::Stored(receipt());
    assert_eq!(
        ca.request(finish("u1", "c1", "hi", stored)).await,
        CoordResponse::Ok
    );
    let mut conn = redis::Client::open(SHARED)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let value: String = redis::cmd("GET")
        .arg(format!("{p}:idem:u1/c1"))
        .query_async(&mut conn)
        .await
        .expect("the record");
    assert!(value.contains("\"digest\""), "{value}");
    assert!(!value.contains("hi"), "{value}");
}

#[tokio::test]
async fn a_silent_node_is_announced_down() {
    let p = prefix();
    let (a, ca) = connect(options(SHARED, &p, "a")).expect("valid options");
    let (b, _cb) = connect(options(SHARED, &p, "b")).expect("valid options");
    let mut ra = a.subscribe();
    let mut rb = b.subscribe();
    up(&mut ra).await;
    up(&mut rb).await;
    // b has seen a alive before a goes.
    wait_until(|| async { members(&p).await.len() == 2 }).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    drop((a, ca, ra));
    assert_eq!(next(&mut rb).await, BrokerInput::NodeDown(id("a")));
    wait_until(|| async { members(&p).await == ["b"] }).await;
    assert_eq!(b.status().nodes_down.load(Relaxed), 1);
}

#[tokio::test]
async fn a_restarted_node_is_announced_down_once_and_resynchronised() {
    let p = prefix();
    let mut slow = options(SHARED, &p, "b");
    slow.node_ttl = Duration::from_secs(5);
    let (a, _ca) = connect(slow.clone()).expect("valid options");
    let mut ra = a.subscribe();
    up(&mut ra).await;
    let mut o = options(SHARED, &p, "x");
    o.node_ttl = Duration::from_secs(5);
    let first = connect(o.clone()).expect("valid options");
    wait_until(|| async { members(&p).await.len() == 2 }).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(20)).await;
    o.instance = id("x-again");
    let _second = connect(o).expect("valid options");
    assert_eq!(next(&mut ra).await, BrokerInput::NodeDown(id("x")));
    assert_eq!(next(&mut ra).await, BrokerInput::Resync);
}

#[tokio::test]
async fn a_node_heard_but_never_registered_is_announced_down() {
    let p = prefix();
    let (b, _cb) = connect(options(SHARED, &p, "b")).expect("valid options");
    let mut rb = b.subscribe();
    up(&mut rb).await;
    // A node that died before its first heartbeat, after one publication.
    let client = redis::Client::open(SHARED).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("shared redis runs");
    let ghost = deliver("ghost", "{}");
    let () = redis::cmd("PUBLISH")
        .arg(format!("{p}:events"))
        .arg(ghost.to_json())
        .query_async(&mut conn)
        .await
        .expect("publish");
    assert_eq!(next(&mut rb).await, BrokerInput::Message(ghost));
    assert_eq!(next(&mut rb).await, BrokerInput::NodeDown(id("ghost")));
}

#[tokio::test]
async fn without_redis_nothing_blocks_and_everything_is_counted() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let mut o = options(&url, &prefix(), "a");
    o.publish_queue = 16;
    let (a, ca) = connect(o).expect("valid options");
    let start = Instant::now();
    for i in 0..1000 {
        a.publish(deliver("a", &format!("{{\"n\":{i}}}")));
    }
    assert!(start.elapsed() < WAIT);
    let claim = CoordRequest::ClaimSend {
        user: id("u1"),
        client_message_id: id("c1"),
        fingerprint: fingerprint("hi"),
    };
    let r = tokio::time::timeout(WAIT, ca.request(claim))
        .await
        .expect("prompt");
    assert_eq!(r, CoordResponse::Unavailable);
    // Answers too are only reported unavailable: the Hub's degraded policy lets the first
    // local device win (hub::tests::calls::without_the_coordinator_the_first_local_accept_still_wins).
    let dev = |conn| DeviceRef {
        node: id("a"),
        conn,
    };
    let claim = |conn| CoordRequest::ClaimAnswer {
        call: id("a-1"),
        device: dev(conn),
    };
    assert_eq!(ca.request(claim(1)).await, CoordResponse::Unavailable);
    assert_eq!(ca.request(claim(2)).await, CoordResponse::Unavailable);
    let s = a.status();
    wait_until(|| async {
        s.publish_dropped.load(Relaxed) + s.publish_failed.load(Relaxed) == 1000
    })
    .await;
    assert!(s.degraded());
    assert!(s.coord_unavailable.load(Relaxed) >= 2);
    let mut text = String::new();
    s.render(&mut text);
    assert!(text.contains("bbrt_redis_degraded 1"), "{text}");
    assert!(s.summary().contains("degraded"));
}

#[tokio::test]
async fn after_redis_restarts_the_link_resubscribes_and_resynchronises() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let mut server = PrivateRedis::start(port);
    let p = prefix();
    let (a, ca) = connect(options(&url, &p, "a")).expect("valid options");
    let (b, _cb) = connect(options(&url, &p, "b")).expect("valid options");
    let mut ra = a.subscribe();
    let mut rb = b.subscribe();
    up(&mut ra).await;
    up(&mut rb).await;
    a.publish(deliver("a", "{\"n\":1}"));
    assert_eq!(
        next(&mut rb).await,
        BrokerInput::Message(deliver("a", "{\"n\":1}"))
    );

    let (s, sb) = (a.status(), b.status());
    wait_until(|| async { s.nodes_seen.load(Relaxed) == 1 && sb.nodes_seen.load(Relaxed) == 1 })
        .await;

    server.stop();
    wait_until(|| async { s.degraded() }).await;
    let claim = CoordRequest::ClaimSend {
        user: id("u1"),
        client_message_id: id("c1"),
        fingerprint: fingerprint("hi"),
    };
    assert_eq!(ca.request(claim.clone()).await, CoordResponse::Unavailable);
    a.publish(deliver("a", "{\"lost\":true}"));
    // Cut off for longer than the TTL: each side counts the other down, as the other does.
    assert_eq!(next(&mut ra).await, BrokerInput::NodeDown(id("b")));
    assert_eq!(next(&mut rb).await, BrokerInput::NodeDown(id("a")));
    assert_eq!(s.nodes_seen.load(Relaxed), 0);
    server = PrivateRedis::start(port);

    // Both links come back by themselves; each asks its hub to resynchronise.
    assert_eq!(next(&mut ra).await, BrokerInput::Resync);
    assert_eq!(next(&mut rb).await, BrokerInput::Resync);
    a.publish(deliver("a", "{\"n\":2}"));
    assert_eq!(
        next(&mut rb).await,
        BrokerInput::Message(deliver("a", "{\"n\":2}"))
    );
    assert_eq!(ca.request(claim).await, CoordResponse::Claimed);
    wait_until(|| async { s.nodes_seen.load(Relaxed) == 1 }).await;
    assert!(s.reconnects.load(Relaxed) >= 2);
    assert!(s.publish_failed.load(Relaxed) >= 1);
    drop(server);
}

async fn wait_commands(status: &RedisStatus) {
    wait_until(|| async { status.commands_up() }).await;
}

async fn wait_until<F, Fut>(mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !f().await {
        assert!(Instant::now() < deadline, "condition not met in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn members(prefix: &str) -> Vec<String> {
    let client = redis::Client::open(SHARED).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("shared redis runs");
    let mut m: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{prefix}:nodes"))
        .query_async(&mut conn)
        .await
        .expect("smembers");
    m.sort();
    m
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A `redis-server` of this test alone, stopped when dropped.
struct PrivateRedis {
    child: Option<Child>,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "private redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child: Some(child) }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The script that counts a message publishes it too, stamped, in the same step: what a
/// subscriber receives is the publication the Hub would have sent, byte for byte.
#[tokio::test]
async fn a_counted_message_is_published_stamped_by_the_script() {
    use bbrt_protocol::hub::Sequenced;
    use bbrt_protocol::wire::{Epoch, Position};
    let p = prefix();
    let (a, ca) = connect(options(SHARED, &p, "a")).expect("valid options");
    let (b, _cb) = connect(options(SHARED, &p, "b")).expect("valid options");
    let mut rb = b.subscribe();
    up(&mut rb).await;
    wait_commands(&ca.status()).await;
    let frame = bytes::Bytes::from_static(br#"{"type":"message","id":"41","message":"a \"b\" }"}"#);
    let publication = |frame: bytes::Bytes, position: Position, since_previous_ms| BrokerMessage {
        origin: id("a"),
        instance: id("a"),
        event: BrokerEvent::Deliver {
            users: vec![id("u1")],
            frame,
            sequenced: Some(Sequenced {
                thread: id("t1"),
                id: id("41"),
                position,
                since_previous_ms,
            }),
        },
    };
    let request = |n: &str| CoordRequest::Sequence {
        thread: id("t1"),
        id: id(n),
        frame: frame.clone(),
        epoch: Epoch::new("a.s1").expect("a valid epoch"),
        publish: vec![publication(frame.clone(), Sequenced::placeholder(), None)],
    };
    for n in ["41", "42"] {
        let CoordResponse::Sequenced {
            position,
            since_previous_ms,
            published,
        } = ca.request(request(n)).await
        else {
            panic!("a position")
        };
        assert!(published, "the script published it");
        let expected = publication(position.stamp(&frame), position, since_previous_ms);
        assert_eq!(next(&mut rb).await, BrokerInput::Message(expected));
    }
    drop(a);
}

/// Scripts go by hash: a Redis that forgot them (restarted empty, or `SCRIPT FLUSH`) is
/// given them again, and the call that met `NOSCRIPT` still answers.
#[tokio::test]
async fn a_redis_that_forgot_the_scripts_is_given_them_again() {
    use bbrt_protocol::wire::Epoch;
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let _server = PrivateRedis::start(port);
    let (_a, ca) = connect(options(&url, &prefix(), "a")).expect("valid options");
    wait_commands(&ca.status()).await;
    let sequence = |n: &str| CoordRequest::Sequence {
        thread: id("t1"),
        id: id(n),
        frame: bytes::Bytes::from_static(br#"{"type":"message"}"#),
        epoch: Epoch::new("a.s1").expect("a valid epoch"),
        publish: Vec::new(),
    };
    let client = redis::Client::open(url.as_str()).expect("a valid url");
    let mut admin = client
        .get_multiplexed_async_connection()
        .await
        .expect("connected");
    for (n, expected) in [("41", 1), ("42", 2), ("43", 3)] {
        // Before every call: the first finds nothing loaded yet, the others a flushed cache.
        let () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut admin)
            .await
            .expect("flushed");
        let CoordResponse::Sequenced { position, .. } = ca.request(sequence(n)).await else {
            panic!("a position after NOSCRIPT")
        };
        assert_eq!(position.offset, expected);
    }
    assert_eq!(
        ca.request(claim("u1", "c1", "hi")).await,
        CoordResponse::Claimed
    );
    assert_eq!(ca.status().coord_unavailable.load(Relaxed), 0);
}
