//! Named crash checkpoints, one per crash window of an apply (as rustup's
//! `checkpoint(...)`): when `SYSUP_CRASH_AT=<name>` (or `<name>:<n>`, the
//! n-th time that point is reached) is set, the process kills itself with
//! SIGKILL right there. The crash tests use this to stop sysup at every
//! window and check that running the same command again converges.
//!
//! Invariant: without the variable this is a no-op costing one environment
//! lookup per call site (the variable is read once).
//!
//! Also here: *failpoints* (the `fail` crate) at the writes, fsyncs and
//! renames an apply depends on, for the resource-fault tests
//! (`tests/suite/io_faults.rs`). They exist only when the `fail` crate is built
//! with its `failpoints` feature, which only the dev-dependency turns on:
//! test builds have them, a release binary has neither the points nor the
//! `FAILPOINTS` parsing (`fail::has_failpoints()` is a constant `false` there,
//! and `fail_point!` expands to nothing).

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

/// Configure failpoints from the `FAILPOINTS` environment variable
/// (`name=return(EIO);other=return(torn)`) — in test builds only; a no-op
/// otherwise. The binary calls this once at start.
pub fn failpoints_from_env() {
    if fail::has_failpoints() {
        // Keep the scenario for the life of the process (it is never torn down).
        std::mem::forget(fail::FailScenario::setup());
    }
}

/// The I/O error a failpoint's argument names: `EIO` (the default),
/// `ENOSPC`, `EROFS`, `EDQUOT`, or `torn` (see [`fault_write`]), which fails with EIO.
#[allow(dead_code)] // only called where failpoints are compiled in
fn injected(arg: Option<&str>) -> std::io::Error {
    let errno = match arg.unwrap_or("EIO") {
        "ENOSPC" => libc::ENOSPC,
        "EROFS" => libc::EROFS,
        "EDQUOT" => libc::EDQUOT,
        _ => libc::EIO,
    };
    std::io::Error::from_raw_os_error(errno)
}

/// Failpoint `name` before an I/O step: `Err` when a test configured it
/// (`return(EIO)`, `return(ENOSPC)`, …), `Ok` otherwise and always in
/// release builds.
pub fn fault(name: &str) -> std::io::Result<()> {
    let _ = name; // unused when failpoints are compiled out
    fail::fail_point!(name, |arg: Option<String>| Err(injected(arg.as_deref())));
    Ok(())
}

/// `w.write_all(buf)` behind failpoint `name`: `return(EIO)` (or another
/// errno) fails before writing; `return(torn)` writes the first half of
/// `buf` and then fails with EIO — a write that stopped part way, as a full
/// disk or a failing device leaves it.
pub fn fault_write(w: &mut impl std::io::Write, buf: &[u8], name: &str) -> std::io::Result<()> {
    let _ = name; // unused when failpoints are compiled out
    fail::fail_point!(name, |arg: Option<String>| {
        if arg.as_deref() == Some("torn") {
            w.write_all(&buf[..buf.len() / 2])?;
            w.flush()?;
        }
        Err(injected(arg.as_deref()))
    });
    w.write_all(buf)
}

/// Every failpoint, by the phase it is in (the fault tests iterate these).
/// Before the commit point: an error there must leave the root as it was.
pub const FAULTS_BEFORE_COMMIT: &[&str] = &[
    "journal-begin",
    "journal-dir",
    "stage-write",
    "base-write",
    "stage-syncfs",
    "base-fsync",
    "journal-staged",
];

/// After the commit point: an error there must leave the journal, and the
/// same command run again must finish the apply.
pub const FAULTS_AFTER_COMMIT: &[&str] = &[
    "commit-rename",
    "commit-fsync-dir",
    "journal-committed",
    "record-base-rename",
    "record-installed",
    "journal-recorded",
    "cleanup-remove",
    "cleanup-fsync-dir",
    "history-append",
];

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
