//! The restart report (issue 25, item 6): after an apply, the processes that
//! still execute or map a file the apply replaced are named — with real
//! processes started from binaries inside a temporary root — and a new
//! kernel, or an old critical library still mapped, says a reboot is needed.
//! `sysup status` recomputes it: a process that ended is no longer listed.
//!
//! The processes are real: a copy of `/bin/sleep` in the root, one of them
//! running with a copy of the C library in the root preloaded (so it maps
//! it, as every process maps the system's), one chrooted into the root,
//! one in a mount namespace of its own; and a `/bin/sleep` outside the root
//! and one in a container-like namespace (its own mounts and root
//! directory: not checked, docs/monitoring.md), never listed.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Children killed when the test ends, however it ends.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Procs {
    fn start(&mut self, cmd: &mut Command) -> u32 {
        let c = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let pid = c.id();
        self.0.push(c);
        pid
    }

    fn kill(&mut self, pid: u32) {
        let c = self.0.iter_mut().find(|c| c.id() == pid).unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }
}

/// The path of a library this test process maps (`libc.so.6`).
fn mapped(name: &str) -> PathBuf {
    let maps = fs::read_to_string("/proc/self/maps").unwrap();
    let line = maps
        .lines()
        .find(|l| l.ends_with(&format!("/{name}")))
        .unwrap_or_else(|| panic!("this test does not map {name}"));
    PathBuf::from(line.split_whitespace().last().unwrap())
}

