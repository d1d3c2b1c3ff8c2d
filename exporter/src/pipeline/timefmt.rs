//! RFC 3339 timestamps <-> Unix milliseconds (UTC), and `15m`-style durations, without a date
//! crate: the broker writes `2026-11-22T02:38:17.136151Z` and the `logs` command takes either.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)` -> Unix milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = s.get(start..i)?;
        if frac.is_empty() {
            return None;
        }
        let padded: String = frac.chars().chain("000".chars()).take(3).collect();
        millis = padded.parse().ok()?;
    }
    let offset_s = match s.get(i..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) && tz.as_bytes()[3] == b':' => {
            // get(): a multi-byte character must give None, not a panic on a char boundary.
            let v = tz.get(1..3)?.parse::<i64>().ok()? * 3600 + tz.get(4..6)?.parse::<i64>().ok()? * 60;
            if tz.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset_s;
    Some(secs * 1000 + millis)
}

/// Unix milliseconds -> `2026-11-22T02:38:17.136Z`.
pub fn format_rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, ms.rem_euclid(1000))
}

/// `90s`, `15m`, `2h`, `7d` (or a bare number of seconds) -> milliseconds.
pub fn parse_duration_ms(s: &str) -> Option<i64> {
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = digits.parse().ok()?;
    let per = match unit {
        "" | "s" => 1000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(per)
}

/// A `--since`/`--until` value: RFC 3339, or a duration meaning that long before `now_ms`.
pub fn parse_time_bound(s: &str, now_ms: i64) -> Option<i64> {
    parse_rfc3339_ms(s).or_else(|| parse_duration_ms(s).map(|d| now_ms - d))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_honours_offsets() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("2026-11-22T02:38:17.136151Z"), Some(1_795_315_097_136));
        assert_eq!(parse_rfc3339_ms("2026-11-22T03:38:17.1+01:00"), Some(1_795_315_097_100));
        assert_eq!(format_rfc3339_ms(1_795_315_097_136), "2026-11-22T02:38:17.136Z");
        assert_eq!(parse_rfc3339_ms("2024-02-29T12:00:00Z").map(format_rfc3339_ms).as_deref(), Some("2024-02-29T12:00:00.000Z"));
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        // Hostile text (from any producer to the log topic) is refused, never a panic.
        assert_eq!(parse_rfc3339_ms("2026-11-22T02:38:17+\u{e9}\u{e9}0"), None);
        assert_eq!(parse_rfc3339_ms("2026-11-22T02:38:17+0\u{e9}:0"), None);
        assert_eq!(parse_rfc3339_ms("2026-11-22T02:38:17+\u{e9}:00"), None);
    }

    #[test]
    fn relative_bounds() {
        assert_eq!(parse_time_bound("15m", 1_000_000), Some(100_000));
        assert_eq!(parse_time_bound("2h", 10_000_000), Some(2_800_000));
        assert_eq!(parse_duration_ms("5x"), None);
    }
}
