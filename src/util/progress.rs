//! Progress of long steps (apply, build, diff, verify, downloads), as the
//! library reports it: a named step with an optional total, and a position
//! that hot loops advance. Only the command line draws it (`cli::progress`);
//! nothing here knows about terminals.
//!
//! Invariants:
//! - a disabled [`Progress`] (the default) costs one branch per call, and an
//!   enabled one a relaxed atomic add: hot loops (apply streams hundreds of
//!   MB in small reads) never take a lock, allocate or draw; the drawer polls
//!   [`Progress::snapshot`] at its own rate;
//! - starting a step takes a short lock (steps are few) and bumps a
//!   generation, so the drawer can tell a new step from the same one.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What a step counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    /// Files, entries, renames: plain counts.
    Items,
}

/// A step as the drawer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Bumped at every [`Progress::step`] and [`Progress::done`].
    pub generation: u64,
    /// The step's label; `None` between steps.
    pub label: Option<String>,
    pub unit: Unit,
    pub total: Option<u64>,
    pub pos: u64,
}

#[derive(Debug)]
struct Step {
    generation: u64,
    label: Option<String>,
    unit: Unit,
    total: Option<u64>,
}

#[derive(Debug)]
struct Shared {
    pos: AtomicU64,
    step: Mutex<Step>,
}

/// A handle on the progress of one command; clones share it. The default is
/// disabled: every call returns at once.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<Shared>>);

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(enabled)"
        } else {
            "Progress(disabled)"
        })
    }
}

impl Progress {
    /// Progress that records nothing.
    pub fn disabled() -> Progress {
        Progress(None)
    }

    /// Progress that records steps and positions for a drawer to poll.
    pub fn enabled() -> Progress {
        Progress(Some(Arc::new(Shared {
            pos: AtomicU64::new(0),
            step: Mutex::new(Step {
                generation: 0,
                label: None,
                unit: Unit::Items,
                total: None,
            }),
        })))
    }

    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }

    /// A new step begins at position 0 (`total` units expected, if known).
    pub fn step(&self, label: impl Into<String>, total: Option<u64>, unit: Unit) {
        if let Some(s) = &self.0 {
            let mut st = s.step.lock().unwrap_or_else(|e| e.into_inner());
            s.pos.store(0, Ordering::Relaxed);
            st.generation += 1;
            st.label = Some(label.into());
            st.unit = unit;
            st.total = total;
        }
    }

    /// The current step advanced by `n` units.
    #[inline]
    pub fn add(&self, n: u64) {
        if let Some(s) = &self.0 {
            s.pos.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The current step is at `pos` units.
    #[inline]
    pub fn set(&self, pos: u64) {
        if let Some(s) = &self.0 {
            s.pos.store(pos, Ordering::Relaxed);
        }
    }

    /// The current step ended; nothing is shown until the next one.
    pub fn done(&self) {
        if let Some(s) = &self.0 {
            let mut st = s.step.lock().unwrap_or_else(|e| e.into_inner());
            st.generation += 1;
            st.label = None;
            st.total = None;
        }
    }

    /// The current step and position (`None` when disabled).
    pub fn snapshot(&self) -> Option<Snapshot> {
        let s = self.0.as_ref()?;
        let st = s.step.lock().unwrap_or_else(|e| e.into_inner());
        Some(Snapshot {
            generation: st.generation,
            label: st.label.clone(),
            unit: st.unit,
            total: st.total,
            pos: s.pos.load(Ordering::Relaxed),
        })
    }

    /// Wrap a reader so that the bytes read through it advance this progress.
    pub fn reader<R>(&self, inner: R) -> Counting<R> {
        Counting {
            inner,
            progress: self.clone(),
        }
    }

    /// Wrap a writer so that the bytes written through it advance this progress.
    pub fn writer<W>(&self, inner: W) -> Counting<W> {
        Counting {
            inner,
            progress: self.clone(),
        }
    }
}

/// A reader or writer that advances a [`Progress`] by the bytes it moves.
pub struct Counting<T> {
    inner: T,
    progress: Progress,
}

impl<T> Counting<T> {
    pub fn into_inner(self) -> T {
        self.inner
    }
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add(n as u64);
        Ok(n)
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.progress.add(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_records_nothing() {
        let p = Progress::default();
        p.step("x", Some(3), Unit::Items);
        p.add(2);
        assert!(!p.is_enabled());
        assert_eq!(p.snapshot(), None);
    }

    #[test]
    fn steps_reset_the_position_and_bump_the_generation() {
        let p = Progress::enabled();
        p.step("stage", Some(10), Unit::Bytes);
        let mut r = p.reader(&b"hello"[..]);
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        let s = p.snapshot().unwrap();
        assert_eq!(
            (s.label.as_deref(), s.pos, s.total),
            (Some("stage"), 5, Some(10))
        );
        let g = s.generation;
        p.clone().step("commit", None, Unit::Items);
        let s = p.snapshot().unwrap();
        assert_eq!((s.pos, s.generation, s.unit), (0, g + 1, Unit::Items));
        p.done();
        assert_eq!(p.snapshot().unwrap().label, None);
    }
}
