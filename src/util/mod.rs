//! Small shared tools with no knowledge of dists or roots: [`digest`]s and
//! stream [`hashing`] on threads, file helpers ([`fsutil`]: atomic writes,
//! xattrs), [`progress`] counters the command line draws, [`readahead`] of
//! big inputs, work split for a second core ([`halves`]) or mapped on
//! every core in order ([`ordered`]), the clock
//! ([`time`]) and [`interrupt`] handling.

pub mod digest;
pub mod fsutil;
pub mod halves;
pub mod hashing;
pub mod interrupt;
pub mod ordered;
pub mod progress;
pub mod readahead;
#[cfg(test)]
pub(crate) mod testdata;
pub mod time;
