//! The low-speed guard and the deadline of one transfer: a body read
//! through [`Paced`] fails once, after its first window, fewer than the
//! speed limit's bytes a second arrived over the last window, or once the
//! file's deadline has passed — so a server that drips bytes cannot hold a
//! host (and the lock it holds) for long.
//!
//! Invariant: the bytes that arrived are always handed on before a read
//! fails, so a resume keeps them.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use super::Mirror;

/// The low-speed guard of one transfer: too slow once, after the first
/// `time`, fewer than `limit` bytes a second arrived over the last `time`.
struct Pace {
    limit: u64,
    time: Duration,
    start: Instant,
    /// (when, bytes) in arrival order, reads close together merged, so it
    /// holds at most about 20 entries per window.
    samples: VecDeque<(Instant, u64)>,
    in_window: u64,
}

impl Pace {
    fn new(limit: u64, time: Duration) -> Pace {
        Pace {
            limit,
            time: time.max(Duration::from_secs(1)),
            start: Instant::now(),
            samples: VecDeque::new(),
            in_window: 0,
        }
    }

    /// `n` more bytes arrived (0: a read ended without any); `Err` with the
    /// reason when the transfer is too slow.
    fn note(&mut self, n: u64) -> std::result::Result<(), String> {
        let now = Instant::now();
        match self.samples.back_mut() {
            Some((t, b)) if now.duration_since(*t) < self.time / 20 => *b += n,
            _ => self.samples.push_back((now, n)),
        }
        self.in_window += n;
        while let Some(&(t, b)) = self.samples.front() {
            if now.duration_since(t) <= self.time {
                break;
            }
            self.samples.pop_front();
            self.in_window -= b;
        }
        if self.limit == 0 || now.duration_since(self.start) < self.time {
            return Ok(());
        }
        let need = u128::from(self.limit) * self.time.as_millis() / 1000;
        if u128::from(self.in_window) < need {
            return Err(format!(
                "slower than {} bytes/s over the last {} s ({} bytes arrived); the mirror or \
                 the link stalls (speed-limit and speed-time in the [mirror] table of \
                 sysup.conf)",
                self.limit,
                self.time.as_secs(),
                self.in_window
            ));
        }
        Ok(())
    }
}

/// A response body read under a [`Pace`] and a deadline: a read past the
/// deadline, or one after the transfer turned too slow, fails (the bytes
/// that arrived are handed on first, so a resume keeps them).
pub(super) struct Paced<R> {
    inner: R,
    pace: Pace,
    deadline: Instant,
    /// Too slow, found after a read that still brought bytes.
    slow: Option<String>,
}

impl<R: Read> Read for Paced<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if Instant::now() >= self.deadline {
            return Err(io::Error::other("its deadline passed"));
        }
        if let Some(why) = &self.slow {
            return Err(io::Error::other(why.clone()));
        }
        match self.inner.read(buf) {
            Ok(0) => Ok(0),
            Ok(n) => {
                self.slow = self.pace.note(n as u64).err();
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                if Instant::now() >= self.deadline {
                    return Err(io::Error::other("its deadline passed"));
                }
                self.pace.note(0).map_err(io::Error::other)?;
                Err(e)
            }
        }
    }
}

impl Mirror {
    /// `body` under this mirror's speed limit and `deadline`.
    pub(super) fn paced<R: Read>(&self, body: R, deadline: Instant) -> Paced<R> {
        Paced {
            inner: body,
            pace: Pace::new(self.opts.speed_limit, self.opts.speed_time),
            deadline,
            slow: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_cuts_a_slow_transfer_after_its_window_only() {
        let mut p = Pace::new(1000, Duration::from_secs(1));
        // young transfers are not judged
        assert!(p.note(1).is_ok());
        p.start -= Duration::from_secs(2);
        let e = p.note(1).unwrap_err();
        assert!(
            e.contains("slower than 1000 bytes/s over the last 1 s"),
            "{e}"
        );
        assert!(p.note(5000).is_ok());
        // old bytes leave the window
        let old = Instant::now() - Duration::from_secs(3);
        p.samples = VecDeque::from([(old, 5000)]);
        p.in_window = 5000;
        assert!(p.note(0).is_err());
        assert_eq!(p.in_window, 0);
        // 0 turns the limit off
        let mut off = Pace::new(0, Duration::from_secs(1));
        off.start -= Duration::from_secs(5);
        assert!(off.note(0).is_ok());
    }
}
