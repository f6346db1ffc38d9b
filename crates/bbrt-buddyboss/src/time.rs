//! The clock, and BuddyBoss dates as bbrt answers them; the date arithmetic is
//! [`bbrt_protocol::utc`]'s.

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) use bbrt_protocol::utc::{naive_from_unix, parse_utc, rfc3339_from_unix};

/// Seconds since the Unix epoch, now.
pub(crate) fn now_unix() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// A BuddyBoss date (naive GMT) as RFC 3339 UTC with `Z`; `None` if it is not one.
pub(crate) fn site_date_to_rfc3339(s: &str) -> Option<String> {
    parse_utc(s).map(rfc3339_from_unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_date_reads_as_rfc3339() {
        assert_eq!(
            site_date_to_rfc3339("2026-11-25T00:48:52").as_deref(),
            Some("2026-11-25T00:48:52Z")
        );
        assert_eq!(site_date_to_rfc3339("2026-11-25T00:48:52+02:00"), None);
    }
}
