//! Several real `bbrt-server` processes as one service through Redis, with real WebSocket
//! clients spread across them, all against one fake BuddyBoss site (as production nodes
//! share one site). Each test has its own Redis prefix on the shared Redis at 127.0.0.1:6379
//! (`scripts/test.sh` starts it), except the one that restarts Redis: it runs a private
//! `redis-server` on a free port.
//!
//! Users on the seeded site: alice = 2, bob = 3, carol = 4, with `<login>-token` bearers.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bbrt_buddyboss::fake::{FakeSite, Fault};
use common::{Client, WAIT, http_get};
use serde_json::{Value, json};

const SHARED_REDIS: &str = "redis://127.0.0.1:6379/";

fn prefix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "bbrt-cluster-{}-{}-{}",
        std::process::id(),
        now.as_nanos(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One `bbrt-server` process; killed (SIGKILL, no goodbye) when dropped.
struct Node {
    child: Child,
    addr: SocketAddr,
    /// The `message` of every ERROR line it logged.
    errors: Arc<Mutex<Vec<String>>>,
}

impl Node {
    /// Starts node `id`; `extra` flags override the short test timings below.
    ///
    /// `BBRT_TEST_SERVER_BIN` runs another build of the binary; `BBRT_TEST_LOG_DIR` keeps
    /// each node's log (JSON lines) and stderr there.
    fn start(id: &str, redis: &str, prefix: &str, site: &FakeSite, extra: &[&str]) -> Self {
        Self::start_with_env(id, redis, prefix, site, extra, &[])
    }

    /// [`Node::start`] with extra environment variables for the process.
    fn start_with_env(
        id: &str,
        redis: &str,
        prefix: &str,
        site: &FakeSite,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut extra = extra.to_vec();
        extra.extend(["--node-id", id]);
        Self::start_args(id, redis, prefix, site, &extra, env)
    }

    /// A node started without `--node-id` (`label` names its log files only).
    fn start_unnamed(label: &str, prefix: &str, site: &FakeSite, extra: &[&str]) -> Self {
        Self::start_args(label, SHARED_REDIS, prefix, site, extra, &[])
    }

    fn start_args(
        id: &str,
        redis: &str,
        prefix: &str,
        site: &FakeSite,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut extra = extra.to_vec();
        for (flag, value) in [
            ("--redis-heartbeat", "200ms"),
            ("--presence-snapshot", "1s"),
            ("--ring-timeout", "5s"),
            ("--call-grace", "300ms"),
            ("--drain-delay", "0s"),
        ] {
            if !extra.contains(&flag) {
                extra.extend([flag, value]);
            }
        }
        let bin = std::env::var("BBRT_TEST_SERVER_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_bbrt-server").to_owned());
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0"])
            .args(["--redis", redis, "--redis-prefix", prefix])
            .args(["--buddyboss-url", &site.api_root(), "--site-timeout", "2s"])
            .args(["--log-format", "json", "--log", "info", "--workers", "1"])
            .args(&extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(match std::env::var("BBRT_TEST_LOG_DIR") {
                Ok(d) => Stdio::from(
                    std::fs::File::create(format!("{d}/{prefix}-{id}.stderr")).expect("log file"),
                ),
                Err(_) => Stdio::null(),
            })
            .spawn()
            .expect("the server binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std_mpsc::channel();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let errors_seen = Arc::clone(&errors);
        let log = std::env::var("BBRT_TEST_LOG_DIR").ok().map(|d| {
            std::fs::File::create(format!("{d}/{prefix}-{id}-{}.log", child.id()))
                .expect("log file")
        });
        // Reads the log to the end (a full pipe would block the server).
        std::thread::spawn(move || {
            use std::io::Write as _;
            let mut log = log;
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(f) = log.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if v["level"] == "ERROR"
                    && let Some(message) = v["fields"]["message"].as_str()
                {
                    errors_seen
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(message.to_owned());
                }
                if v["fields"]["message"] == "listening"
                    && let Some(addr) = v["fields"]["addr"].as_str()
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.parse::<SocketAddr>().expect("an address"));
                }
            }
        });
        let addr = rx.recv_timeout(WAIT).expect("the node listens in time");
        Self {
            child,
            addr,
            errors,
        }
    }

    fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Waits until the node is linked to Redis (connected and subscribed).
    async fn linked(&self) {
        wait_for(|| async {
            let (status, body) = http_get(self.addr, "/readyz", "").await;
            status == 200 && body.contains("redis: ok")
        })
        .await;
    }

    /// A verified user (bearer `<login>-token`) identified as `id` and joined to `thread`.
    async fn user(&self, login: &str, id: &str, thread: u64) -> Client {
        let auth = format!("Bearer {login}-token");
        let mut c = Client::connect(&self.url(), &[("authorization", auth.as_str())]).await;
        c.send(json!({"type": "user_connected", "userId": id, "requestId": "hello"}))
            .await;
        assert_eq!(c.recv_type("ack").await["requestId"], "hello");
        c.send(json!({"type": "join_thread", "threadId": thread}))
            .await;
        assert_eq!(c.recv_type("joined").await["threadId"], thread.to_string());
        c
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM: the graceful stop (closes its clients with 1001, says goodbye); waits for
    /// the process to end.
    fn stop(mut self) {
        let stopped = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(stopped.success());
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for<F, Fut>(mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !f().await {
        assert!(Instant::now() < deadline, "condition not met in time");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A thread between alice, bob and carol.
async fn site() -> (FakeSite, u64) {
    let site = FakeSite::start_seeded().await.expect("fake site");
    let (thread, _) = site.create_thread(2, &[3, 4], "hello from the site");
    (site, thread)
}

/// Nodes `n1..=count` on the shared Redis under a fresh prefix, linked.
async fn cluster(count: usize, site: &FakeSite, extra: &[&str]) -> Vec<Node> {
    let p = prefix();
    let nodes: Vec<Node> = (1..=count)
        .map(|i| Node::start(&format!("n{i}"), SHARED_REDIS, &p, site, extra))
        .collect();
    for n in &nodes {
        n.linked().await;
    }
    nodes
}

/// The next `message` with this text (skipping older ones).
async fn recv_message(c: &mut Client, text: &str) -> Value {
    loop {
        let m = c.recv_type("message").await;
        if m["message"] == text {
            return m;
        }
    }
}

/// The next frame of `kind` about `user` (skipping others, such as older presence).
async fn recv_about(c: &mut Client, kind: &str, user: &str) -> Value {
    loop {
        let v = c.recv_type(kind).await;
        if v["userId"] == user {
            return v;
        }
    }
}

fn ended(v: &Value) -> &str {
    assert_eq!(v["type"], "call_ended", "{v}");
    v["reason"].as_str().unwrap_or("")
}

#[tokio::test]
async fn messages_typing_presence_and_reads_cross_two_nodes() {
    let (site, t) = site().await;
    let nodes = cluster(2, &site, &[]).await;
    let mut alice = nodes[0].user("alice", "2", t).await;
    let mut bob = nodes[1].user("bob", "3", t).await;

    // Presence: bob came online on n2, alice on n1 hears it.
    recv_about(&mut alice, "user_connected", "3").await;

    // Messages both ways, each delivered once.
    alice
        .send(json!({"type": "send_message", "threadId": t, "message": "from n1", "requestId": 1}))
        .await;
    let m = bob.recv_type("message").await;
    assert_eq!(
        (m["senderId"].as_str(), m["message"].as_str()),
        (Some("2"), Some("from n1"))
    );
    assert_eq!(alice.recv_type("message").await["message"], "from n1");
    bob.send(json!({"type": "send_message", "threadId": t, "message": "from n2"}))
        .await;
    assert_eq!(alice.recv_type("message").await["message"], "from n2");
    assert_eq!(bob.recv_type("message").await["message"], "from n2");

    // Typing and read receipts.
    bob.send(json!({"type": "typing", "threadId": t})).await;
    let typing = alice.recv_type("typing").await;
    assert_eq!(
        (typing["userId"].as_str(), typing["typing"].as_bool()),
        (Some("3"), Some(true))
    );
    alice
        .send(json!({"type": "mark_read", "threadId": t}))
        .await;
    let read = bob.recv_type("read").await;
    assert_eq!(
        (read["userId"].as_str(), read["threadId"].as_str()),
        (Some("2"), Some(t.to_string().as_str()))
    );

    // Nothing arrived twice.
    let rest = bob.kinds_within(Duration::from_millis(300)).await;
    assert!(!rest.contains(&"message".to_owned()), "{rest:?}");
    assert_eq!(site.messages(t).len(), 3);

    // bob leaves: alice hears it.
    drop(bob);
    recv_about(&mut alice, "user_disconnected", "3").await;
}

#[tokio::test]
async fn two_nodes_started_with_identical_flags_are_one_service() {
    // The operator's first try: the same flags on both, apart from the port (which is 0
    // here for both). Each process then picks a node id of its own.
    let (site, t) = site().await;
    let p = prefix();
    let nodes = [
        Node::start_unnamed("same-a", &p, &site, &[]),
        Node::start_unnamed("same-b", &p, &site, &[]),
    ];
    for n in &nodes {
        n.linked().await;
    }
    let mut alice = nodes[0].user("alice", "2", t).await;
    let mut bob = nodes[1].user("bob", "3", t).await;
    recv_about(&mut alice, "user_connected", "3").await;

    alice
        .send(json!({"type": "send_message", "threadId": t, "message": "a to b"}))
        .await;
    assert_eq!(recv_message(&mut bob, "a to b").await["senderId"], "2");
    bob.send(json!({"type": "send_message", "threadId": t, "message": "b to a"}))
        .await;
    assert_eq!(recv_message(&mut alice, "b to a").await["senderId"], "3");
    bob.send(json!({"type": "typing", "threadId": t})).await;
    assert_eq!(alice.recv_type("typing").await["userId"], "3");

    alice
        .send(
            json!({"type": "call_initiated", "recipientId": "3", "threadId": t, "requestId": "c"}),
        )
        .await;
    let call = alice.recv_type("ack").await["callId"]
        .as_str()
        .expect("a call id")
        .to_owned();
    // A short random node id prefixes it.
    let (node, counter) = call.rsplit_once('-').expect("<node>-<counter>");
    assert_eq!((node.len(), counter), (8, "1"), "{call}");
    assert_eq!(bob.recv_type("call_initiated").await["callId"], call);
    bob.send(json!({"type": "answer", "answer": {"sdp": "A"}, "recipientId": "2", "threadId": t, "callId": call}))
        .await;
    assert_eq!(alice.recv_type("answer").await["answer"]["sdp"], "A");

    drop(bob);
    recv_about(&mut alice, "user_disconnected", "3").await;
    for n in &nodes {
        let (_, ready) = http_get(n.addr, "/readyz", "").await;
        assert!(!ready.contains("conflict"), "{ready}");
        assert_eq!(n.errors(), Vec::<String>::new());
    }
}

#[tokio::test]
async fn two_processes_given_one_node_id_are_reported_and_keep_serving() {
    let (site, t) = site().await;
    let p = prefix();
    let nodes = [
        Node::start("same", SHARED_REDIS, &p, &site, &[]),
        Node::start("same", SHARED_REDIS, &p, &site, &[]),
    ];
    for n in &nodes {
        n.linked().await;
    }
    let mut alice = nodes[0].user("alice", "2", t).await;
    let mut bob = nodes[1].user("bob", "3", t).await;
    recv_about(&mut alice, "user_connected", "3").await;
    alice
        .send(json!({"type": "send_message", "threadId": t, "message": "still crosses"}))
        .await;
    recv_message(&mut bob, "still crosses").await;
    bob.send(json!({"type": "typing", "threadId": t})).await;
    assert_eq!(alice.recv_type("typing").await["userId"], "3");
    for n in &nodes {
        wait_for(|| async {
            let (status, body) = http_get(n.addr, "/readyz", "").await;
            status == 200 && body.contains("node id: conflict")
        })
        .await;
        let (_, ready) = http_get(n.addr, "/readyz", "").await;
        assert!(ready.contains("--node-id"), "names the fix: {ready}");
        let (_, metrics) = http_get(n.addr, "/metrics", "").await;
        assert!(metrics.contains("\nbbrt_node_id_conflict 1\n"), "{metrics}");
        let errors = n.errors();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("this node's id") && e.contains("--node-id")),
            "{errors:?}"
        );
    }
    // One of them leaves gracefully: the other's users no longer see its users, and the
    // conflict is over.
    let [first, second] = nodes;
    second.stop();
    recv_about(&mut alice, "user_disconnected", "3").await;
    wait_for(|| async {
        let (_, body) = http_get(first.addr, "/readyz", "").await;
        !body.contains("conflict")
    })
    .await;
}

#[tokio::test]
async fn a_retried_client_message_id_on_another_node_posts_once() {
    let (site, t) = site().await;
    let nodes = cluster(2, &site, &[]).await;
    let mut on1 = nodes[0].user("alice", "2", t).await;
    let mut on2 = nodes[1].user("alice", "2", t).await;
    let send = json!({"type": "send_message", "threadId": t, "message": "once", "clientMessageId": "cm-1"});
    on1.send(send.clone()).await;
    let first = on1.recv_type("ack").await;
    on2.send(send).await;
    let second = on2.recv_type("ack").await;
    assert_eq!(first["id"], second["id"], "{first} {second}");
    assert_eq!(
        site.messages(t)
            .iter()
            .filter(|m| m.stored.contains("once"))
            .count(),
        1
    );
}

#[tokio::test]
async fn a_call_from_one_node_rings_devices_on_two_others_and_binds_one() {
    let (site, t) = site().await;
    let nodes = cluster(3, &site, &[]).await;
    let mut alice = nodes[0].user("alice", "2", t).await;
    let mut b2 = nodes[1].user("bob", "3", t).await;
    let mut b3 = nodes[2].user("bob", "3", t).await;
    // alice's node knows bob is online before calling.
    recv_about(&mut alice, "user_connected", "3").await;

    alice
        .send(
            json!({"type": "call_initiated", "recipientId": "3", "threadId": t, "requestId": "c"}),
        )
        .await;
    let call = alice.recv_type("ack").await["callId"]
        .as_str()
        .expect("a call id")
        .to_owned();
    for b in [&mut b2, &mut b3] {
        let ring = b.recv_type("call_initiated").await;
        assert_eq!(
            (ring["callId"].as_str(), ring["senderId"].as_str()),
            (Some(call.as_str()), Some("2"))
        );
    }
    let sdp = json!({"type": "offer", "sdp": "v=0\r\n"});
    alice
        .send(json!({"type": "offer", "offer": sdp, "recipientId": "3", "threadId": t, "callId": call}))
        .await;
    for b in [&mut b2, &mut b3] {
        assert_eq!(b.recv_type("offer").await["offer"], sdp);
    }

    // The device on n3 answers first; the one on n2 hears answered_elsewhere.
    b3.send(json!({"type": "answer", "answer": {"sdp": "A"}, "recipientId": "2", "threadId": t, "callId": call}))
        .await;
    assert_eq!(alice.recv_type("answer").await["answer"]["sdp"], "A");
    assert_eq!(
        ended(&b2.recv_type("call_ended").await),
        "answered_elsewhere"
    );
    // A late answer from n2 loses.
    b2.send(json!({"type": "call_accepted", "callId": call, "requestId": "late"}))
        .await;
    assert_eq!(b2.recv_type("error").await["requestId"], "late");

    // Signaling flows only between the bound devices.
    alice
        .send(json!({"type": "ice-candidate", "candidate": "from-alice", "recipientId": "3", "threadId": t}))
        .await;
    assert_eq!(
        b3.recv_type("ice-candidate").await["candidate"],
        "from-alice"
    );
    b3.send(json!({"type": "ice-candidate", "candidate": "from-bob", "recipientId": "2", "threadId": t}))
        .await;
    assert_eq!(
        alice.recv_type("ice-candidate").await["candidate"],
        "from-bob"
    );
    let stray = b2.kinds_within(Duration::from_millis(300)).await;
    assert!(
        stray.is_empty(),
        "the losing device hears nothing more: {stray:?}"
    );

    alice
        .send(json!({"type": "call_ended", "callId": call}))
        .await;
    assert_eq!(ended(&b3.recv_type("call_ended").await), "hangup");
}

#[tokio::test]
async fn cross_node_calls_time_out_glare_are_busy_and_end_on_disconnect() {
    let (site, t) = site().await;
    let nodes = cluster(2, &site, &["--ring-timeout", "1500ms"]).await;
    let mut alice = nodes[0].user("alice", "2", t).await;
    let mut bob = nodes[1].user("bob", "3", t).await;
    let mut carol = nodes[1].user("carol", "4", t).await;
    recv_about(&mut alice, "user_connected", "3").await;
    let invite = |to: &str, request: &str| json!({"type": "call_initiated", "recipientId": to, "threadId": t, "requestId": request});

    // Nobody answers: both ends hear the timeout.
    alice.send(invite("3", "c1")).await;
    alice.recv_type("ack").await;
    bob.recv_type("call_initiated").await;
    assert_eq!(ended(&alice.recv_type("call_ended").await), "timeout");
    assert_eq!(ended(&bob.recv_type("call_ended").await), "timeout");

    // Glare: bob calls alice while alice's call rings him; the lesser call id (n1's) stays.
    alice.send(invite("3", "c2")).await;
    let call = alice.recv_type("ack").await["callId"]
        .as_str()
        .expect("a call id")
        .to_owned();
    assert_eq!(
        bob.recv_type("call_initiated").await["callId"],
        call.as_str()
    );
    bob.send(invite("2", "g")).await;
    assert_eq!(ended(&bob.recv_type("call_ended").await), "glare");
    assert_eq!(bob.recv_type("ack").await["callId"], call.as_str());

    // bob accepts; carol, on bob's node, finds him busy.
    bob.send(json!({"type": "call_accepted", "callId": call}))
        .await;
    assert_eq!(
        alice.recv_type("call_accepted").await["callId"],
        call.as_str()
    );
    carol.send(invite("3", "busy")).await;
    assert_eq!(ended(&carol.recv_type("call_ended").await), "busy");

    // bob's bound device goes: after the grace, alice's call ends.
    drop(bob);
    assert_eq!(ended(&alice.recv_type("call_ended").await), "disconnected");
}

#[tokio::test]
async fn a_killed_node_takes_its_users_offline_elsewhere() {
    let (site, t) = site().await;
    let mut nodes = cluster(2, &site, &[]).await;
    let mut alice = nodes[0].user("alice", "2", t).await;
    let _bob = nodes[1].user("bob", "3", t).await;
    recv_about(&mut alice, "user_connected", "3").await;
    // SIGKILL: no goodbye; n1 notices the expired heartbeat (3 × 200 ms).
    nodes.pop().expect("two nodes").kill();
    recv_about(&mut alice, "user_disconnected", "3").await;
    let (_, metrics) = http_get(nodes[0].addr, "/metrics", "").await;
    assert!(
        metrics.contains("bbrt_redis_nodes_down_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_node_stopping_gracefully_takes_its_users_offline_at_once() {
    let (site, t) = site().await;
    // A heartbeat TTL of 30 s: only the goodbye can tell alice in time.
    let mut nodes = cluster(2, &site, &["--redis-heartbeat", "10s"]).await;
    let mut alice = nodes[0].user("alice", "2", t).await;
    let mut bob = nodes[1].user("bob", "3", t).await;
    recv_about(&mut alice, "user_connected", "3").await;
    let stopping = Instant::now();
    nodes.pop().expect("two nodes").stop();
    assert_eq!(bob.closed().await, Some(1001));
    recv_about(&mut alice, "user_disconnected", "3").await;
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "offline only after {:?}: no goodbye",
        stopping.elapsed()
    );
}

#[tokio::test]
async fn a_restarted_node_leaves_no_ghosts() {
    let (site, t) = site().await;
    let p = prefix();
    // A heartbeat TTL (30 s) far beyond the test's patience: only the restart can tell.
    let slow = ["--redis-heartbeat", "10s", "--presence-snapshot", "60s"];
    let n1 = Node::start("n1", SHARED_REDIS, &p, &site, &slow);
    let n2 = Node::start("n2", SHARED_REDIS, &p, &site, &slow);
    n1.linked().await;
    n2.linked().await;
    let mut alice = n1.user("alice", "2", t).await;
    let _bob = n2.user("bob", "3", t).await;
    recv_about(&mut alice, "user_connected", "3").await;
    n2.kill();
    let n2 = Node::start("n2", SHARED_REDIS, &p, &site, &slow);
    n2.linked().await;
    recv_about(&mut alice, "user_disconnected", "3").await;
    // And the new n2 serves bob again.
    let _bob = n2.user("bob", "3", t).await;
    recv_about(&mut alice, "user_connected", "3").await;
}

#[tokio::test]
async fn traffic_resumes_after_redis_restarts() {
    let (site, t) = site().await;
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let mut redis = PrivateRedis::start(port);
    let p = prefix();
    let n1 = Node::start("n1", &url, &p, &site, &[]);
    let n2 = Node::start("n2", &url, &p, &site, &[]);
    let strict = Node::start("n3", &url, &p, &site, &["--redis-required-for-ready"]);
    n1.linked().await;
    n2.linked().await;
    strict.linked().await;
    let mut alice = n1.user("alice", "2", t).await;
    let mut bob = n2.user("bob", "3", t).await;
    alice
        .send(json!({"type": "send_message", "threadId": t, "message": "before"}))
        .await;
    assert_eq!(bob.recv_type("message").await["message"], "before");

    redis.stop();
    for n in [&n1, &n2] {
        wait_for(|| async {
            let (status, body) = http_get(n.addr, "/readyz", "").await;
            // Degraded, still ready (the default).
            status == 200 && body.contains("redis: degraded")
        })
        .await;
    }
    // Unless told otherwise.
    wait_for(|| async { http_get(strict.addr, "/readyz", "").await.0 == 503 }).await;
    // Local traffic goes on: the sender's own echo, through the site.
    alice
        .send(json!({"type": "send_message", "threadId": t, "message": "during"}))
        .await;
    recv_message(&mut alice, "during").await;
    let (_, metrics) = http_get(n1.addr, "/metrics", "").await;
    assert!(metrics.contains("bbrt_redis_degraded 1"), "{metrics}");

    let redis = PrivateRedis::start(port);
    n1.linked().await;
    n2.linked().await;
    strict.linked().await;
    alice
        .send(json!({"type": "send_message", "threadId": t, "message": "after"}))
        .await;
    recv_message(&mut bob, "after").await;
    bob.send(json!({"type": "send_message", "threadId": t, "message": "back"}))
        .await;
    recv_message(&mut alice, "back").await;
    let (_, metrics) = http_get(n1.addr, "/metrics", "").await;
    assert!(metrics.contains("bbrt_redis_degraded 0"), "{metrics}");
    drop(redis);
}

#[tokio::test]
async fn nodes_link_through_redis_over_tls() {
    let (site, t) = site().await;
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let tls = TestCertificates::make();
    let _redis = PrivateRedis::start_tls(port, &tls);
    // The nodes trust the test CA alone (rustls-native-certs reads SSL_CERT_FILE).
    let ca = tls.ca.to_str().expect("utf-8 path");
    let env = [("SSL_CERT_FILE", ca)];
    let url = format!("rediss://127.0.0.1:{port}/");
    let p = prefix();
    let n1 = Node::start_with_env("n1", &url, &p, &site, &[], &env);
    let n2 = Node::start_with_env("n2", &url, &p, &site, &[], &env);
    n1.linked().await;
    n2.linked().await;
    let mut alice = n1.user("alice", "2", t).await;
    let mut bob = n2.user("bob", "3", t).await;
    recv_about(&mut alice, "user_connected", "3").await;
    alice
        .send(json!({"type": "send_message", "threadId": t, "message": "over tls"}))
        .await;
    recv_message(&mut bob, "over tls").await;

    // A node that does not trust the server's certificate never links.
    let untrusting = Node::start("n3", &url, &p, &site, &[]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, body) = http_get(untrusting.addr, "/readyz", "").await;
    assert!(body.contains("redis: degraded"), "{body}");
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with the `openssl` CLI
/// in a directory of this test alone.
struct TestCertificates {
    dir: std::path::PathBuf,
    ca: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

impl TestCertificates {
    fn make() -> Self {
        let dir = std::env::temp_dir().join(format!("bbrt-tls-{}", prefix()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = |name: &str| dir.join(name);
        let ext = path("ext.cnf");
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write ext");
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("the openssl CLI is installed");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(&[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=bbrt test CA",
            ],
        ]
        .concat());
        run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat());
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        Self {
            ca: path("ca.pem"),
            cert: path("server.pem"),
            key: path("server.key"),
            dir,
        }
    }
}

impl Drop for TestCertificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `redis-server` of this test alone, stopped when dropped.
struct PrivateRedis {
    child: Option<Child>,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        Self::spawn(port, &["--port", &port.to_string()])
    }

    /// TLS only, on `port`; clients are not asked for certificates.
    fn start_tls(port: u16, tls: &TestCertificates) -> Self {
        let path = |p: &std::path::Path| p.to_str().expect("utf-8 path").to_owned();
        let port_arg = port.to_string();
        let (cert, key, ca) = (path(&tls.cert), path(&tls.key), path(&tls.ca));
        Self::spawn(
            port,
            &[
                "--port",
                "0",
                "--tls-port",
                &port_arg,
                "--tls-cert-file",
                &cert,
                "--tls-key-file",
                &key,
                "--tls-ca-cert-file",
                &ca,
                "--tls-auth-clients",
                "no",
            ],
        )
    }

    fn spawn(port: u16, listen: &[&str]) -> Self {
        let child = Command::new("redis-server")
            .args(listen)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
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

/// With bbrt's plugin, a send whose node restarts while the site is still storing it is
/// stored once when the client retries it on the restarted node: the key is on the site.
#[tokio::test]
async fn with_the_plugin_a_send_cut_short_by_a_restart_is_stored_once() {
    let (site, t) = site().await;
    site.set_plugin(true);
    site.set_in_progress_wait(Duration::from_millis(100));
    let p = prefix();
    let n1 = Node::start("n1", SHARED_REDIS, &p, &site, &[]);
    n1.linked().await;
    let mut alice = n1.user("alice", "2", t).await;
    // The site claims the key, then takes 4 s to store it; the node restarts meanwhile.
    site.inject(Fault::SlowStore(Duration::from_secs(4)), 1);
    let send = json!({"type": "send_message", "threadId": t, "message": "across a restart",
                      "clientMessageId": "cm-restart", "requestId": 1});
    alice.send(send.clone()).await;
    wait_for(|| async { site.send_keys() == 1 }).await;
    drop(alice);
    n1.stop();
    let n1 = Node::start("n1", SHARED_REDIS, &p, &site, &[]);
    n1.linked().await;
    let mut alice = n1.user("alice", "2", t).await;
    let mut ack = None;
    for _ in 0..30 {
        alice.send(send.clone()).await;
        let v = loop {
            let v = alice.recv().await;
            if matches!(v["type"].as_str(), Some("ack" | "error")) {
                break v;
            }
        };
        if v["type"] == "ack" {
            ack = Some(v);
            break;
        }
        assert_eq!(v["retryable"], true, "{v}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ack = ack.expect("acked");
    let stored: Vec<_> = site
        .messages(t)
        .into_iter()
        .filter(|m| m.stored == "across a restart")
        .collect();
    assert_eq!(stored.len(), 1, "one copy");
    assert_eq!(ack["id"], stored[0].id.to_string());
    assert_eq!(site.count("POST", "/buddyboss/v1/messages"), 0);
    assert!(n1.errors().is_empty(), "{:?}", n1.errors());
}
