//! Client connections and the server under test.

use std::borrow::Cow;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Deserialize;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::proto::Proto;

/// A client connection.
pub(crate) type Ws = WebSocketStream<TcpStream>;

/// The source address of client `idx`: one address per connection, spread over
/// 127.1.0.0/16 (250 per /24), so no per-IP cap and no ephemeral-port range is shared.
pub(crate) fn source_ip(idx: usize) -> Ipv4Addr {
    let idx = u32::try_from(idx).unwrap_or(u32::MAX) % (250 * 250);
    Ipv4Addr::new(127, 1, (idx / 250) as u8, (idx % 250 + 1) as u8)
}

/// Small buffers: tungstenite's default read buffer is 128 KiB per connection. Writes are
/// buffered until a flush (`send` flushes; the closed-loop clients `feed` several messages
/// and flush once); the buffer grows only to what is queued.
pub(crate) fn ws_config(read_buf: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read_buf)
        .write_buffer_size(64 * 1024)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// Where the server listens.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) port: u16,
    /// The seed's servers' WebSocket path (the other protocols have their own).
    pub(crate) path: String,
    pub(crate) read_buf: usize,
    /// The protocol the server speaks.
    pub(crate) proto: Proto,
}

impl Target {
    /// Opens client connection `idx` from its own source address.
    pub(crate) async fn connect(&self, idx: usize) -> Result<Ws, String> {
        let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
        socket
            .bind(SocketAddr::new(source_ip(idx).into(), 0))
            .map_err(|e| format!("bind {}: {e}", source_ip(idx)))?;
        let stream = socket
            .connect(SocketAddr::from(([127, 0, 0, 1], self.port)))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("nodelay: {e}"))?;
        let url = format!(
            "ws://127.0.0.1:{}{}",
            self.port,
            self.proto.path(&self.path)
        );
        let (ws, _) = tokio_tungstenite::client_async_with_config(
            url,
            stream,
            Some(ws_config(self.read_buf)),
        )
        .await
        .map_err(|e| format!("handshake: {e}"))?;
        Ok(ws)
    }

    /// Waits until the port accepts TCP connections.
    pub(crate) async fn wait_listening(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "nothing listens on 127.0.0.1:{} after {timeout:?}",
                    self.port
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The body of `GET path` on 127.0.0.1:`port` (the server's health and metrics endpoints).
pub(crate) async fn http_get(port: u16, path: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("read: {e}"))?;
        Ok::<_, String>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| format!("GET {path}: no answer within 5 s"))??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {path}: not an HTTP response"))?;
    if head.split(' ').nth(1) != Some("200") {
        return Err(format!("GET {path}: {}", head.lines().next().unwrap_or("")));
    }
    Ok(body.to_owned())
}

/// The server under test: a shell command started with `exec`, so its pid is the server's
/// (`exec taskset -c 0 node server.js` keeps the pid through taskset's own exec).
pub(crate) struct Server {
    child: Child,
}

impl Server {
    /// Starts `cmd` (with `{port}` and `{site}` replaced), logging to `log`.
    pub(crate) fn start(
        cmd: &str,
        port: u16,
        site: &str,
        log: Option<&PathBuf>,
    ) -> Result<Self, String> {
        let cmd = cmd
            .replace("{port}", &port.to_string())
            .replace("{site}", site);
        let (out, err) = match log {
            Some(path) => {
                let f =
                    std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
                let g = f
                    .try_clone()
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                (Stdio::from(f), Stdio::from(g))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {cmd}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("start {cmd:?}: {e}"))?;
        eprintln!("  server pid {}: {cmd}", child.id());
        Ok(Self { child })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fields of a server frame the load generator looks at.
#[derive(Debug, Deserialize)]
pub(crate) struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(rename = "threadId", default, borrow)]
    pub(crate) thread_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) message: Option<Cow<'a, str>>,
    #[serde(rename = "userId", default, borrow)]
    pub(crate) user_id: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) typing: Option<bool>,
}

