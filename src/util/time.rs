//! The clock, read in one place: seconds since the Unix epoch for history
//! records, INDEX and signature timestamps, and today's date of a build;
//! and such a time written for people, as UTC.
//!
//! Invariants: a clock before 1970 reads as 0, never as an error or a
//! panic; any `i64` (a hostile INDEX's expiry included) is written as a date
//! between 1970 and 9999.

/// Seconds since the Unix epoch now (0 if the clock is before it).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The UTC calendar date (year, month, day) of a Unix time (seconds).
pub fn civil(secs: i64) -> (i64, u8, u8) {
    // Civil-from-days (H. Hinnant), exact over the whole proleptic calendar.
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS` (UTC), clamped to 1970–9999.
pub fn utc(secs: i64) -> String {
    let secs = secs.clamp(0, 253_402_300_799);
    let (y, m, d) = civil(secs);
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_reads_as_a_date_whatever_the_input() {
        assert_eq!(super::utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(-5), "1970-01-01 00:00:00");
        assert_eq!(super::utc(i64::MAX), "9999-12-31 23:59:59");
    }
}
