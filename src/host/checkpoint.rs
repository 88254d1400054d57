//! Named crash checkpoints, one per crash window of an apply (as rustup's
//! `checkpoint(...)`): when `SYSUP_CRASH_AT=<name>` (or `<name>:<n>`, the
//! n-th time that point is reached) is set, the process kills itself with
//! SIGKILL right there. The crash tests use this to stop sysup at every
//! window and check that running the same command again converges.
//!
//! Invariant: without the variable this is a no-op costing one environment
//! lookup per call site (the variable is read once).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable naming the checkpoint to die at.
pub const ENV: &str = "SYSUP_CRASH_AT";

fn target() -> &'static Option<(String, u64)> {
    static T: OnceLock<Option<(String, u64)>> = OnceLock::new();
    T.get_or_init(|| {
        let v = std::env::var(ENV).ok()?;
        Some(match v.rsplit_once(':') {
            Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
            None => (v, 1),
        })
    })
}

static HITS: AtomicU64 = AtomicU64::new(0);

/// Die here if this is the checkpoint named in `SYSUP_CRASH_AT`.
pub fn checkpoint(name: &str) {
    if let Some((want, n)) = target() {
        if want == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n {
            // SAFETY: raising a signal at ourselves.
            unsafe { libc::raise(libc::SIGKILL) };
        }
    }
}

/// Every checkpoint an apply passes, in order (the crash tests iterate this).
pub const ALL: &[&str] = &[
    "check-done",
    "stage-file",
    "staged-before-journal",
    "journal-staged",
    "commit-rename",
    "commit-before-critical",
    "commit-critical",
    "committed",
    "record-base",
    "recorded",
    "cleanup-obsolete",
    "cleanup-before-upgrade",
    "cleanup-after-upgrade",
    "cleanup-before-journal-drop",
];
