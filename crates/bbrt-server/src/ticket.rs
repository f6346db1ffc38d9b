//! Connection tickets (`docs/wordpress.md`, "Connection tickets"): the ticket key ring, and
//! the local check of a ticket the companion plugin signed.
//!
//! A ticket is checked here, in the server, with no call to the site: size and encoding,
//! header, HS256 signature (constant time), claims, time with a small leeway. Single use
//! is the caller's next step ([`TicketLedger`]), taken only after every check here passed,
//! so an unsigned ticket cannot burn a real one's id. The keys never leave this module:
//! not into the Hub, a log line, a metric or a `Debug`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use subtle::ConstantTimeEq as _;

/// The longest ticket accepted, in bytes.
pub const MAX_TICKET_BYTES: usize = 2048;
/// The longest site credential a ticket may carry, in bytes.
pub const MAX_SITE_CREDENTIAL_BYTES: usize = 1024;
/// The longest a ticket may live (`exp - nbf`), whatever the site says.
pub const MAX_TICKET_LIFETIME_SECS: i64 = 60;
/// The largest clock-skew allowance bbrt accepts.
pub const MAX_LEEWAY: Duration = Duration::from_secs(30);
/// The header's `typ`.
const TICKET_TYPE: &str = "bbrt-ticket";
/// What every site credential starts with.
const SITE_CREDENTIAL_PREFIX: &str = "bbrt-sc1.";

/// A ring of HMAC-SHA256 keys, `kid:secret` entries separated by commas or whitespace: the
/// ticket ring, and the site-event ring (`crate::site_events`), each of its own. Every key
/// verifies (the site signs with its first); two are active while a key rotates.
///
/// `Debug` shows the kids only.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<(String, hmac::Key)>,
}

/// The ring that verifies tickets.
pub type TicketKeys = KeyRing;

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<&str> = self.kids().collect();
        f.debug_struct("KeyRing")
            .field("kids", &kids)
            .field("secrets", &"[redacted]")
            .finish()
    }
}

/// Why a key ring was refused (the message never quotes a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    /// No entry at all.
    #[error("the key ring is empty")]
    Empty,
    /// An entry without `kid:`.
    #[error("key entry {0} is not kid:secret")]
    NotKidSecret(usize),
    /// A kid outside 1–32 characters of `A-Z a-z 0-9 _ -`.
    #[error("key entry {0} has a kid that is not 1-32 characters of A-Z a-z 0-9 _ -")]
    BadKid(usize),
    /// A secret shorter than 32 bytes.
    #[error("key {kid:?} is shorter than 32 bytes")]
    ShortSecret {
        /// The kid (not secret).
        kid: String,
    },
    /// Two entries with one kid.
    #[error("key {kid:?} appears twice")]
    DuplicateKid {
        /// The kid (not secret).
        kid: String,
    },
}

fn valid_kid(kid: &str) -> bool {
    (1..=32).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl KeyRing {
    /// Parses a ring; any malformed entry refuses the whole ring, so a typo never leaves a
    /// weak key in use.
    pub fn parse(ring: &str) -> Result<Self, KeyRingError> {
        let mut keys: Vec<(String, hmac::Key)> = Vec::new();
        for (n, entry) in ring
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let index = n + 1;
            let (kid, secret) = entry
                .split_once(':')
                .ok_or(KeyRingError::NotKidSecret(index))?;
            if !valid_kid(kid) {
                return Err(KeyRingError::BadKid(index));
            }
            if secret.len() < 32 {
                return Err(KeyRingError::ShortSecret { kid: kid.into() });
            }
            if keys.iter().any(|(k, _)| k == kid) {
                return Err(KeyRingError::DuplicateKid { kid: kid.into() });
            }
            keys.push((
                kid.to_owned(),
                hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
            ));
        }
        if keys.is_empty() {
            return Err(KeyRingError::Empty);
        }
        Ok(Self { keys })
    }

    /// The kids, in the ring's order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(k, _)| k.as_str())
    }

    pub(crate) fn key(&self, kid: &str) -> Option<&hmac::Key> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key)
    }
}

