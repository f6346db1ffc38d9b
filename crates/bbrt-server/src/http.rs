//! The HTTP/1.1 side: the request head read before an upgrade, the WebSocket handshake,
//! credentials and client address from the upgrade, and the small plain endpoints
//! (`/healthz`, `/readyz`, `/metrics`, `/example`).
//!
//! The server parses the head itself (httparse) and keeps the raw `TcpStream`, so the
//! upgraded connection carries no HTTP machinery and no buffers (`docs/server.md`).

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use bbrt_buddyboss::{AuthScheme, Credential};
use bbrt_protocol::secret::Token;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::{Cidr, canonical};

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// Why a request head could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeadError {
    #[error("connection closed before the request head")]
    Closed,
    #[error("request head not received in time")]
    Timeout,
    #[error("request head too large")]
    TooLarge,
    #[error("malformed request: {0}")]
    Malformed(httparse::Error),
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A parsed request head. Header names are lowercase.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    /// The raw query string, if any. It may hold a token: never log it.
    query: Option<String>,
    headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of header `name` (lowercase).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, joined by commas (as HTTP allows).
    fn header_all(&self, name: &str) -> String {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        values.join(",")
    }

    /// The decoded value of query parameter `name`.
    pub(crate) fn query_param(&self, name: &str) -> Option<String> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
    }

    /// Whether header `name` holds `token` in its comma-separated list (case-insensitive).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.header_all(name)
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether this is a WebSocket upgrade request.
    pub(crate) fn is_upgrade(&self) -> bool {
        self.method == "GET"
            && self.has_token("upgrade", "websocket")
            && self.has_token("connection", "upgrade")
    }
}

/// Reads a request head. Returns it and the bytes read past it (the client's first
/// WebSocket frames, if it did not wait for the 101).
pub(crate) async fn read_head(
    stream: &mut TcpStream,
    timeout: Duration,
) -> Result<(Request, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        loop {
            if buf.len() >= MAX_HEAD {
                return Err(HeadError::TooLarge);
            }
            let n = stream.read_buf(&mut buf).await?;
            if n == 0 {
                return Err(HeadError::Closed);
            }
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let target = req.path.unwrap_or("/");
                    let (path, query) = match target.split_once('?') {
                        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
                        None => (target.to_owned(), None),
                    };
                    let headers = req
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    let request = Request {
                        method: req.method.unwrap_or("").to_owned(),
                        path,
                        query,
                        headers,
                    };
                    return Ok((request, buf[len..].to_vec()));
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(HeadError::Malformed(e)),
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| HeadError::Timeout)?
}

/// `Sec-WebSocket-Accept` for a client key (RFC 6455 §4.2.2).
pub(crate) fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Checks the handshake headers. `Ok(accept)`, or the status and text to refuse with.
pub(crate) fn check_handshake(req: &Request) -> Result<String, (u16, &'static str)> {
    if req.header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err((426, "unsupported websocket version; use 13"));
    }
    let Some(key) = req.header("sec-websocket-key") else {
        return Err((400, "missing sec-websocket-key"));
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .unwrap_or_default();
    if decoded.len() != 16 {
        return Err((400, "invalid sec-websocket-key"));
    }
    Ok(accept_key(key))
}

/// The 101 response.
pub(crate) fn switching_protocols(accept: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    )
}

/// Writes a complete response and lets the connection close.
pub(crate) async fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        body.len()
    );
    if status == 426 {
        head.push_str("Sec-WebSocket-Version: 13\r\n");
    }
    head.push_str("\r\n");
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await
    };
    if let Err(e) = tokio::time::timeout(Duration::from_secs(5), write)
        .await
        .unwrap_or(Ok(()))
    {
        tracing::debug!(error = %e, "http response not written");
    }
}

