//! The clock, read in one place: seconds since the Unix epoch for history
//! records, INDEX and signature timestamps, and today's date of a build.
//!
//! Invariant: a clock before 1970 reads as 0, never as an error or a panic.

/// Seconds since the Unix epoch now (0 if the clock is before it).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
