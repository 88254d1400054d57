//! Progress bars on stderr only when it is a terminal (a real
//! pseudo-terminal), never with `--quiet`; `--quiet` keeps only the result.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;

use crate::common::*;

/// Run `sysup patch PATCH --quiet?` feeding the old tar slowly on stdin,
/// with stderr on a pseudo-terminal (or a pipe); what appeared on stderr.
fn patch_with_stderr(on_tty: bool, extra: &[&str]) -> String {
    let c = chain();
    let mut old = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(&c.dists[0]).unwrap())
        .read_to_end(&mut old)
        .unwrap();
    let mut cmd = sysup();
    cmd.args(extra)
        .arg("patch")
        .arg(&c.patches[0])
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let mut master = None;
    if on_tty {
        let ws = libc::winsize {
            ws_row: 24,
            ws_col: 100,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // Both sides are opened close-on-exec: this binary's other tests
        // spawn children concurrently, and one inheriting the slave would
        // keep the terminal open after sysup exits, so the read below would
        // never end. The child gets the slave through Stdio (dup2), which
        // clears the flag on its copy.
        let (m, s) = pty_pair(&ws);
        cmd.stderr(Stdio::from(s));
        master = Some(fs::File::from(m));
    } else {
        cmd.stderr(Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd); // our copy of the terminal's slave side
    let reader = match master {
        Some(mut m) => std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // EIO once the child (the last holder of the slave) is gone
            while let Ok(n) = m.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf
        }),
        None => {
            let mut e = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                e.read_to_end(&mut buf).unwrap();
                buf
            })
        }
    };
    // Half the old tar, a pause long enough for several redraws, the rest.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&old[..old.len() / 2]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    stdin.write_all(&old[old.len() / 2..]).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    String::from_utf8_lossy(&reader.join().unwrap()).into_owned()
}

#[test]
fn progress_bars_only_on_a_terminal_and_never_with_quiet() {
    let label = "patch world-1-20260101_2-20260102";
    let tty = patch_with_stderr(true, &[]);
    assert!(
        tty.contains(label) && tty.contains("KiB"),
        "no bar on a terminal: {tty:?}"
    );
    let quiet = patch_with_stderr(true, &["--quiet"]);
    assert_eq!(quiet, "", "--quiet draws nothing");
    let pipe = patch_with_stderr(false, &[]);
    assert_eq!(pipe, "", "a pipe gets no bar");
}

#[test]
fn quiet_keeps_only_the_result_line() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    apply_ok(t.path(), &[&c.dists[0]]);
    let out = ok(sysup()
        .args(["apply", "-q", "--root"])
        .arg(t.path())
        .arg(&c.patches[0]));
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("upgrade world-1-20260101 → world-2-20260102"),
        "{out}"
    );
    // verify --quiet says nothing on a clean tree, only the drift otherwise
    assert_eq!(
        ok(sysup().args(["--quiet", "verify", "--root"]).arg(t.path())),
        ""
    );
    fs::write(t.path().join("usr/bin/cat"), b"changed").unwrap();
    let o = run(sysup().args(["verify", "--quiet", "--root"]).arg(t.path()));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "modified  usr/bin/cat (content)\n"
    );
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("error: "));
}

// ---------------------------------------------------------------------------

/// A pseudo-terminal's master and slave, both close-on-exec, the slave's
/// window size set to `ws`.
fn pty_pair(ws: &libc::winsize) -> (OwnedFd, OwnedFd) {
    // SAFETY: plain calls on a descriptor this function owns from the
    // moment it is returned; `name` is a NUL-terminated buffer that
    // ptsname_r fills within its length.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(m >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let m = OwnedFd::from_raw_fd(m);
        assert_eq!(libc::grantpt(m.as_raw_fd()), 0, "grantpt");
        assert_eq!(libc::unlockpt(m.as_raw_fd()), 0, "unlockpt");
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(
            libc::ptsname_r(m.as_raw_fd(), name.as_mut_ptr(), name.len()),
            0
        );
        let s = libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        assert!(
            s >= 0,
            "open the slave: {}",
            std::io::Error::last_os_error()
        );
        let s = OwnedFd::from_raw_fd(s);
        assert_eq!(
            libc::ioctl(s.as_raw_fd(), libc::TIOCSWINSZ, ws as *const _),
            0
        );
        (m, s)
    }
}
