//! Test helpers: a real server on port 0 and a tokio-tungstenite client.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use bbrt_buddyboss::BuddyBoss;
use bbrt_server::ServerHandle;
pub use bbrt_server::config::Config;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Fails a test instead of hanging it; never a performance threshold.
pub const WAIT: Duration = Duration::from_secs(10);

/// A configuration for tests: port 0, short call timers, no drain delay.
pub fn config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("valid address"),
        ring_timeout: Duration::from_millis(800),
        call_grace: Duration::from_millis(300),
        shutdown_grace: Duration::from_secs(2),
        drain_delay: Duration::ZERO,
        // The tests written before the grace expect offline at once; `recovery.rs` has its own.
        presence_grace: Duration::ZERO,
        ..Config::default()
    }
}

/// Waits (bounded) until the server's start-up probe of its site is done, so that faults
/// a test injects next are not taken by the probe.
pub async fn site_probed(server: &Server) {
    for _ in 0..100 {
        let (_, body) = http_get(server.handle.local_addr(), "/readyz", "").await;
        if body.contains("site: ok") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct Server {
    pub handle: ServerHandle,
    pub url: String,
}

impl Server {
    pub async fn start(config: Config) -> Self {
        let handle = bbrt_server::start(config).await.expect("server starts");
        let url = format!("ws://{}/", handle.local_addr());
        Self { handle, url }
    }

    pub async fn with_site(config: Config, site: Arc<dyn BuddyBoss>) -> Self {
        let handle = bbrt_server::start_with_site(config, site)
            .await
            .expect("server starts");
        let url = format!("ws://{}/", handle.local_addr());
        Self { handle, url }
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.url, &[]).await
    }

    /// A client already identified as `user` (embedded site: `dev:<user>`).
    pub async fn user(&self, user: &str) -> Client {
        let mut c = self.client().await;
        c.send(serde_json::json!({"type": "user_connected", "userId": user, "requestId": "hello"}))
            .await;
        let ack = c.recv_type("ack").await;
        assert_eq!(ack["requestId"], "hello");
        c
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{}", self.handle.local_addr(), path)
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn connect(url: &str, headers: &[(&'static str, &str)]) -> Self {
        Self::try_connect(url, headers)
            .await
            .expect("websocket connects")
    }

    pub async fn try_connect(
        url: &str,
        headers: &[(&'static str, &str)],
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(*name, HeaderValue::from_str(value).expect("valid header"));
        }
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("connect in time")?;
        Ok(Self { ws })
    }

    pub async fn send(&mut self, value: Value) {
        self.ws
            .send(Message::text(value.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// The next text frame as JSON.
    pub async fn recv(&mut self) -> Value {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time");
            match next {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(&text).expect("server frames are json");
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame of type `kind`, skipping others (presence, typing...).
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// The next frame that is not presence.
    pub async fn recv_skip_presence(&mut self) -> Value {
        loop {
            let v = self.recv().await;
            if v["type"] != "user_connected" && v["type"] != "user_disconnected" {
                return v;
            }
        }
    }

    /// Every text frame received within `dur`.
    pub async fn drain(&mut self, dur: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + dur;
        while let Ok(next) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            match next {
                Some(Ok(Message::Text(text))) => {
                    out.push(serde_json::from_str(&text).expect("json"))
                }
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        out
    }

    /// Types of frames (other than presence) received within `dur`.
    pub async fn kinds_within(&mut self, dur: Duration) -> Vec<String> {
        self.drain(dur)
            .await
            .into_iter()
            .filter(|v| v["type"] != "user_connected" && v["type"] != "user_disconnected")
            .map(|v| v["type"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// Reads until the server closes; returns the close code (None: closed without one).
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("close in time");
            match next {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }
}

/// A plain HTTP GET; returns status and body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str, headers: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .expect("read");
    http_status_and_body(&buf)
}

/// A raw HTTP answer's status (0 if there is none) and body.
pub fn http_status_and_body(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The server binary as its own process, so its RSS is its own.
pub struct Process {
    child: std::process::Child,
    pub addr: std::net::SocketAddr,
}

impl Process {
    /// Starts `bbrt-server` (or the binary `BBRT_SERVER_UNDER_TEST` names, to measure
    /// another build with the same test) with `args`.
    pub async fn start(args: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("addr")
            .port();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let binary = std::env::var_os("BBRT_SERVER_UNDER_TEST")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_bbrt-server").into());
        let child = std::process::Command::new(binary)
            .arg("--listen")
            .arg(addr.to_string())
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the server binary starts");
        let deadline = tokio::time::Instant::now() + WAIT;
        while TcpStream::connect(addr).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server listens in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, addr }
    }

    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("procfs");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in kB")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw upgraded socket (optionally with a small receive buffer), for what tungstenite
/// does not do: writing without ever reading.
pub async fn raw_websocket(addr: std::net::SocketAddr, recv_buffer: Option<u32>) -> TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
    }
    let mut s = socket.connect(addr).await.expect("connect");
    let req = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    s.write_all(req.as_bytes()).await.expect("write");
    // Byte by byte up to the blank line, so no frame is read with the response.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tokio::time::timeout(WAIT, s.read_exact(&mut byte))
            .await
            .expect("response in time")
            .expect("read");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// A masked client frame.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    bbrt_ws::frame::client_frame(fin, opcode, [1, 2, 3, 4], payload)
}

/// The value of metric line `name` (labels included) in a `/metrics` body.
pub fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}
