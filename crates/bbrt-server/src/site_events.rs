//! The site-events route, `POST /site/events` (`docs/wordpress.md`, "Site events"): the
//! companion plugin's signed reports of what happened on the website; and the server API,
//! `POST /site/api`, whose requests are signed and checked the same way.
//!
//! The checks run in the documented order and stop at the first that fails: the body's
//! size (bounded reader), the headers, the timestamp window, the HMAC (constant time), the
//! body's shape, then the replay ledger. The ledger is written only once everything else
//! passed, so a request without the key cannot burn a real event's id. Nothing refused
//! here reaches the Hub, and no log line holds the body, the signature or a key.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bbrt_protocol::ids::UserId;
use bbrt_protocol::site_event::{SiteApiRequest, SiteEvent, SiteEventError};
use bbrt_ws::body::BodyLimits;
use ring::{digest, hmac};
use subtle::ConstantTimeEq as _;
use tokio::net::TcpStream;

use crate::http::{self, Request};
use crate::hub_task::Control;
use crate::server::Shared;
use crate::ticket::KeyRing;

/// The route's path.
pub const PATH: &str = "/site/events";
/// The server API's path: backends' requests, signed as site events are.
pub const API_PATH: &str = "/site/api";
/// The largest body accepted (the plugin drops larger ones before sending).
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// How far a timestamp may be from bbrt's clock, either way, in seconds.
pub const WINDOW_SECS: i64 = 300;
/// How long an event id is remembered: twice the window, so a captured request is a
/// duplicate for as long as its timestamp passes, and stale after.
pub const REMEMBER_FOR: Duration = Duration::from_secs(600);
/// What the signed bytes start with (the signature's version).
const SIGNED_PREFIX: &[u8] = b"bbrt-event-v1\n";
/// What the signature header's value starts with.
const SIGNATURE_PREFIX: &str = "v1=";

/// Why an event was refused: the log's `reason`, the metrics' label, and the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SiteEventRefusal {
    /// No event key ring configured: the route is off (404).
    #[error("site events are not configured")]
    Disabled,
    /// A declared body over [`MAX_EVENT_BYTES`] (413).
    #[error("body too large")]
    TooLarge,
    /// No `Content-Length`, or chunked (411).
    #[error("length required")]
    LengthRequired,
    /// A `Content-Length` that is not one number (400).
    #[error("invalid content-length")]
    InvalidLength,
    /// The body did not arrive in time (408).
    #[error("body not received in time")]
    BodyTimeout,
    /// A signing header missing or repeated (401).
    #[error("missing header")]
    MissingHeader,
    /// A signing header out of its shape (401).
    #[error("malformed header")]
    BadHeader,
    /// A key id not in bbrt's event ring (401).
    #[error("unknown key id")]
    UnknownKid,
    /// A timestamp outside the window (401).
    #[error("timestamp outside the window")]
    Stale,
    /// The MAC does not match (401).
    #[error("bad signature")]
    BadSignature,
    /// The body is not an event bbrt accepts (400).
    #[error("{0}")]
    Body(SiteEventError),
    /// The event id was already used with another body (409).
    #[error("event id reused with another body")]
    Reused,
    /// The replay ledger (Redis) cannot be reached (503): refused, never let through,
    /// since another node may have seen the id.
    #[error("replay ledger unavailable")]
    LedgerUnavailable,
}

impl SiteEventRefusal {
    /// Every refusal, in the metrics' order.
    pub const ALL: [Self; 16] = [
        Self::Disabled,
        Self::TooLarge,
        Self::LengthRequired,
        Self::InvalidLength,
        Self::BodyTimeout,
        Self::MissingHeader,
        Self::BadHeader,
        Self::UnknownKid,
        Self::Stale,
        Self::BadSignature,
        Self::Body(SiteEventError::Malformed),
        Self::Body(SiteEventError::IdMismatch),
        Self::Body(SiteEventError::UnknownType),
        Self::Body(SiteEventError::BadData),
        Self::Reused,
        Self::LedgerUnavailable,
    ];

