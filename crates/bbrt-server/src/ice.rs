//! ICE servers for clients (`docs/calls.md`, "TURN"): the configured STUN/TURN URLs and
//! short-lived TURN credentials in coturn's `use-auth-secret` scheme, minted here when the
//! Hub asks ([`bbrt_protocol::hub::Output::IceServers`]). The shared secret stays in this
//! module: never in the Hub, a log line, a metric or a `Debug`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bbrt_protocol::ids::UserId;
use bbrt_protocol::wire::{IceServer, IceServers, RequestId};
use ring::hmac;

/// The longest TURN credential lifetime accepted (a leaked one is good until it expires).
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// The configured servers and, with TURN, the shared secret. `Debug` shows the URLs only.
#[derive(Default)]
pub struct IceMinter {
    stun: Vec<String>,
    turn: Vec<String>,
    secret: Option<hmac::Key>,
    ttl: Duration,
}

impl fmt::Debug for IceMinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceMinter")
            .field("stun", &self.stun)
            .field("turn", &self.turn)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl IceMinter {
    /// From `stun:`/`turn:`/`turns:` URLs, coturn's `static-auth-secret` and the
    /// credentials' lifetime.
    ///
    /// # Errors
    /// An URL of another scheme, TURN without a secret or a secret without TURN, an empty
    /// secret, a lifetime of zero or over [`MAX_TTL`] (messages never quote the secret).
    pub fn new(urls: &[String], secret: Option<&str>, ttl: Duration) -> Result<Self, String> {
        let mut minter = Self {
            ttl,
            ..Self::default()
        };
        for url in urls {
            let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
            match scheme.as_deref() {
                Some("stun" | "stuns") => minter.stun.push(url.clone()),
                Some("turn" | "turns") => minter.turn.push(url.clone()),
                _ => {
                    return Err(format!(
                        "--ice-urls: {url:?} is not a stun:, turn: or turns: URL"
                    ));
                }
            }
        }
        match (minter.turn.is_empty(), secret) {
            (false, None) => {
                return Err("turn: URLs need --turn-secret or --turn-secret-file".into());
            }
            (true, Some(_)) => return Err("--turn-secret needs turn: URLs in --ice-urls".into()),
            (_, Some(s)) if s.trim().is_empty() => return Err("the TURN secret is empty".into()),
            (_, Some(s)) => {
                minter.secret = Some(hmac::Key::new(
                    hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                    s.trim().as_bytes(),
                ));
            }
            (true, None) => {}
        }
        if !minter.turn.is_empty() && (ttl.is_zero() || ttl > MAX_TTL) {
            return Err("--turn-credential-ttl is between 1s and 24h".into());
        }
        Ok(minter)
    }

    /// Whether no server is configured (ringing devices then get no `ice_servers`).
    pub fn is_empty(&self) -> bool {
        self.stun.is_empty() && self.turn.is_empty()
    }

    /// The `ice_servers` frame for `user` at `now`: STUN as configured, TURN with a
    /// credential that expires [`IceMinter::new`]'s `ttl` later.
    pub fn mint(
        &self,
        user: &UserId,
        now: SystemTime,
        request_id: Option<RequestId>,
    ) -> IceServers {
        let mut ice_servers = Vec::new();
        if !self.stun.is_empty() {
            ice_servers.push(IceServer {
                urls: self.stun.clone(),
                username: None,
                credential: None,
            });
        }
        let mut ttl = None;
        if let Some(secret) = &self.secret {
            let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            let expiry = now + self.ttl.as_secs();
            let username = format!("{expiry}:{}", user.as_str());
            let credential = turn_password(secret, &username);
            ice_servers.push(IceServer {
                urls: self.turn.clone(),
                username: Some(username),
                credential: Some(credential),
            });
            ttl = Some(self.ttl.as_secs());
        }
        IceServers {
            ice_servers,
            ttl,
            request_id,
        }
    }
}