/// Why a ticket was refused: for the log and the metrics. Clients read one fixed text
/// whatever the cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketRefusal {
    /// Over [`MAX_TICKET_BYTES`].
    #[error("oversized")]
    Oversized,
    /// Not three canonical base64url parts, or a header or claims that do not parse.
    #[error("malformed")]
    Malformed,
    /// `alg` other than `HS256`, or `typ` other than `bbrt-ticket`.
    #[error("wrong algorithm or type")]
    WrongAlgorithm,
    /// A `kid` not in bbrt's ring.
    #[error("unknown kid")]
    UnknownKid,
    /// The signature does not match.
    #[error("bad signature")]
    BadSignature,
    /// A claim missing, of the wrong type, or out of its shape.
    #[error("bad claims")]
    BadClaims,
    /// `aud` is not this bbrt.
    #[error("other audience")]
    OtherAudience,
    /// `iss` is not the configured site.
    #[error("other issuer")]
    OtherIssuer,
    /// `nbf` is still ahead (beyond the leeway).
    #[error("not yet valid")]
    NotYetValid,
    /// `exp` has passed (beyond the leeway).
    #[error("expired")]
    Expired,
    /// `exp - nbf` over a minute.
    #[error("lifetime over a minute")]
    TooLong,
    /// The `jti` was already used.
    #[error("already used")]
    AlreadyUsed,
    /// The single-use ledger (Redis) could not be reached: refused, never let through.
    #[error("single-use ledger unavailable")]
    LedgerUnavailable,
}

impl TicketRefusal {
    /// A short stable name, for logs and the metrics' label.
    pub fn name(self) -> &'static str {
        match self {
            Self::Oversized => "oversized",
            Self::Malformed => "malformed",
            Self::WrongAlgorithm => "wrong_algorithm",
            Self::UnknownKid => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::BadClaims => "bad_claims",
            Self::OtherAudience => "other_audience",
            Self::OtherIssuer => "other_issuer",
            Self::NotYetValid => "not_yet_valid",
            Self::Expired => "expired",
            Self::TooLong => "too_long",
            Self::AlreadyUsed => "already_used",
            Self::LedgerUnavailable => "ledger_unavailable",
        }
    }
}

/// A ticket that passed every local check. `Debug` hides the site credential.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedTicket {
    /// The WordPress user id (`sub`).
    pub user: String,
    /// The ticket's unique id, for single use.
    pub jti: String,
    /// `exp`, Unix seconds.
    pub expires_at: i64,
    /// The site credential (`sc`), presented as `X-BBRT-Session` on every site call.
    pub site_credential: String,
}

impl fmt::Debug for VerifiedTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedTicket")
            .field("user", &self.user)
            .field("jti", &self.jti)
            .field("expires_at", &self.expires_at)
            .field("site_credential", &"[redacted]")
            .finish()
    }
}

/// Checks tickets against the ring, this bbrt's audience and the site's issuer.
#[derive(Debug, Clone)]
pub struct TicketVerifier {
    keys: TicketKeys,
    audience: String,
    issuer: String,
    leeway: i64,
}

fn decode_part(part: &str) -> Result<Vec<u8>, TicketRefusal> {
    if part.is_empty() {
        return Err(TicketRefusal::Malformed);
    }
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TicketRefusal::Malformed)
}

fn object(bytes: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, TicketRefusal> {
    match serde_json::from_slice(bytes) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(TicketRefusal::Malformed),
    }
}

impl TicketVerifier {
    /// A verifier for tickets addressed to `audience` (bbrt's public URL, as the site's
    /// `BBRT_URL`) by `issuer` (the site's home URL). A configured trailing slash is
    /// dropped, as the plugin drops it; the claims must then match exactly.
    /// `leeway` is capped at [`MAX_LEEWAY`].
    pub fn new(keys: TicketKeys, audience: &str, issuer: &str, leeway: Duration) -> Self {
        Self {
            keys,
            audience: audience.trim_end_matches('/').to_owned(),
            issuer: issuer.trim_end_matches('/').to_owned(),
            leeway: i64::try_from(leeway.min(MAX_LEEWAY).as_secs()).unwrap_or(30),
        }
    }

    /// The ring's kids (never a secret), for the start-up log.
    pub fn kids(&self) -> Vec<String> {
        self.keys.kids().map(str::to_owned).collect()
    }

    /// The clock-skew allowance, in seconds.
    pub fn leeway_secs(&self) -> i64 {
        self.leeway
    }

