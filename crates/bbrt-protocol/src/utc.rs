//! UTC timestamps without a date library, as the site gives and bbrt answers them:
//! BuddyBoss's naive `YYYY-MM-DDTHH:MM:SS` (GMT) and RFC 3339 `...Z`. Pure arithmetic:
//! the clock is the caller's (this crate reads none).

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01 (`days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-25T00:48:52` (BuddyBoss's naive GMT form).
pub fn naive_from_unix(secs: i64) -> String {
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `2026-11-25T00:48:52Z` (RFC 3339 UTC).
pub fn rfc3339_from_unix(secs: i64) -> String {
    let mut s = naive_from_unix(secs);
    s.push('Z');
    s
}

/// Parses `YYYY-MM-DDTHH:MM:SS` (a space instead of `T` is accepted), optionally followed
/// by `Z` or `+00:00`, as UTC. Other offsets, fractions or junk → `None`.
pub fn parse_utc(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let tail = &s[19..];
    if !matches!(tail, "" | "Z" | "z" | "+00:00") {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = days_from_civil(y, u32::try_from(mo).ok()?, u32::try_from(d).ok()?);
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(naive_from_unix(0), "1970-01-01T00:00:00");
        let t = parse_utc("2026-11-25T00:48:52").expect("valid date");
        assert_eq!(rfc3339_from_unix(t), "2026-11-25T00:48:52Z");
        assert_eq!(
            parse_utc("2024-02-29 23:59:59Z"),
            parse_utc("2024-02-29T23:59:59+00:00")
        );
        for secs in [-86_401, 951_782_400, 1_764_031_732, 4_102_444_800] {
            assert_eq!(parse_utc(&naive_from_unix(secs)), Some(secs));
        }
    }

    #[test]
    fn rejects_junk() {
        for bad in [
            "",
            "2026-11-25",
            "2026-13-01T00:00:00",
            "2026-11-25T00:48:52+02:00",
            "2026-11-25T0a:48:52",
            "yyyy-mm-ddThh:mm:ss",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }
}
