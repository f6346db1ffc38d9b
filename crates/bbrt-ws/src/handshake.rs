//! The HTTP/1.1 request head and the WebSocket upgrade (RFC 6455 §4.2).
//!
//! [`parse_head`] is called with everything read so far, after each read; it never holds
//! bytes of its own. A head is at most [`MAX_HEAD`] bytes, however the bytes arrive.

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// Largest request head accepted, its final blank line included.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header lines accepted.
pub const MAX_HEADERS: usize = 64;

/// Why a request head is refused (both are answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// The head is over [`MAX_HEAD`] bytes.
    #[error("request head too large")]
    TooLarge,
    /// Not an HTTP/1.x request head (or over [`MAX_HEADERS`] lines).
    #[error("malformed request: {0}")]
    Malformed(httparse::Error),
}

/// A parsed request head. Header names are lowercase; values are kept in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, as sent.
    pub method: String,
    /// The target without its query string.
    pub path: String,
    /// The raw query string, if any. It may hold a token: never log it.
    query: Option<String>,
    headers: Vec<(String, String)>,
}

impl Request {
    /// A request from its parts (`target` may carry a query string).
    pub fn new<'a>(
        method: &str,
        target: &str,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (target.to_owned(), None),
        };
        Self {
            method: method.to_owned(),
            path,
            query,
            headers: headers
                .into_iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
                .collect(),
        }
    }

    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, joined by commas (as HTTP allows).
    pub fn header_all(&self, name: &str) -> String {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        values.join(",")
    }

    /// Whether header `name` is present at all.
    pub fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n == name)
    }

    /// The decoded value of query parameter `name`.
    ///
    /// `application/x-www-form-urlencoded` as browsers write it (`form_urlencoded`): `%XX`
    /// and `+` are decoded, a malformed escape stays as it is, bytes that are not UTF-8
    /// become U+FFFD.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_deref()?.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// Whether header `name` holds `token` in its comma-separated list (case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.header_all(name)
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether this is a WebSocket upgrade request.
    pub fn is_upgrade(&self) -> bool {
        self.method == "GET"
            && self.has_token("upgrade", "websocket")
            && self.has_token("connection", "upgrade")
    }
}

/// Parses the request head at the start of `buf` (everything read so far). `Ok(None)`:
/// more bytes are needed. `Ok(Some((request, len)))`: the head is `buf[..len]`; what
/// follows is the client's (its first WebSocket frames, or a body).
///
/// # Errors
/// A head over [`MAX_HEAD`] bytes, or one httparse refuses.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => {
            let request = Request::new(
                req.method.unwrap_or(""),
                req.path.unwrap_or("/"),
                std::iter::empty(),
            );
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
            Ok(Some((Request { headers, ..request }, len)))
        }
        Ok(httparse::Status::Complete(_)) => Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(HeadError::Malformed(e)),
    }
}

/// An HTTP answer that refuses a request: status and plain-text body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// The body, one line.
    pub text: &'static str,
}

/// `Sec-WebSocket-Accept` for a client key (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Checks an upgrade request's handshake headers: the accept key, or the refusal.
///
/// # Errors
/// 426 for a version other than 13, 400 for a missing or malformed key.
pub fn check_handshake(req: &Request) -> Result<String, Refusal> {
    if req.header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err(Refusal {
            status: 426,
            text: "unsupported websocket version; use 13",
        });
    }
    let Some(key) = req.header("sec-websocket-key") else {
        return Err(Refusal {
            status: 400,
            text: "missing sec-websocket-key",
        });
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .unwrap_or_default();
    if decoded.len() != 16 {
        return Err(Refusal {
            status: 400,
            text: "invalid sec-websocket-key",
        });
    }
    Ok(accept_key(key))
}

/// The 101 response.
pub fn switching_protocols(accept: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    )
}

/// The head of a complete response that closes the connection.
pub fn response_head(status: u16, content_type: &str, body_len: usize) -> String {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {body_len}\r\nCache-Control: no-store\r\nConnection: close\r\n"
    );
    if status == 426 {
        head.push_str("Sec-WebSocket-Version: 13\r\n");
    }
    head.push_str("\r\n");
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_from_the_rfc() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn query_params_are_decoded() {
        let r = Request::new("GET", "/?a=1&token=abc%2Bdef%3D&x", []);
        assert_eq!(r.query_param("token").as_deref(), Some("abc+def="));
        assert_eq!(r.query_param("x").as_deref(), Some(""));
        assert_eq!(r.query_param("missing"), None);
        let malformed = Request::new("GET", "/?m=%zz%4", []);
        assert_eq!(malformed.query_param("m").as_deref(), Some("%zz%4"));
    }

    #[test]
    fn heads_are_parsed_and_bounded() {
        let head = b"GET /ws?token=t HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\r\nEARLY";
        for cut in 0..head.len() - 5 {
            assert_eq!(parse_head(&head[..cut]), Ok(None), "cut {cut}");
        }
        let (req, len) = parse_head(head).expect("valid").expect("complete");
        assert_eq!(&head[len..], b"EARLY");
        assert_eq!((req.method.as_str(), req.path.as_str()), ("GET", "/ws"));
        assert!(req.is_upgrade());
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD, b'a');
        assert_eq!(parse_head(&big), Err(HeadError::TooLarge));
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_head(&big), Err(HeadError::TooLarge));
        assert!(matches!(
            parse_head(b"\x16\x03\x01 hello"),
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn handshake_refusals() {
        let key = ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
        let v13 = ("Sec-WebSocket-Version", "13");
        let ok = Request::new("GET", "/", [key, v13]);
        assert_eq!(
            check_handshake(&ok).as_deref(),
            Ok("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        let old = Request::new("GET", "/", [key, ("Sec-WebSocket-Version", "8")]);
        assert_eq!(check_handshake(&old).map_err(|r| r.status), Err(426));
        let nokey = Request::new("GET", "/", [v13]);
        assert_eq!(check_handshake(&nokey).map_err(|r| r.status), Err(400));
        let badkey = Request::new("GET", "/", [v13, ("Sec-WebSocket-Key", "c2hvcnQ=")]);
        assert_eq!(
            check_handshake(&badkey).map_err(|r| r.text),
            Err("invalid sec-websocket-key")
        );
        assert!(response_head(426, "text/plain", 3).contains("Sec-WebSocket-Version: 13\r\n"));
    }
}