    /// A short stable name, for logs and the metrics' label.
    pub fn name(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::TooLarge => "too_large",
            Self::LengthRequired => "length_required",
            Self::InvalidLength => "invalid_length",
            Self::BodyTimeout => "body_timeout",
            Self::MissingHeader => "missing_header",
            Self::BadHeader => "bad_header",
            Self::UnknownKid => "unknown_kid",
            Self::Stale => "stale",
            Self::BadSignature => "bad_signature",
            Self::Body(e) => e.name(),
            Self::Reused => "reused",
            Self::LedgerUnavailable => "ledger_unavailable",
        }
    }

    /// The HTTP status the plugin reads.
    pub fn status(self) -> u16 {
        match self {
            Self::Disabled => 404,
            Self::TooLarge => 413,
            Self::LengthRequired => 411,
            Self::InvalidLength | Self::Body(_) => 400,
            Self::BodyTimeout => 408,
            Self::MissingHeader
            | Self::BadHeader
            | Self::UnknownKid
            | Self::Stale
            | Self::BadSignature => 401,
            Self::Reused => 409,
            Self::LedgerUnavailable => 503,
        }
    }

    /// The response's text: the status's meaning, never which check failed beyond it.
    pub fn text(self) -> &'static [u8] {
        match self.status() {
            401 => b"unauthorized\n",
            400 => b"bad event\n",
            404 => b"not found\n",
            408 => b"body not received in time\n",
            409 => b"event id reused\n",
            411 => b"length required\n",
            413 => b"event too large\n",
            _ => b"try later\n",
        }
    }

    /// Its index in [`Self::ALL`].
    pub(crate) fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or(Self::ALL.len() - 1)
    }
}

impl From<bbrt_ws::body::BodyError> for SiteEventRefusal {
    fn from(e: bbrt_ws::body::BodyError) -> Self {
        use bbrt_ws::body::BodyError;
        match e {
            BodyError::TooLarge => Self::TooLarge,
            BodyError::LengthRequired => Self::LengthRequired,
            BodyError::Timeout => Self::BodyTimeout,
            _ => Self::InvalidLength,
        }
    }
}

/// The signing headers of a request, as sent (each at most once).
#[derive(Debug, Clone, Copy)]
pub struct SignedHeaders<'a> {
    /// `X-BBRT-Key-Id`.
    pub key_id: &'a str,
    /// `X-BBRT-Timestamp`.
    pub timestamp: &'a str,
    /// `X-BBRT-Event-Id`.
    pub event_id: &'a str,
    /// `X-BBRT-Signature`.
    pub signature: &'a str,
}

impl<'a> SignedHeaders<'a> {
    /// The headers of `req`; a missing or repeated one refuses the request.
    ///
    /// # Errors
    /// [`SiteEventRefusal::MissingHeader`].
    pub(crate) fn from_request(req: &'a Request) -> Result<Self, SiteEventRefusal> {
        let one = |name: &str| {
            let value = req.header(name).ok_or(SiteEventRefusal::MissingHeader)?;
            if req.header_all(name).len() != value.len() {
                return Err(SiteEventRefusal::MissingHeader);
            }
            Ok(value.trim())
        };
        Ok(Self {
            key_id: one("x-bbrt-key-id")?,
            timestamp: one("x-bbrt-timestamp")?,
            event_id: one("x-bbrt-event-id")?,
            signature: one("x-bbrt-signature")?,
        })
    }
}