    /// Checks `ticket` at `now` (Unix seconds): every step but single use, in the order
    /// `docs/wordpress.md` gives, stopping at the first that fails.
    pub fn verify(&self, ticket: &str, now: i64) -> Result<VerifiedTicket, TicketRefusal> {
        if ticket.len() > MAX_TICKET_BYTES {
            return Err(TicketRefusal::Oversized);
        }
        let mut parts = ticket.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TicketRefusal::Malformed);
        };
        let (header, claims, signature) = (decode_part(h)?, decode_part(c)?, decode_part(s)?);
        let header = object(&header)?;
        let text = |map: &serde_json::Map<String, serde_json::Value>, k: &str| {
            map.get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        if text(&header, "alg").as_deref() != Some("HS256")
            || text(&header, "typ").as_deref() != Some(TICKET_TYPE)
        {
            return Err(TicketRefusal::WrongAlgorithm);
        }
        let kid = text(&header, "kid").ok_or(TicketRefusal::Malformed)?;
        let key = self.keys.key(&kid).ok_or(TicketRefusal::UnknownKid)?;
        let signed_len = h.len() + 1 + c.len();
        let expected = hmac::sign(key, &ticket.as_bytes()[..signed_len]);
        if signature.len() != 32 || !bool::from(expected.as_ref().ct_eq(&signature)) {
            return Err(TicketRefusal::BadSignature);
        }

        let claims = object(&claims)?;
        let int = |k: &str| claims.get(k).and_then(serde_json::Value::as_i64);
        let (Some(iss), Some(aud), Some(sub), Some(jti), Some(sc)) = (
            text(&claims, "iss"),
            text(&claims, "aud"),
            text(&claims, "sub"),
            text(&claims, "jti"),
            text(&claims, "sc"),
        ) else {
            return Err(TicketRefusal::BadClaims);
        };
        let (Some(_iat), Some(nbf), Some(exp)) = (int("iat"), int("nbf"), int("exp")) else {
            return Err(TicketRefusal::BadClaims);
        };
        let user_id = sub.len() <= 20
            && sub.bytes().all(|b| b.is_ascii_digit())
            && sub.bytes().next().is_some_and(|b| b != b'0');
        let jti_ok = jti.len() == 32
            && jti
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let sc_ok = sc.starts_with(SITE_CREDENTIAL_PREFIX)
            && sc.len() <= MAX_SITE_CREDENTIAL_BYTES
            && sc
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !(user_id && jti_ok && sc_ok) {
            return Err(TicketRefusal::BadClaims);
        }
        if aud != self.audience {
            return Err(TicketRefusal::OtherAudience);
        }
        if iss != self.issuer {
            return Err(TicketRefusal::OtherIssuer);
        }
        if now.saturating_add(self.leeway) < nbf {
            return Err(TicketRefusal::NotYetValid);
        }
        if now.saturating_sub(self.leeway) >= exp {
            return Err(TicketRefusal::Expired);
        }
        if exp.saturating_sub(nbf) > MAX_TICKET_LIFETIME_SECS {
            return Err(TicketRefusal::TooLong);
        }
        Ok(VerifiedTicket {
            user: sub,
            jti,
            expires_at: exp,
            site_credential: sc,
        })
    }

    /// How long a ticket's `jti` must be remembered from `now`: until `exp + leeway`.
    pub fn remember_for(&self, ticket: &VerifiedTicket, now: i64) -> Duration {
        let secs = ticket
            .expires_at
            .saturating_add(self.leeway)
            .saturating_sub(now)
            .max(1);
        Duration::from_secs(u64::try_from(secs).unwrap_or(1))
    }
}

/// Remembers the `jti`s of tickets already used, until they expire.
#[async_trait]
pub trait TicketLedger: Send + Sync + 'static {
    /// Takes `jti` for `ttl`: `Ok(true)` if no one had, `Ok(false)` if it was already
    /// used, `Err(())` if the ledger cannot be reached (the ticket is then refused).
    async fn take(&self, jti: &str, ttl: Duration) -> Result<bool, ()>;
}

/// The in-process ledger (one node): a map pruned at expiry, bounded by the tickets that
/// can be alive at once.
#[derive(Debug, Default)]
pub struct MemoryTicketLedger {
    used: Mutex<HashMap<String, Instant>>,
}

impl MemoryTicketLedger {
    /// Takes `jti` until `ttl` from now (synchronous: no task for the one-node case).
    pub fn take_now(&self, jti: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut used = self
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        used.retain(|_, until| *until > now);
        match used.entry(jti.to_owned()) {
            Entry::Occupied(_) => false,
            Entry::Vacant(v) => {
                v.insert(now + ttl);
                true
            }
        }
    }

    /// `jti`s remembered (for tests).
    pub fn len(&self) -> usize {
        self.used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl TicketLedger for MemoryTicketLedger {
    async fn take(&self, jti: &str, ttl: Duration) -> Result<bool, ()> {
        Ok(self.take_now(jti, ttl))
    }
}

/// Signs `claims` as the plugin does (for tests and the fake site's twin in
/// `bbrt-buddyboss`): `base64url(header) "." base64url(claims) "." base64url(mac)`.
pub fn sign_ticket(kid: &str, secret: &str, claims: &serde_json::Value) -> String {
    let header = format!(r#"{{"alg":"HS256","kid":"{kid}","typ":"{TICKET_TYPE}"}}"#);
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mac = hmac::sign(&key, signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()))
}

#[cfg(test)]
mod tests;
