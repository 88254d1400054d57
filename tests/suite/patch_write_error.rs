//! `sysup patch` writes the new tar on a thread of its own (docs/decisions.md,
//! "`sysup patch` writes the new tar on a thread of its own"): an output
//! that cannot be written is still an error naming it, with the writer's
//! own cause, exit 1 and no panic — from the command with its stdout on a
//! full device, and from the library with a writer that fails midway.

use crate::patch_support;

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::process::Stdio;

use patch_support::*;

/// `sysup patch P < old.tar > /dev/full`: the applier stops and says why.
#[test]
fn a_full_stdout_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = world_pair();
    let (ga, old) = make_dist(dir.path(), "world-1-20260101", &a);
    let (gb, _) = make_dist(dir.path(), "world-2-20260102", &b);
    let patch = diff(dir.path(), &ga, &gb).patch;
    let old_tar = dir.path().join("old.tar");
    std::fs::write(&old_tar, &old).unwrap();
    let o = sysup()
        .arg("patch")
        .arg(&patch)
        .stdin(File::open(&old_tar).unwrap())
        .stdout(File::options().write(true).open("/dev/full").unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("<stdout>"),
        "{err}"
    );
    assert!(err.contains("No space left on device"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Takes `0` more bytes, then fails.
struct Breaks(usize);

impl Write for Breaks {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0 == 0 {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "the disk is full",
            ));
        }
        let n = buf.len().min(self.0);
        self.0 -= n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A writer that fails after a few bytes, or after all but the last one:
/// the apply is an error naming the output and its cause, never a report.
#[test]
fn a_writer_that_fails_midway_fails_the_apply() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = world_pair();
    let (ga, old) = make_dist(dir.path(), "world-1-20260101", &a);
    let (gb, new) = make_dist(dir.path(), "world-2-20260102", &b);
    let patch = diff(dir.path(), &ga, &gb).patch;
    for room in [0, 1000, new.len() - 1] {
        let mut w = Breaks(room);
        let e = sysup::patch::apply(&patch, &old[..], &mut w, Path::new("<out>"))
            .expect_err("the output could not be written");
        let msg = format!("{e:#}");
        assert!(msg.contains("<out>"), "{room}: {msg}");
        let full = std::error::Error::source(&e)
            .is_some_and(|s| s.to_string().contains("the disk is full"));
        assert!(full || msg.contains("the disk is full"), "{room}: {msg}");
    }
}