fn lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// The SHA-256 of a body, in hex: what the replay ledger keeps to tell a duplicate from
/// an id reused with other content (the body itself is never stored).
pub fn body_digest(body: &[u8]) -> String {
    use fmt::Write as _;
    let d = digest::digest(&digest::SHA256, body);
    d.as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Checks events against the event key ring and the clock. `Debug` shows the kids only.
#[derive(Debug, Clone)]
pub struct SiteEventVerifier {
    keys: KeyRing,
}

impl SiteEventVerifier {
    /// A verifier for events signed with a key of `keys`.
    pub fn new(keys: KeyRing) -> Self {
        Self { keys }
    }

    /// The ring's kids (never a secret), for the start-up log.
    pub fn kids(&self) -> Vec<String> {
        self.keys.kids().map(str::to_owned).collect()
    }

    /// Checks the headers and the signature of `body` at `now` (Unix seconds), then decodes
    /// it: every step but the replay ledger, in the documented order.
    ///
    /// # Errors
    /// The first check that fails.
    pub fn verify(
        &self,
        headers: SignedHeaders<'_>,
        body: &[u8],
        now: i64,
    ) -> Result<SiteEvent, SiteEventRefusal> {
        self.check_signature(headers, body, now)?;
        SiteEvent::decode(body, headers.event_id).map_err(SiteEventRefusal::Body)
    }

    /// As [`verify`](Self::verify), for a server-API request.
    ///
    /// # Errors
    /// The first check that fails.
    pub fn verify_api(
        &self,
        headers: SignedHeaders<'_>,
        body: &[u8],
        now: i64,
    ) -> Result<SiteApiRequest, SiteEventRefusal> {
        self.check_signature(headers, body, now)?;
        SiteApiRequest::decode(body, headers.event_id).map_err(SiteEventRefusal::Body)
    }

    fn check_signature(
        &self,
        headers: SignedHeaders<'_>,
        body: &[u8],
        now: i64,
    ) -> Result<(), SiteEventRefusal> {
        let ts = headers.timestamp;
        if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SiteEventRefusal::BadHeader);
        }
        if !lower_hex(headers.event_id, 32) {
            return Err(SiteEventRefusal::BadHeader);
        }
        let key = self
            .keys
            .key(headers.key_id)
            .ok_or(SiteEventRefusal::UnknownKid)?;
        let signed_at: i64 = ts.parse().map_err(|_| SiteEventRefusal::BadHeader)?;
        if now.abs_diff(signed_at) > WINDOW_SECS.unsigned_abs() {
            return Err(SiteEventRefusal::Stale);
        }
        let signature = headers
            .signature
            .strip_prefix(SIGNATURE_PREFIX)
            .filter(|hex| lower_hex(hex, 64))
            .and_then(decode_hex)
            .ok_or(SiteEventRefusal::BadSignature)?;
        let mut mac = hmac::Context::with_key(key);
        mac.update(SIGNED_PREFIX);
        mac.update(ts.as_bytes());
        mac.update(b"\n");
        mac.update(headers.event_id.as_bytes());
        mac.update(b"\n");
        mac.update(body);
        if !bool::from(mac.sign().as_ref().ct_eq(&signature)) {
            return Err(SiteEventRefusal::BadSignature);
        }
        Ok(())
    }
}

/// What the replay ledger says of an event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First seen: act on it.
    New,
    /// Seen with the same body: answer 200, do nothing.
    Duplicate,
    /// Seen with another body: 409.
    Reused,
}

/// Remembers event ids with their body's digest, cluster-wide with Redis.
#[async_trait]
pub trait SiteEventLedger: Send + Sync + 'static {
    /// Records `id` with `digest` for `ttl` unless it is known. `Err(())` when the ledger
    /// cannot be reached.
    async fn record(&self, id: &str, digest: &str, ttl: Duration) -> Result<Recorded, ()>;
}

/// The in-process ledger (one node). Every entry lives [`REMEMBER_FOR`], so expiries come
/// in insertion order and pruning pops the oldest: no scan of the map.
#[derive(Debug, Default)]
pub struct MemorySiteEventLedger {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    seen: HashMap<String, (String, Instant)>,
    order: VecDeque<(Instant, String)>,
}

