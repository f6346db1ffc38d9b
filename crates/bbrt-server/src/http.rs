//! The HTTP/1.1 side: reading the request head before an upgrade, writing responses,
//! credentials and client address from the upgrade, and Origins. Parsing the head and
//! the WebSocket handshake are `bbrt_ws::handshake`'s (no I/O, fuzzed).
//!
//! The server parses the head itself and keeps the raw `TcpStream`, so the upgraded
//! connection carries no HTTP machinery and no buffers (`docs/server.md`).

use std::net::IpAddr;
use std::time::Duration;

use bbrt_buddyboss::{AuthScheme, Credential};
use bbrt_protocol::secret::Token;
use bbrt_ws::body::{BodyError, BodyLimits, BodyReader};
pub(crate) use bbrt_ws::handshake::{self, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::{Cidr, canonical};

/// Why a request head could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeadError {
    #[error("connection closed before the request head")]
    Closed,
    #[error("request head not received in time")]
    Timeout,
    #[error(transparent)]
    Head(#[from] handshake::HeadError),
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
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
            let n = stream.read_buf(&mut buf).await?;
            if n == 0 {
                return Err(HeadError::Closed);
            }
            if let Some((request, len)) = handshake::parse_head(&buf)? {
                return Ok((request, buf[len..].to_vec()));
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| HeadError::Timeout)?
}

/// Reads a request's body with the bounded reader (`Content-Length` only, at most
/// `limits.max_bytes`, by `limits.timeout` after the head). `early` holds the bytes read
/// past the head. A client that sent `Expect: 100-continue` is told to go on.
pub(crate) async fn read_body(
    stream: &mut TcpStream,
    req: &Request,
    early: &[u8],
    limits: BodyLimits,
) -> Result<Vec<u8>, BodyError> {
    let now = std::time::Instant::now();
    let mut reader = BodyReader::new(req, limits, now)?;
    reader.feed(now, early)?;
    if !reader.is_complete()
        && early.is_empty()
        && req
            .header("expect")
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("100-continue"))
    {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
    }
    let deadline = tokio::time::Instant::from_std(reader.deadline());
    let mut buf = vec![0u8; reader.remaining().min(16 * 1024)];
    while !reader.is_complete() {
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            // Closed or failed before the body's end: nothing more will come.
            Ok(_) | Err(_) => return Err(BodyError::Timeout),
        };
        reader.feed(std::time::Instant::now(), &buf[..n])?;
    }
    Ok(reader.into_body())
}

/// Writes a complete response and lets the connection close.
pub(crate) async fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) {
    let head = handshake::response_head(status, content_type, body.len());
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
/// `?ticket=` (a companion-plugin ticket: the most specific, and a browser that also holds
/// the site's cookie is identified by its ticket), `Authorization`, the BuddyBoss App's `accessToken` header, the WordPress login cookie
/// with `X-WP-Nonce` (or `?_wpnonce=`), then `?token=` presented with `query_scheme`.
pub(crate) fn upgrade_credential(req: &Request, query_scheme: &AuthScheme) -> Option<Credential> {
    if let Some(ticket) = req.query_param("ticket").filter(|t| !t.is_empty()) {
        return Some(Credential::ticket(ticket));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)], query: Option<&str>) -> Request {
        let target = query.map_or_else(|| "/".to_owned(), |q| format!("/?{q}"));
        Request::new("GET", &target, headers.iter().copied())
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
