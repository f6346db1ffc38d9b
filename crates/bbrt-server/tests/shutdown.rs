//! The graceful stop of the real binary: on SIGTERM `/readyz` answers 503 while the drain
//! delay runs and the connections are still served, then they are closed with 1001.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Client, WAIT, http_get};
use serde_json::json;

/// The server binary as its own process, killed if the test ends early.
struct Process {
    child: Child,
    addr: SocketAddr,
}

impl Process {
    async fn start(args: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("addr")
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let child = Command::new(env!("CARGO_BIN_EXE_bbrt-server"))
            .arg("--listen")
            .arg(addr.to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server binary starts");
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server listens in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, addr }
    }

    fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn sigterm_turns_readyz_503_during_the_drain_delay_then_closes_1001() {
    let mut server = Process::start(&["--drain-delay", "3s", "--shutdown-grace", "1s"]).await;
    let url = format!("ws://{}/", server.addr);
    let mut alice = Client::connect(&url, &[]).await;
    alice
        .send(json!({"type": "user_connected", "userId": "alice", "requestId": "hi"}))
        .await;
    assert_eq!(alice.recv_type("ack").await["requestId"], "hi");
    assert_eq!(http_get(server.addr, "/readyz", "").await.0, 200);

    server.signal("TERM");
    // A probe always gets an answer (never a refused connection): 200 until the signal is
    // handled, then 503.
    let deadline = tokio::time::Instant::now() + WAIT;
    let (status, body) = loop {
        let (status, body) = http_get(server.addr, "/readyz", "").await;
        if status != 200 {
            break (status, body);
        }
        assert!(tokio::time::Instant::now() < deadline, "503 in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!((status, body.as_str()), (503, "shutting down\n"));

    // While the delay runs the open connection is still served; new upgrades are refused
    // so the load balancer sends them elsewhere.
    alice
        .send(json!({"type": "ping", "requestId": "draining"}))
        .await;
    assert_eq!(alice.recv_skip_presence().await["requestId"], "draining");
    assert!(Client::try_connect(&url, &[]).await.is_err());
    assert_eq!(http_get(server.addr, "/healthz", "").await.0, 200);

    assert_eq!(alice.closed().await, Some(1001));
    let status = tokio::task::spawn_blocking(move || {
        let status = server.child.wait().expect("wait");
        drop(server);
        status
    })
    .await
    .expect("join");
    assert!(status.success(), "{status}");
}