impl MemorySiteEventLedger {
    /// Records `id` at `now` (synchronous: no task for the one-node case).
    pub fn record_at(&self, id: &str, digest: &str, ttl: Duration, now: Instant) -> Recorded {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some((until, _)) = inner.order.front()
            && *until <= now
        {
            let (until, old) = inner.order.pop_front().expect("a front entry");
            if inner.seen.get(&old).is_some_and(|(_, u)| *u == until) {
                inner.seen.remove(&old);
            }
        }
        match inner.seen.entry(id.to_owned()) {
            Entry::Occupied(o) if o.get().0 == digest => Recorded::Duplicate,
            Entry::Occupied(_) => Recorded::Reused,
            Entry::Vacant(v) => {
                v.insert((digest.to_owned(), now + ttl));
                inner.order.push_back((now + ttl, id.to_owned()));
                Recorded::New
            }
        }
    }

    /// Ids remembered (for tests).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .seen
            .len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl SiteEventLedger for MemorySiteEventLedger {
    async fn record(&self, id: &str, digest: &str, ttl: Duration) -> Result<Recorded, ()> {
        Ok(self.record_at(id, digest, ttl, Instant::now()))
    }
}

/// The route's state: the ring and the replay ledger (Redis with `--redis`).
pub(crate) struct SiteEvents {
    pub(crate) verifier: SiteEventVerifier,
    pub(crate) ledger: Arc<dyn SiteEventLedger>,
}

/// Serves one `POST /site/events`: answers, counts and logs it.
pub(crate) async fn serve(
    mut stream: TcpStream,
    req: Request,
    early: Vec<u8>,
    ip: IpAddr,
    shared: &Shared,
) {
    let event_id = req
        .header("x-bbrt-event-id")
        .filter(|id| lower_hex(id, 32))
        .unwrap_or("-");
    match accept(&mut stream, &req, &early, shared).await {
        Ok((event, recorded)) => {
            let duplicate = recorded == Recorded::Duplicate;
            shared.metrics.site_event_accepted(duplicate);
            tracing::debug!(%ip, event_id, kind = event.kind.type_name(), duplicate, "site event accepted");
            if !duplicate {
                // Handed to the Hub before the answer, not waited for: its frames go out
                // on the hub task's time.
                let _ = shared
                    .control
                    .send(Control::SiteEvent(Box::new(event)))
                    .await;
            }
            http::respond(&mut stream, 200, "text/plain", b"ok\n").await;
        }
        Err(why) => {
            shared.metrics.site_event_refused(why);
            tracing::info!(%ip, event_id, reason = why.name(), status = why.status(), "site event refused");
            http::respond(&mut stream, why.status(), "text/plain", why.text()).await;
        }
    }
}

/// Serves one `POST /site/api`: publish and disconnect (200 `{"ok":true}`), online (200
/// `{"online":[…]}`).
pub(crate) async fn serve_api(
    mut stream: TcpStream,
    req: Request,
    early: Vec<u8>,
    ip: IpAddr,
    shared: &Shared,
) {
    let request_id = req
        .header("x-bbrt-event-id")
        .filter(|id| lower_hex(id, 32))
        .unwrap_or("-");
    match accept_api(&mut stream, &req, &early, shared).await {
        Ok((kind, body)) => {
            shared.metrics.site_api_accepted(kind);
            tracing::debug!(%ip, request_id, kind, "site api request served");
            http::respond(&mut stream, 200, "application/json", body.as_bytes()).await;
        }
        Err(why) => {
            shared.metrics.site_event_refused(why);
            tracing::info!(%ip, request_id, reason = why.name(), status = why.status(), "site api request refused");
            http::respond(&mut stream, why.status(), "text/plain", why.text()).await;
        }
    }
}

/// Reads and checks the body, then does what it asks; returns the request's type and the
/// answer's JSON.
async fn accept_api(
    stream: &mut TcpStream,
    req: &Request,
    early: &[u8],
    shared: &Shared,
) -> Result<(&'static str, String), SiteEventRefusal> {
    let (events, body) = read_signed_body(stream, req, early, shared).await?;
    let headers = SignedHeaders::from_request(req)?;
    let request = events
        .verifier
        .verify_api(headers, &body, crate::broker::unix_now())?;
    match request {
        SiteApiRequest::Online(query) => {
            let users: Vec<UserId> = query
                .user_ids
                .iter()
                .filter_map(|n| n.to_string().parse().ok())
                .collect();
            let (reply, answer) = tokio::sync::oneshot::channel();
            if shared
                .control
                .send(Control::Online { users, reply })
                .await
                .is_err()
            {
                return Err(SiteEventRefusal::LedgerUnavailable);
            }
            let online = answer
                .await
                .map_err(|_| SiteEventRefusal::LedgerUnavailable)?;
            let ids: Vec<u64> = online
                .iter()
                .filter_map(|u| u.as_str().parse().ok())
                .collect();
            Ok(("online", serde_json::json!({ "online": ids }).to_string()))
        }
        SiteApiRequest::Command(command) => {
            // A command acts: replayed within the window, it must not act twice.
            let recorded = events
                .ledger
                .record(headers.event_id, &body_digest(&body), REMEMBER_FOR)
                .await
                .map_err(|()| SiteEventRefusal::LedgerUnavailable)?;
            let kind = match &command {
                bbrt_protocol::site_event::SiteCommand::Publish(_) => "publish",
                _ => "disconnect",
            };
            match recorded {
                Recorded::Reused => return Err(SiteEventRefusal::Reused),
                Recorded::Duplicate => {}
                Recorded::New => {
                    let _ = shared
                        .control
                        .send(Control::SiteCommand(Box::new(command)))
                        .await;
                }
            }
            Ok((kind, r#"{"ok":true}"#.to_owned()))
        }
        _ => Err(SiteEventRefusal::Body(SiteEventError::UnknownType)),
    }
}

/// The body of an events or server-API request, read with the bounded reader, once the
/// route is on; the signature is the caller's to check, for its own kind of body.
async fn read_signed_body<'s>(
    stream: &mut TcpStream,
    req: &Request,
    early: &[u8],
    shared: &'s Shared,
) -> Result<(&'s SiteEvents, Vec<u8>), SiteEventRefusal> {
    let events = shared
        .site_events
        .as_ref()
        .ok_or(SiteEventRefusal::Disabled)?;
    let limits = BodyLimits {
        max_bytes: MAX_EVENT_BYTES,
        timeout: shared.config.handshake_timeout,
    };
    let body = http::read_body(stream, req, early, limits).await?;
    Ok((events, body))
}

async fn accept(
    stream: &mut TcpStream,
    req: &Request,
    early: &[u8],
    shared: &Shared,
) -> Result<(SiteEvent, Recorded), SiteEventRefusal> {
    let (events, body) = read_signed_body(stream, req, early, shared).await?;
    let headers = SignedHeaders::from_request(req)?;
    let event = events
        .verifier
        .verify(headers, &body, crate::broker::unix_now())?;
    let recorded = events
        .ledger
        .record(&event.id, &body_digest(&body), REMEMBER_FOR)
        .await
        .map_err(|()| SiteEventRefusal::LedgerUnavailable)?;
    match recorded {
        Recorded::Reused => Err(SiteEventRefusal::Reused),
        Recorded::New | Recorded::Duplicate => Ok((event, recorded)),
    }
}

/// Signs `body` as the plugin does (`Events::signed_headers`), for tests: the value of
/// `X-BBRT-Signature`.
pub fn sign_event(secret: &str, timestamp: i64, event_id: &str, body: &[u8]) -> String {
    use fmt::Write as _;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut mac = hmac::Context::with_key(&key);
    mac.update(SIGNED_PREFIX);
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b"\n");
    mac.update(event_id.as_bytes());
    mac.update(b"\n");
    mac.update(body);
    let tag = mac.sign();
    tag.as_ref()
        .iter()
        .fold(String::from(SIGNATURE_PREFIX), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests;