/// Wait until `pid` maps or executes `path` (the loader maps after exec).
fn wait_for_map(pid: u32, path: &Path) {
    let start = Instant::now();
    let want = path.to_string_lossy().into_owned();
    while start.elapsed() < Duration::from_secs(10) {
        let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        if maps.lines().any(|l| l.ends_with(&want)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("pid {pid} never mapped {want}");
}

/// Wait until `pid` runs `comm` (it has exec'd it).
fn wait_for_comm(pid: u32, comm: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let now = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if now.trim_end() == comm {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("pid {pid} never ran {comm}");
}

/// A world holding `bin/sleep` and a critical `usr/lib/libc.so.6`, each
/// the real file with `tail` appended (still runnable: trailing bytes of
/// an ELF file are never read).
fn world(dir: &Path, id: &str, tail: &[u8]) -> PathBuf {
    let with = |p: &Path| [fs::read(p).unwrap(), tail.to_vec()].concat();
    let mut sleep = Crafted::file("bin/sleep", &with(Path::new("/bin/sleep")));
    sleep.entry.mode = 0o755;
    let mut libc = Crafted::file("usr/lib/libc.so.6", &with(&mapped("libc.so.6")));
    libc.entry.mode = 0o755;
    libc.entry.critical = true;
    let members = [
        Crafted::dir("bin"),
        sleep,
        Crafted::dir("usr"),
        Crafted::dir("usr/lib"),
        libc,
    ];
    craft_dist(dir, id, "x86_64", &members)
}

fn json(cmd: &mut Command) -> Value {
    let out = ok(cmd.arg("--json"));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn apply_json(root: &Path, file: &Path, extra: &[&str]) -> Value {
    json(
        sysup()
            .arg("apply")
            .args(extra)
            .arg("--root")
            .arg(root)
            .arg(file),
    )
}

fn status_json(root: &Path) -> Value {
    json(sysup().arg("status").arg("--root").arg(root))
}

/// (pid, files) of every listed process.
fn listed(restart: &Value) -> Vec<(u64, Vec<String>)> {
    restart["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let files = p["files"].as_array().unwrap();
            let files = files.iter().map(|f| f.as_str().unwrap().to_string());
            (p["pid"].as_u64().unwrap(), files.collect())
        })
        .collect()
}

fn files_of(restart: &Value, pid: u32) -> Option<Vec<String>> {
    listed(restart)
        .into_iter()
        .find(|(p, _)| *p == u64::from(pid))
        .map(|(_, f)| f)
}

/// Put the loader and C library the root's `bin/sleep` needs where a
/// process chrooted into the root finds them (not shipped by the dist).
fn chroot_libs(root: &Path) -> bool {
    let loader = Path::new("/lib64/ld-linux-x86-64.so.2");
    if !loader.exists() {
        return false;
    }
    for (from, to) in [
        (loader.to_path_buf(), "lib64/ld-linux-x86-64.so.2"),
        (mapped("libc.so.6"), "lib/x86_64-linux-gnu/libc.so.6"),
    ] {
        fs::create_dir_all(root.join(to).parent().unwrap()).unwrap();
        fs::copy(&from, root.join(to)).unwrap();
    }
    true
}

#[test]
fn processes_running_replaced_files_are_named_until_they_end() {
    if !is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the tests as root"
        );
        eprintln!("SKIPPED: chroot and unshare need root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    let w1 = world(t.path(), "world-1-20260101", b"");
    let w2 = world(t.path(), "world-2-20260102", b"\nrevision 2\n");
    let first = apply_json(&root, &w1, &[]);
    assert_eq!(first["restart"]["reboot_needed"], false, "{first}");
    assert_eq!(
        first["restart"]["processes"],
        Value::Array(vec![]),
        "{first}"
    );

    let root = fs::canonicalize(&root).unwrap();
    let sleep = root.join("bin/sleep");
    let libc = root.join("usr/lib/libc.so.6");
    let mut procs = Procs(vec![]);
    let runs = procs.start(Command::new(&sleep).arg("60"));
    let maps = procs.start(Command::new(&sleep).arg("60").env("LD_PRELOAD", &libc));
    let outside = procs.start(Command::new("/bin/sleep").arg("60"));
    let own_ns = procs.start(Command::new("unshare").arg("-m").arg(&sleep).arg("60"));
    let chrooted = chroot_libs(&root)
        .then(|| procs.start(Command::new("chroot").arg(&root).args(["/bin/sleep", "60"])));
    // another mount namespace *and* another root directory, as a
    // container has: the paths it is shown may be its own; not checked
    let container = chrooted.map(|_| {
        procs.start(
            Command::new("unshare")
                .arg("-m")
                .arg(format!("--root={}", root.display()))
                .args(["/bin/sleep", "60"]),
        )
    });
    wait_for_map(maps, &libc);
    for pid in [runs, own_ns].into_iter().chain(chrooted) {
        wait_for_map(pid, &sleep);
    }
    if let Some(pid) = container {
        wait_for_comm(pid, "sleep");
    }

    // a dry run changes nothing that runs: no report
    let dry = apply_json(&root, &w2, &["--dry-run"]);
    assert_eq!(dry["restart"], Value::Null, "{dry}");

    let r = apply_json(&root, &w2, &[]);
    let restart = &r["restart"];
    assert_eq!(
        files_of(restart, runs),
        Some(vec!["bin/sleep".to_string()]),
        "{restart}"
    );
    assert_eq!(
        files_of(restart, maps),
        Some(vec![
            "bin/sleep".to_string(),
            "usr/lib/libc.so.6".to_string()
        ]),
        "{restart}"
    );
    assert_eq!(
        files_of(restart, own_ns),
        Some(vec!["bin/sleep".to_string()]),
        "{restart}"
    );
    if let Some(pid) = chrooted {
        assert_eq!(
            files_of(restart, pid),
            Some(vec!["bin/sleep".to_string()]),
            "{restart}"
        );
    } else {
        eprintln!("SKIPPED: the chrooted process (no /lib64/ld-linux-x86-64.so.2)");
    }
    assert_eq!(files_of(restart, outside), None, "{restart}");
    if let Some(pid) = container {
        assert_eq!(files_of(restart, pid), None, "{restart}");
    }
    assert!(
        listed(restart)
            .iter()
            .all(|(p, _)| *p != u64::from(std::process::id())),
        "{restart}"
    );
    let p = restart["processes"][0].as_object().unwrap();
    let keys: Vec<&str> = p.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["comm", "files", "pid", "unit"],
        "docs/json.md's fields"
    );
    assert_eq!(p["comm"], "sleep", "{p:?}");
    // the old C library still mapped: a reboot (or restarting everything)
    assert_eq!(restart["reboot_needed"], true, "{restart}");
    let reasons = restart["reboot_reasons"].to_string();
    assert!(
        reasons.contains(
            "usr/lib/libc.so.6, a critical file, was replaced and 1 process still maps the old one"
        ),
        "{reasons}"
    );

    // the human report says the same
    let human = ok(sysup().arg("status").arg("--root").arg(&root));
    assert!(
        human.contains(&format!("restart      pid {runs} sleep")),
        "{human}"
    );
    assert!(human.contains("bin/sleep, usr/lib/libc.so.6"), "{human}");
    assert!(
        human.contains("reboot       needed: usr/lib/libc.so.6"),
        "{human}"
    );

    // status recomputes: what ended is no longer listed
    procs.kill(maps);
    let s = status_json(&root);
    assert_eq!(files_of(&s["restart"], maps), None, "{s}");
    assert_eq!(
        files_of(&s["restart"], runs),
        Some(vec!["bin/sleep".to_string()]),
        "{s}"
    );
    assert_eq!(s["restart"]["reboot_needed"], false, "{s}");
    procs.kill(runs);
    procs.kill(own_ns);
    for pid in chrooted.into_iter().chain(container) {
        procs.kill(pid);
    }
    let s = status_json(&root);
    assert_eq!(s["restart"]["processes"], Value::Array(vec![]), "{s}");
}

#[test]
fn a_new_kernel_needs_a_reboot() {
    let t = tempfile::tempdir().unwrap();
    let spec = t.path().join("GENERIC.toml");
    fs::write(&spec, common::fixtures::kernel_spec("GENERIC")).unwrap();
    let (_, kernel) = common::kernel_dist(t.path(), &spec, 1);
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    let r = apply_json(&root, &kernel, &[]);
    assert_eq!(r["restart"]["reboot_needed"], true, "{r}");
    assert_eq!(
        r["restart"]["reboot_reasons"][0],
        "kernel-GENERIC-1-20260201 was installed after this system booted: reboot to run it",
        "{r}"
    );
    let human = ok(sysup().arg("status").arg("--root").arg(&root));
    assert!(
        human.contains("reboot       needed: kernel-GENERIC-1-20260201 was installed"),
        "{human}"
    );
    assert_eq!(status_json(&root)["restart"], r["restart"]);
}