/// coturn's `use-auth-secret` password: base64(HMAC-SHA1(secret, username)). SHA-1 is
/// what coturn (and the TURN REST API draft) checks; here it is a MAC, not a hash.
fn turn_password(secret: &hmac::Key, username: &str) -> String {
    STANDARD.encode(hmac::sign(secret, username.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn at(unix: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix)
    }

    #[test]
    fn the_credential_is_coturns_use_auth_secret_scheme() {
        let minter = IceMinter::new(
            &urls(&[
                "stun:stun.example.org:3478",
                "turn:turn.example.org:3478?transport=udp",
            ]),
            Some("north-secret"),
            Duration::from_secs(3600),
        )
        .unwrap();
        let user = UserId::new("42").unwrap();
        let frame = minter.mint(&user, at(1_700_000_000 - 3600), Some(RequestId::Num(9)));
        assert_eq!(frame.ttl, Some(3600));
        assert_eq!(frame.request_id, Some(RequestId::Num(9)));
        assert_eq!(frame.ice_servers.len(), 2);
        assert_eq!(frame.ice_servers[0].urls, ["stun:stun.example.org:3478"]);
        assert_eq!(frame.ice_servers[0].username, None);
        let turn = &frame.ice_servers[1];
        assert_eq!(turn.urls, ["turn:turn.example.org:3478?transport=udp"]);
        // Username: the expiry (now + ttl) in unix seconds, a colon, the user id.
        assert_eq!(turn.username.as_deref(), Some("1700000000:42"));
        // python3 -c "import hmac,hashlib,base64; print(base64.b64encode(hmac.new(
        //   b'north-secret', b'1700000000:42', hashlib.sha1).digest()).decode())"
        assert_eq!(
            turn.credential.as_deref(),
            Some("1azYcwkgPAnmyb6GOHbBMj8gPoQ=")
        );
    }

    #[test]
    fn the_expiry_moves_with_the_clock_and_the_ttl() {
        let minter =
            IceMinter::new(&urls(&["turn:t:3478"]), Some("s"), Duration::from_secs(60)).unwrap();
        let user = UserId::new("7").unwrap();
        let first = minter.mint(&user, at(1000), None);
        let later = minter.mint(&user, at(1001), None);
        let name = |f: &IceServers| f.ice_servers[0].username.clone().unwrap();
        assert_eq!(name(&first), "1060:7");
        assert_eq!(name(&later), "1061:7");
        assert_ne!(
            first.ice_servers[0].credential,
            later.ice_servers[0].credential
        );
    }

    #[test]
    fn stun_only_has_no_credentials_and_nothing_is_empty() {
        let user = UserId::new("7").unwrap();
        let stun = IceMinter::new(&urls(&["stun:s:3478"]), None, Duration::from_secs(60)).unwrap();
        let frame = stun.mint(&user, at(1000), None);
        assert_eq!(frame.ttl, None);
        assert_eq!(frame.ice_servers[0].credential, None);
        let none = IceMinter::new(&[], None, Duration::from_secs(60)).unwrap();
        assert!(none.is_empty());
        assert!(none.mint(&user, at(1000), None).ice_servers.is_empty());
    }

    #[test]
    fn bad_configurations_are_refused_without_quoting_the_secret() {
        let ttl = Duration::from_secs(60);
        let e = IceMinter::new(&urls(&["turn:t"]), None, ttl).unwrap_err();
        assert!(e.contains("--turn-secret"), "{e}");
        let e = IceMinter::new(&urls(&["stun:s"]), Some("hush-hush"), ttl).unwrap_err();
        assert!(!e.contains("hush-hush"), "{e}");
        assert!(IceMinter::new(&urls(&["http://x"]), None, ttl).is_err());
        assert!(IceMinter::new(&urls(&["turn:t"]), Some("  "), ttl).is_err());
        assert!(IceMinter::new(&urls(&["turn:t"]), Some("s"), Duration::ZERO).is_err());
        assert!(IceMinter::new(&urls(&["turn:t"]), Some("s"), MAX_TTL * 2).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret_or_a_credential() {
        let minter = IceMinter::new(
            &urls(&["turn:t"]),
            Some("hush-hush-secret"),
            Duration::from_secs(60),
        )
        .unwrap();
        let shown = format!("{minter:?}");
        assert!(!shown.contains("hush-hush-secret"), "{shown}");
        let frame = minter.mint(&UserId::new("7").unwrap(), at(1000), None);
        let credential = frame.ice_servers[0].credential.clone().unwrap();
        let shown = format!("{frame:?}");
        assert!(!shown.contains(&credential), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}