impl<'a> Incoming<'a> {
    pub(crate) fn parse(text: &'a str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// The `threadId` and `message` of a `message` frame, found by scanning instead of parsing
/// (a full JSON parse per delivery made the load generator, not the server, the limit).
///
/// Takes the fast path only for what it can read exactly: a frame that starts with
/// `{"type":"message"` and whose two strings hold no escapes. Anything else returns
/// `None` and the caller parses the frame fully, so nothing is judged on a guess.
pub(crate) fn scan_message(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix(r#"{"type":"message","#)?;
    let thread = string_field(rest, r#""threadId":""#)?;
    let message = string_field(rest, r#""message":""#)?;
    Some((thread, message))
}

/// The value of the string field that `key` (ending in its opening quote) introduces,
/// if it holds no escape.
pub(crate) fn string_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text.find(key)? + key.len();
    let len = text[start..].find('"')?;
    let value = &text[start..start + len];
    (!value.contains('\\')).then_some(value)
}

/// Whether `text` is a presence frame, judged without parsing it (the seed's broadcast
/// sends N² of them during a connection storm).
/// Both servers write `type` first.
pub(crate) fn is_presence(text: &str) -> bool {
    text.starts_with(r#"{"type":"user_connected""#)
        || text.starts_with(r#"{"type":"user_disconnected""#)
}

/// The text of a benchmark message: its sequence number, its scheduled send time (ns
/// since the run's epoch) and the sending client's index.
pub(crate) fn message_text(seq: u64, sched_ns: u64, sender: usize) -> String {
    format!("bench {seq} {sched_ns} {sender}")
}

/// Parses [`message_text`].
pub(crate) fn parse_message_text(text: &str) -> Option<(u64, u64, usize)> {
    let mut parts = text.strip_prefix("bench ")?.split(' ');
    let seq = parts.next()?.parse().ok()?;
    let sched = parts.next()?.parse().ok()?;
    let sender = parts.next()?.parse().ok()?;
    Some((seq, sched, sender))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_are_distinct_loopback() {
        let a: Vec<Ipv4Addr> = (0..20_000).map(source_ip).collect();
        assert!(
            a.iter()
                .all(|ip| ip.is_loopback() && ip.octets()[3] != 0 && ip.octets()[3] != 255)
        );
        let unique: std::collections::HashSet<_> = a.iter().collect();
        assert_eq!(unique.len(), a.len());
    }

    #[test]
    fn message_text_round_trips() {
        assert_eq!(
            parse_message_text(&message_text(7, 123_456, 42)),
            Some((7, 123_456, 42))
        );
        assert_eq!(parse_message_text("hello"), None);
    }

    #[test]
    fn recognizes_frames() {
        assert!(is_presence(r#"{"type":"user_connected","userId":"1"}"#));
        assert!(!is_presence(
            r#"{"type":"message","message":"user_connected"}"#
        ));
        let m = Incoming::parse(
            r#"{"type":"message","id":"1","threadId":"3","message":"x","extra":[1]}"#,
        )
        .expect("parses");
        assert_eq!(m.kind, "message");
        assert_eq!(m.thread_id.as_deref(), Some("3"));
    }

    #[test]
    fn scans_message_frames_of_both_servers() {
        // bbrt's order and Node's order.
        let bbrt = r#"{"type":"message","id":"9","threadId":"3","senderId":"7","message":"bench 1 2 3","sentAt":"x"}"#;
        let node =
            r#"{"type":"message","id":"9","threadId":"3","senderId":"7","message":"bench 1 2 3"}"#;
        for text in [bbrt, node] {
            assert_eq!(scan_message(text), Some(("3", "bench 1 2 3")));
        }
        // Escapes, other types and missing fields go to the full parser.
        assert_eq!(
            scan_message(r#"{"type":"message","threadId":"3","message":"a\"b"}"#),
            None
        );
        assert_eq!(
            scan_message(r#"{"type":"messages","threadId":"3","message":"x"}"#),
            None
        );
        assert_eq!(scan_message(r#"{"type":"message","message":"x"}"#), None);
    }
}
