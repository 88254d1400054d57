//! Running a command to its end and measuring its own peak resident memory.
//!
//! The command runs under `peak_rss` (`peak_rss.c` beside this file, built
//! with `cc` once per test process): Linux counts in a child's `ru_maxrss`
//! the image it replaced at exec, and every child of this test binary starts
//! as a copy of it — one process running all the integration tests at
//! once, so hundreds of MiB that are not the child's. A child forked from
//! the small `peak_rss` starts from that program's size instead, and
//! `peak_rss` reports the child's `wait4` figures.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// What a finished child did, and its own peak resident memory.
pub struct Measured {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The child's `ru_maxrss` (KiB), from `wait4` on that child alone.
    pub max_rss_kib: u64,
}

/// Run `cmd` to its end, stdout captured, and measure its peak RSS.
pub fn run_measured(cmd: &Command) -> Measured {
    measure(cmd, Stdio::inherit(), Stdio::piped())
}

/// Run `cmd` (its program, arguments, environment and directory: the
/// standard streams are these arguments, stderr always captured) to its
/// end and measure its peak RSS; `stdout` is empty unless piped.
pub fn measure(cmd: &Command, stdin: Stdio, stdout: Stdio) -> Measured {
    let out = tempfile::NamedTempFile::new().expect("temp file for peak_rss");
    let mut c = Command::new(peak_rss());
    c.arg(out.path())
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    let o = c
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .expect("spawn peak_rss");
    let report = std::fs::read_to_string(out.path()).unwrap_or_default();
    let (rss, status) = report
        .split_once(' ')
        .and_then(|(r, s)| Some((r.parse::<u64>().ok()?, s.trim().parse::<i32>().ok()?)))
        .unwrap_or_else(|| {
            panic!(
                "peak_rss wrote no report (exit {:?}); stderr:\n{}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            )
        });
    Measured {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        max_rss_kib: rss,
    }
}

/// The `peak_rss` program, compiled on first use.
fn peak_rss() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/suite/common/peak_rss.c");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let bin = dir.join("peak_rss");
        // built under a name of this process's, then renamed: test
        // processes running at once each build it and none runs a half-
        // written one
        let tmp = dir.join(format!("peak_rss.{}.tmp", std::process::id()));
        let o = Command::new("cc")
            .args(["-O2", "-Wall", "-Werror", "-o"])
            .arg(&tmp)
            .arg(src)
            .output()
            .expect("run cc (build-essential) to build peak_rss");
        assert!(
            o.status.success(),
            "cc {src} failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::fs::rename(&tmp, &bin).expect("rename peak_rss into place");
        bin
    })
}
