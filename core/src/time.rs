//! Wall-clock helpers: timestamps in microseconds since the Unix epoch (they travel
//! between machines in completion records, so they must be wall clock, not
//! `Instant`) and RFC 3339 formatting without a date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
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

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` for a timestamp in microseconds.
pub fn rfc3339_micros(micros: u64) -> String {
    let secs = (micros / 1_000_000) as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60,
        micros % 1_000_000
    )
}

/// `YYYYMMDDTHHMMSSZ`, the sortable stamp that starts a run id.
pub fn compact_stamp(micros: u64) -> String {
    let s = rfc3339_micros(micros);
    // 2026-11-28T02:41:05.123456Z -> 20261128T024105Z
    format!(
        "{}{}{}T{}{}{}Z",
        &s[0..4],
        &s[5..7],
        &s[8..10],
        &s[11..13],
        &s[14..16],
        &s[17..19]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        // 2024-02-29T12:34:56.789Z, a leap day.
        assert_eq!(
            rfc3339_micros(1_709_210_096_789_000),
            "2024-02-29T12:34:56.789000Z"
        );
        assert_eq!(compact_stamp(1_709_210_096_789_000), "20240229T123456Z");
    }
}
