//! The cluster's harness: real `bbrt-server` processes on one fake site, a private
//! `redis-server` where a test restarts Redis, and the helpers the scenarios share.

pub(crate) use std::io::{BufRead, BufReader};
pub(crate) use std::net::{SocketAddr, TcpListener};
pub(crate) use std::process::{Child, Command, Stdio};
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
pub(crate) use std::sync::mpsc as std_mpsc;
pub(crate) use std::sync::{Arc, Mutex};
pub(crate) use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub(crate) use crate::common::{Client, WAIT, http_get};
pub(crate) use bbrt_buddyboss::fake::{FakeSite, Fault};
pub(crate) use serde_json::{Value, json};

pub(crate) const SHARED_REDIS: &str = "redis://127.0.0.1:6379/";

pub(crate) fn prefix() -> String {
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
pub(crate) struct Node {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    /// The `message` of every ERROR line it logged.
    pub(crate) errors: Arc<Mutex<Vec<String>>>,
}

impl Node {
    /// Starts node `id`; `extra` flags override the short test timings below.
    ///
    /// `BBRT_TEST_SERVER_BIN` runs another build of the binary; `BBRT_TEST_LOG_DIR` keeps
    /// each node's log (JSON lines) and stderr there.
    pub(crate) fn start(
        id: &str,
        redis: &str,
        prefix: &str,
        site: &FakeSite,
        extra: &[&str],
    ) -> Self {
        Self::start_with_env(id, redis, prefix, site, extra, &[])
    }

    /// [`Node::start`] with extra environment variables for the process.
    pub(crate) fn start_with_env(
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
    pub(crate) fn start_unnamed(
        label: &str,
        prefix: &str,
        site: &FakeSite,
        extra: &[&str],
    ) -> Self {
        Self::start_args(label, SHARED_REDIS, prefix, site, extra, &[])
    }

    pub(crate) fn start_args(
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

    pub(crate) fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Waits until the node is linked to Redis (connected and subscribed).
    pub(crate) async fn linked(&self) {
        wait_for(|| async {
            let (status, body) = http_get(self.addr, "/readyz", "").await;
            status == 200 && body.contains("redis: ok")
        })
        .await;
    }

    /// A verified user (bearer `<login>-token`) identified as `id` and joined to `thread`.
    pub(crate) async fn user(&self, login: &str, id: &str, thread: u64) -> Client {
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

    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM: the graceful stop (closes its clients with 1001, says goodbye); waits for
    /// the process to end.
    pub(crate) fn stop(mut self) {
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

pub(crate) async fn wait_for<F, Fut>(mut f: F)
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
pub(crate) async fn site() -> (FakeSite, u64) {
    let site = FakeSite::start_seeded().await.expect("fake site");
    let (thread, _) = site.create_thread(2, &[3, 4], "hello from the site");
    (site, thread)
}

/// Nodes `n1..=count` on the shared Redis under a fresh prefix, linked.
pub(crate) async fn cluster(count: usize, site: &FakeSite, extra: &[&str]) -> Vec<Node> {
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
pub(crate) async fn recv_message(c: &mut Client, text: &str) -> Value {
    loop {
        let m = c.recv_type("message").await;
        if m["message"] == text {
            return m;
        }
    }
}

/// The next frame of `kind` about `user` (skipping others, such as older presence).
pub(crate) async fn recv_about(c: &mut Client, kind: &str, user: &str) -> Value {
    loop {
        let v = c.recv_type(kind).await;
        if v["userId"] == user {
            return v;
        }
    }
}

pub(crate) fn ended(v: &Value) -> &str {
    assert_eq!(v["type"], "call_ended", "{v}");
    v["reason"].as_str().unwrap_or("")
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with the `openssl` CLI
/// in a directory of this test alone.
pub(crate) struct TestCertificates {
    pub(crate) dir: std::path::PathBuf,
    pub(crate) ca: std::path::PathBuf,
    pub(crate) cert: std::path::PathBuf,
    pub(crate) key: std::path::PathBuf,
}

impl TestCertificates {
    pub(crate) fn make() -> Self {
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
pub(crate) struct PrivateRedis {
    pub(crate) child: Option<Child>,
}

impl PrivateRedis {
    pub(crate) fn start(port: u16) -> Self {
        Self::spawn(port, &["--port", &port.to_string()])
    }

    /// TLS only, on `port`; clients are not asked for certificates.
    pub(crate) fn start_tls(port: u16, tls: &TestCertificates) -> Self {
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

    pub(crate) fn spawn(port: u16, listen: &[&str]) -> Self {
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

    pub(crate) fn stop(&mut self) {
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
