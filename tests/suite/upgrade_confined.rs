//! Threat: a dist's `upgrade` step runs on the host. Under `--root R` it
//! must run confined to R — chrooted into R, R's own `/bin/sh`, a clean
//! environment, cwd `/` — so what it writes at an absolute path lands in R,
//! and nothing of sysup's environment reaches it. Where R has no shell the
//! step is not run, and that is reported (human output, `--json`, history).

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A static shell that runs inside any root (Debian's `busybox-static`).
fn static_shell() -> PathBuf {
    for p in ["/usr/bin/busybox", "/bin/busybox"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("these tests need a static busybox (apt-get install busybox-static; .ci/install-deps)");
}

/// A unique absolute path on the host, removed when dropped.
struct HostMarker(PathBuf);

impl HostMarker {
    fn new() -> HostMarker {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        HostMarker(PathBuf::from(format!(
            "/tmp/sysup-upgrade-confined-{}-{nanos}",
            std::process::id()
        )))
    }
}

impl Drop for HostMarker {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// World revisions `revs` whose spec ships `script` as the upgrade step; the
/// tree's `/bin/sh` is a static busybox when `shell`, absent otherwise.
fn worlds(dir: &Path, script: &str, shell: bool, revs: &[u32]) -> Vec<PathBuf> {
    let spec = dir.join("world.toml");
    fs::write(
        &spec,
        format!("{}upgrade = \"upgrade.sh\"\n", common::fixtures::WORLD_SPEC),
    )
    .unwrap();
    fs::write(dir.join("upgrade.sh"), script).unwrap();
    let mut dists = Vec::new();
    for &rev in revs {
        let tree = dir.join(format!("t{rev}"));
        common::fixtures::make_world(&tree, rev, is_root()).unwrap();
        // bin -> usr/bin, usr/bin/sh -> dash: the fixture's dash is noise
        let dash = tree.join("usr/bin/dash");
        if shell {
            fs::copy(static_shell(), &dash).unwrap();
        } else {
            fs::remove_file(tree.join("usr/bin/sh")).unwrap();
        }
        ok(sysup()
            .arg("build")
            .arg(&spec)
            .arg("--tree")
            .arg(&tree)
            .args(["--rev", &rev.to_string(), "--date", "20260101", "--out"])
            .arg(dir));
        dists.push(dir.join(format!("world-{rev}-20260101.tar.gz")));
    }
    dists
}

/// `sysup ARGS --root ROOT` with a variable in its environment that the
/// step must not see; asserts success and returns stdout.
fn sysup_ok(args: &[&str], root: &Path, extra: &[&Path]) -> String {
    let o = run(Command::new(env!("CARGO_BIN_EXE_sysup"))
        .env("SYSUP_TEST_SECRET", "leaked")
        .args(args)
        .arg("--root")
        .arg(root)
        .args(extra));
    assert!(
        o.status.success(),
        "sysup {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn the_upgrade_step_runs_chrooted_into_the_root_with_a_clean_environment() {
    if !is_root() {
        eprintln!("skipped: chroot(2) needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let marker = HostMarker::new();
    let m = marker.0.display().to_string();
    // an absolute path, the cwd, the environment: all as the step sees them
    let script = format!(
        "#!/bin/sh\necho \"$SYSUP_FROM -> $SYSUP_TO root=$SYSUP_ROOT cwd=$(pwd) secret=${{SYSUP_TEST_SECRET:-absent}} path=$PATH\" >> {m}\n: > touched\n"
    );
    let dists = worlds(t.path(), &script, true, &[2, 3]);
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("keep"), b"beside the root\n").unwrap();
    let outside_before = snapshot(&outside);

    let out = sysup_ok(&["apply"], &root, &[&dists[0]]);
    assert!(out.contains("ran the dist's upgrade step"), "{out}");
    sysup_ok(&["apply"], &root, &[&dists[1]]);
    // on a rollback the step runs for the older dist: FROM is the id left
    sysup_ok(&["rollback"], &root, &[]);
    // a repair (verify --repair) runs it again: FROM and TO are the same id
    fs::remove_file(root.join("usr/bin/ls")).unwrap();
    sysup_ok(&["verify", "--repair"], &root, &[]);

    assert!(
        !marker.0.exists(),
        "the step wrote the host's {}: {:?}",
        m,
        fs::read_to_string(&marker.0)
    );
    let inside = root.join(marker.0.strip_prefix("/").unwrap());
    let log = fs::read_to_string(&inside).unwrap();
    let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let want = [
        " -> world-2-20260101",
        "world-2-20260101 -> world-3-20260101",
        "world-3-20260101 -> world-2-20260101",
        "world-2-20260101 -> world-2-20260101",
    ]
    .map(|ids| format!("{ids} root=/ cwd=/ secret=absent path={path}\n"))
    .concat();
    assert_eq!(log, want);
    assert!(root.join("touched").is_file());
    let d = diff_snapshots(&outside_before, &snapshot(&outside));
    assert!(d.is_empty(), "outside changed:\n{}", d.join("\n"));
}

#[test]
fn a_root_without_a_shell_gets_its_files_and_a_reported_step_not_run() {
    if !is_root() {
        eprintln!("skipped: chroot(2) needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let marker = HostMarker::new();
    let script = format!("#!/bin/sh\necho ran > {}\n", marker.0.display());
    let dists = worlds(t.path(), &script, false, &[2]);
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    let out = sysup_ok(&["apply"], &root, &[&dists[0]]);
    assert!(
        out.contains("upgrade step not run") && out.contains("no /bin/sh"),
        "{out}"
    );
    assert!(!marker.0.exists(), "the host's shell ran the step");
    assert!(!root.join(marker.0.strip_prefix("/").unwrap()).exists());
    // --json says so too, and so does history
    let json = sysup_ok(&["apply", "--json"], &root, &[&dists[0]]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let why = v["upgrade_skipped"].as_str().unwrap_or_default();
    assert!(why.contains("no /bin/sh"), "{json}");
    assert_eq!(v["upgrade_ran"], false, "{json}");
    let hist = sysup_ok(&["history", "--json"], &root, &[]);
    assert_eq!(hist.matches("upgrade step not run").count(), 2, "{hist}");
    let hist = sysup_ok(&["history"], &root, &[]);
    assert!(hist.contains("upgrade step not run"), "{hist}");
    // everything else is installed, nothing is pending
    assert!(!root.join("var/db/sysup/journal").exists());
    assert!(root.join("usr/bin/ls").exists());
}

#[test]
fn a_sysup_that_may_not_chroot_reports_the_step_not_run() {
    // Without root, chroot(2) is refused: the host's shell must not run the
    // step instead, and the apply says it was not run.
    if !is_root() {
        eprintln!("skipped: needs root to act as another user");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let marker = HostMarker::new();
    let dir = t.path();
    fs::create_dir_all(dir.join("tree/etc")).unwrap();
    fs::create_dir_all(dir.join("tree/bin")).unwrap();
    fs::create_dir_all(dir.join("tree/tmp")).unwrap();
    fs::write(dir.join("tree/etc/motd"), b"hello\n").unwrap();
    fs::copy(static_shell(), dir.join("tree/bin/sh")).unwrap();
    fs::write(
        dir.join("world.toml"),
        "name = \"world\"\narch = \"x86_64\"\nupgrade = \"upgrade.sh\"\n",
    )
    .unwrap();
    let m = marker.0.display();
    fs::write(dir.join("upgrade.sh"), format!("echo ran > {m}\n")).unwrap();
    fs::create_dir(dir.join("root")).unwrap();
    // everything belongs to nobody, who builds and applies
    ok(Command::new("chown").args(["-R", "65534:65534"]).arg(dir));
    let nobody = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_sysup"))
            .args(args);
        c
    };
    let d = dir.display().to_string();
    ok(&mut nobody(&[
        "build",
        &format!("{d}/world.toml"),
        "--tree",
        &format!("{d}/tree"),
        "--rev",
        "1",
        "--date",
        "20260101",
        "--out",
        &d,
    ]));
    let out = ok(&mut nobody(&[
        "apply",
        "--root",
        &format!("{d}/root"),
        &format!("{d}/world-1-20260101.tar.gz"),
    ]));
    assert!(
        out.contains("upgrade step not run") && out.contains("not permitted"),
        "{out}"
    );
    assert!(!marker.0.exists(), "the host's shell ran the step");
    assert!(!dir
        .join("root")
        .join(marker.0.strip_prefix("/").unwrap())
        .exists());
    assert!(dir.join("root/etc/motd").is_file());
}

#[test]
fn the_upgrade_step_cannot_leave_its_chroot() {
    if !is_root() {
        eprintln!("skipped: chroot(2) needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let marker = HostMarker::new();
    let m = marker.0.display().to_string();
    // Ways out of a bare chroot for a root process: mount a procfs and
    // write through /proc/1/root (the host's root); make a device node of
    // a disk. (The step's shell is busybox: its applets run as commands.)
    let script = format!(
        "#!/bin/sh\n\
         mkdir -p /p\n\
         if mount -t proc proc /p; then echo out > /p/1/root{m}; echo mount-ran >> /log; umount /p; else echo mount-refused >> /log; fi\n\
         if mknod /disk b 8 0; then echo mknod-ran >> /log; else echo mknod-refused >> /log; fi\n"
    );
    let dists = worlds(t.path(), &script, true, &[2]);
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    let out = sysup_ok(&["apply"], &root, &[&dists[0]]);
    assert!(out.contains("ran the dist's upgrade step"), "{out}");
    assert!(
        !marker.0.exists(),
        "the step left its chroot and wrote the host's {m}"
    );
    let log = fs::read_to_string(root.join("log")).unwrap();
    assert!(log.contains("mount-refused"), "{log}");
    assert!(log.contains("mknod-refused"), "{log}");
    assert!(!root.join("disk").exists());
}
