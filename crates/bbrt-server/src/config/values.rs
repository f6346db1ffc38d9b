//! The types and parsers of flag values: secrets that never reach a log, CIDRs, ids,
//! durations.

use std::net::IpAddr;
use std::time::Duration;

use bbrt_protocol::ids::{IdError, MAX_ID_LEN, MAX_NODE_ID_LEN, NodeId};
use clap::ValueEnum;

/// A Redis URL. `Debug` shows it with its password replaced (a whole `Config` may be
/// logged; `redis://user:secret@host` must not be).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// The URL itself, password included: for connecting, never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for RedisUrl {
    type Err = std::convert::Infallible;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Ok(Self(url.to_owned()))
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", crate::broker::redis::redact(&self.0))
    }
}

/// A secret from the command line or the environment. `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretArg(String);

impl SecretArg {
    /// The secret itself: for deriving keys, never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for SecretArg {
    type Err = std::convert::Infallible;

    fn from_str(secret: &str) -> Result<Self, Self::Err> {
        Ok(Self(secret.to_owned()))
    }
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The site's home URL from `--buddyboss-url`, which may be the REST API root.
pub(super) fn site_home(url: &str) -> String {
    let home = url
        .split_once("/wp-json")
        .or_else(|| url.split_once("/?rest_route="))
        .or_else(|| url.split_once("?rest_route="))
        .map_or(url, |(home, _)| home);
    home.trim_end_matches('/').to_owned()
}

/// How a token from a frame or the query string is presented to the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthSchemeArg {
    /// `Authorization: Bearer <token>` (a JWT or bearer-token plugin).
    Bearer,
    /// `Authorization: Basic` (WordPress Application Passwords: `user:app-password`).
    Basic,
    /// The BuddyBoss App's `accessToken` header.
    AccessToken,
}

/// Who hears presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PresenceScopeArg {
    /// Users who share a joined thread.
    Threads,
    /// Everyone (the seed's broadcast).
    All,
}

/// Log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// An IP network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.prefix))
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.prefix))
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address as IPv4.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

pub(super) fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let s = s.trim();
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|e| format!("not an ip address: {e}"))?;
    let addr = canonical(addr);
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("bad prefix length {p:?}"))?,
        None => max,
    };
    Ok(Cidr { addr, prefix })
}

pub(super) fn parse_node_id(s: &str) -> Result<NodeId, String> {
    NodeId::new(s).map_err(|e| match e {
        IdError::TooLong { .. } => format!(
            "a node id is at most {MAX_NODE_ID_LEN} bytes (this one has {}): call ids are \
             <node id>-<counter> and must fit in {MAX_ID_LEN}",
            s.len()
        ),
        e => e.to_string(),
    })
}

/// `250ms`, `30s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (try 30s or 250ms)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} (ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

/// A duration as [`parse_duration`] reads it: seconds up to 99, then whole hours or
/// minutes when they are exact (`90s`, `5m`, `1h`), milliseconds below a second.
pub(super) fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 {
        format!("{}ms", d.as_millis())
    } else if secs >= 100 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs >= 100 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
impl Cidr {
    pub(crate) fn from_str_for_tests(s: &str) -> Self {
        parse_cidr(s).expect("a valid test cidr")
    }
}