/// The credential presented with the upgrade, if any, in order of preference:
/// `Authorization`, the BuddyBoss App's `accessToken` header, the WordPress login cookie
/// with `X-WP-Nonce` (or `?_wpnonce=`), then `?token=` presented with `query_scheme`.
pub(crate) fn upgrade_credential(req: &Request, query_scheme: &AuthScheme) -> Option<Credential> {
    if let Some(c) = req
        .header("authorization")
        .and_then(Credential::from_authorization_header)
    {
        return Some(c);
    }
    if let Some(jwt) = req
        .header("accesstoken")
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        return Some(Credential::access_token(jwt));
    }
    let nonce = req
        .header("x-wp-nonce")
        .map(str::to_owned)
        .or_else(|| req.query_param("_wpnonce"));
    if let (Some(cookie), Some(nonce)) = (req.header("cookie"), nonce)
        && cookie.contains("wordpress_logged_in")
        && !nonce.is_empty()
    {
        return Some(Credential::cookie(cookie, nonce));
    }
    let token = req.query_param("token").filter(|t| !t.is_empty())?;
    Some(Credential::new(Token::new(token), query_scheme.clone()))
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the rightmost
/// `X-Forwarded-For` entry that is not itself a trusted proxy.
pub(crate) fn client_ip(req: &Request, peer: IpAddr, trusted: &[Cidr]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let forwarded = req.header_all("x-forwarded-for");
    let mut client = peer;
    for entry in forwarded.rsplit(',') {
        let Ok(ip) = entry.trim().parse::<IpAddr>() else {
            break;
        };
        client = canonical(ip);
        if !is_trusted(client) {
            break;
        }
    }
    client
}

/// Whether `origin` may open a WebSocket. An empty allow-list allows any; a request
/// without `Origin` (not a browser) is allowed.
pub(crate) fn origin_allowed(req: &Request, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    match req.header("origin") {
        None => true,
        Some(origin) => {
            let origin = origin.trim().trim_end_matches('/');
            allowed
                .iter()
                .any(|a| a == "*" || a.trim().trim_end_matches('/').eq_ignore_ascii_case(origin))
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)], query: Option<&str>) -> Request {
        Request {
            method: "GET".into(),
            path: "/".into(),
            query: query.map(str::to_owned),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn accept_key_from_the_rfc() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn query_params_are_decoded() {
        let r = req(&[], Some("a=1&token=abc%2Bdef%3D&x"));
        assert_eq!(r.query_param("token").as_deref(), Some("abc+def="));
        assert_eq!(r.query_param("x").as_deref(), Some(""));
        assert_eq!(r.query_param("missing"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn credentials_in_order_of_preference() {
        let bearer = AuthScheme::Bearer;
        let r = req(&[("Authorization", "Bearer abc")], Some("token=q"));
        assert_eq!(
            upgrade_credential(&r, &bearer),
            Some(Credential::bearer("abc"))
        );
        let r = req(&[("accessToken", "jwt")], None);
        assert_eq!(
            upgrade_credential(&r, &bearer),
            Some(Credential::access_token("jwt"))
        );
        let r = req(
            &[("Cookie", "wordpress_logged_in_x=1"), ("X-WP-Nonce", "n")],
            None,
        );
        assert_eq!(
            upgrade_credential(&r, &bearer),
            Some(Credential::cookie("wordpress_logged_in_x=1", "n"))
        );
        let r = req(
            &[("Cookie", "wordpress_logged_in_x=1")],
            Some("_wpnonce=n2"),
        );
        assert_eq!(
            upgrade_credential(&r, &bearer),
            Some(Credential::cookie("wordpress_logged_in_x=1", "n2"))
        );
        let r = req(&[], Some("token=q"));
        assert_eq!(
            upgrade_credential(&r, &AuthScheme::Basic),
            Some(Credential::basic("q"))
        );
        assert_eq!(upgrade_credential(&req(&[], None), &bearer), None);
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted = vec![Cidr::from_str_for_tests("10.0.0.0/8")];
        let r = req(&[("X-Forwarded-For", "1.2.3.4, 10.0.0.7")], None);
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let other: IpAddr = "5.6.7.8".parse().expect("ip");
        assert_eq!(
            client_ip(&r, proxy, &trusted),
            "1.2.3.4".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(client_ip(&r, other, &trusted), other);
        let spoof = req(&[("X-Forwarded-For", "9.9.9.9, 1.2.3.4")], None);
        assert_eq!(
            client_ip(&spoof, proxy, &trusted),
            "1.2.3.4".parse::<IpAddr>().expect("ip")
        );
        let garbage = req(&[("X-Forwarded-For", "nonsense")], None);
        assert_eq!(client_ip(&garbage, proxy, &trusted), proxy);
    }

    #[test]
    fn origins() {
        let allowed = vec!["https://community.example".to_owned()];
        assert!(origin_allowed(
            &req(&[("Origin", "https://community.example")], None),
            &allowed
        ));
        assert!(!origin_allowed(
            &req(&[("Origin", "https://evil.example")], None),
            &allowed
        ));
        assert!(origin_allowed(&req(&[], None), &allowed));
        assert!(origin_allowed(
            &req(&[("Origin", "https://evil.example")], None),
            &[]
        ));
    }
}
