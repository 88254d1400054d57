//! A reader that goes away before sysup has printed (`sysup history | head
//! -1`) is a normal end of the output: no error line, no panic, and the exit
//! code the command's result gives (0, or 1 for `verify` that found drift).
//! Work done before the output (an apply) stays done, and what a command
//! only made for itself (the demo's temporary directory) is removed.

use crate::common;

use std::process::{Command, Stdio};

use common::*;

/// Run `cmd` with stdout a pipe whose reading end is already closed.
fn with_closed_stdout(cmd: &mut Command) -> (Option<i32>, String) {
    // Close-on-exec, or a child another test spawns meanwhile could inherit
    // the reading end and keep the pipe open for sysup.
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    drop(r);
    let o = cmd
        .stdout(Stdio::from(w))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A quiet end: the expected exit code and nothing on stderr.
fn assert_quiet(code: Option<i32>, want: i32, err: &str) {
    assert_eq!(code, Some(want), "{err}");
    assert!(err.is_empty(), "a closed stdout must end quietly: {err}");
}

#[test]
fn reports_on_a_closed_stdout_end_quietly() {
    let c = chain();
    let (code, err) = with_closed_stdout(sysup().arg("info").arg(&c.dists[0]));
    assert_quiet(code, 0, &err);
    let (code, err) = with_closed_stdout(sysup().args(["info", "--json"]).arg(&c.dists[0]));
    assert_quiet(code, 0, &err);
    for args in [&["man"][..], &["completions", "bash"]] {
        let (code, err) = with_closed_stdout(sysup().args(args));
        assert_quiet(code, 0, &err);
    }
    let (t, _) = installed_root(1);
    for args in [
        &["status"][..],
        &["history"],
        &["verify"],
        &["-q", "verify"],
    ] {
        let (code, err) = with_closed_stdout(sysup().args(args).arg("--root").arg(t.path()));
        assert_quiet(code, 0, &err);
    }
    // Drift found is still exit 1, with its error line, when nobody reads the list.
    std::fs::write(t.path().join("usr/bin/cat"), b"tampered").unwrap();
    let (code, err) = with_closed_stdout(sysup().arg("verify").arg("--root").arg(t.path()));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("differ from what is installed"), "{err}");
    assert!(
        !err.contains("<stdout>") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn an_apply_whose_report_cannot_be_printed_is_still_applied() {
    let c = chain();
    let (t, _) = installed_root(1);
    let (code, err) = with_closed_stdout(
        sysup()
            .arg("apply")
            .arg("--root")
            .arg(t.path())
            .arg(&c.patches[0]),
    );
    assert_quiet(code, 0, &err);
    assert_root_is(t.path(), &c.trees[1]);
    assert_eq!(
        installed_world(t.path()).as_deref(),
        Some("world-2-20260102")
    );
    assert!(leftovers(t.path()).is_empty(), "{:?}", leftovers(t.path()));
}

#[test]
fn a_demo_that_cannot_print_removes_its_temporary_directory() {
    // Closed from the start: the first line fails.
    let tmp = tempfile::tempdir().unwrap();
    let (code, err) = with_closed_stdout(sysup().arg("demo").env("TMPDIR", tmp.path()));
    assert_quiet(code, 0, &err);
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");

    // Closed after the first lines (`sysup demo | head -3`): a later line
    // fails, or, if the demo outran the reader, it finished. Either way
    // nothing is left in TMPDIR.
    let tmp = tempfile::tempdir().unwrap();
    let mut child = sysup()
        .arg("demo")
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let first: Vec<String> = out.lines().take(3).map(Result::unwrap).collect();
        assert!(first[0].starts_with("sysup demo in "), "{first:?}");
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_quiet(o.status.code(), 0, &err);
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
