//! UTC wall-clock times as text, without a calendar library: the node's logs, the console
//! log's line stamps, the CLI's event times.

/// (year, month, day, hour, minute, second) of a Unix time in seconds.
pub fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let (d, r) = (secs / 86400, secs % 86400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = d as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (r / 3600) as u32,
        ((r % 3600) / 60) as u32,
        (r % 60) as u32,
    )
}

/// `2026-12-02 19:39:31` (UTC) of a Unix time in milliseconds.
pub fn utc_seconds(ms: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(ms / 1000);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// `2026-12-02T19:39:31.123Z` (RFC 3339, UTC, milliseconds; always 24 bytes for years
/// 1000–9999) of a Unix time in milliseconds.
pub fn rfc3339_millis(ms: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(ms / 1000);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        ms % 1000
    )
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether `s` starts with an [`rfc3339_millis`] stamp.
pub fn is_stamp(s: &[u8]) -> bool {
    const SHAPE: &[u8; 24] = b"0000-00-00T00:00:00.000Z";
    s.len() >= 24
        && SHAPE.iter().zip(s).all(|(p, c)| {
            if *p == b'0' {
                c.is_ascii_digit()
            } else {
                p == c
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_times() {
        assert_eq!(utc_seconds(0), "1970-01-01 00:00:00");
        assert_eq!(utc_seconds(1_709_210_096_000), "2024-02-29 12:34:56");
        let s = rfc3339_millis(1_796_240_371_123);
        assert_eq!(s, "2026-12-02T19:39:31.123Z");
        assert_eq!(s.len(), 24);
        assert!(is_stamp(s.as_bytes()));
        assert!(!is_stamp(b"2026-12-02 19:39:31.123Z"));
        assert!(!is_stamp(b"short"));
    }
}
