//! The systemd units in `systemd/` as an admin installs them (docs/fleet.md),
//! checked by the real systemd tools in a temporary root: copied unchanged
//! into `<root>/etc/systemd/system`, the environment file into
//! `<root>/etc/default/sysup`, the sysup under test at the unit's
//! `ExecStart` path `<root>/usr/local/sbin/sysup`, and this machine's own
//! systemd units (the targets ours are ordered after) beside them. Then
//! `systemd-analyze verify --root` must pass without a word (it warns of an
//! unknown key only on stderr, with exit 0, so any output fails the test),
//! `systemctl --root enable` must hook the timer into timers.target, and
//! `systemd-analyze security --offline` must find the hardening chosen.
//!
//! The only verify check left out is `man` for `Documentation=`: it would
//! look at this machine's installed man pages; instead the test checks that
//! `sysup man` makes the page the units name.
//!
//! Without systemd-analyze the tests say SKIPPED; under CI (`CI` set) that
//! is a failure (.ci/install-deps installs `systemd`).

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const UNITS: [&str; 2] = ["sysup-update.service", "sysup-update.timer"];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Whether systemd's tools are here (else SKIPPED, or a failure under CI).
fn tools() -> bool {
    let here = ["systemd-analyze", "systemctl"].iter().all(|t| {
        Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !here {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs systemd (.ci/install-deps)"
        );
        eprintln!("SKIPPED: systemd-analyze or systemctl is not installed");
    }
    here
}

/// This machine's systemd system units (`sysinit.target`, `timers.target`, …).
fn system_units() -> PathBuf {
    ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("timers.target").exists())
        .expect("systemd's units are installed")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let ty = e.file_type().unwrap();
        let dest = to.join(e.file_name());
        if ty.is_dir() {
            copy_dir(&e.path(), &dest);
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(e.path()).unwrap(), dest).unwrap();
        } else {
            fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A root with the units installed as docs/fleet.md says, and (`with_sysup`)
/// the sysup under test where `ExecStart` runs it.
fn installed_root(with_sysup: bool) -> tempfile::TempDir {
    // Beside the built binary, so it can be hard-linked rather than copied.
    let top = Path::new(env!("CARGO_TARGET_TMPDIR"));
    fs::create_dir_all(top).unwrap();
    let t = tempfile::tempdir_in(top).unwrap();
    let r = t.path();
    let etc = r.join("etc/systemd/system");
    fs::create_dir_all(&etc).unwrap();
    fs::create_dir_all(r.join("etc/default")).unwrap();
    // The install commands of docs/fleet.md, with the root's prefix (the
    // doc is checked to show them in `fleet_md_shows_these_commands`).
    let mut install = Command::new("install");
    install.args(["-m", "0644"]);
    for u in UNITS {
        install.arg(repo(&format!("systemd/{u}")));
    }
    common::ok(install.arg(format!("{}/", etc.display())));
    common::ok(
        Command::new("install")
            .args(["-m", "0644"])
            .arg(repo("systemd/sysup.env"))
            .arg(r.join("etc/default/sysup")),
    );
    copy_dir(&system_units(), &r.join("usr/lib/systemd/system"));
    if with_sysup {
        let sbin = r.join("usr/local/sbin");
        fs::create_dir_all(&sbin).unwrap();
        let bin = env!("CARGO_BIN_EXE_sysup");
        if fs::hard_link(bin, sbin.join("sysup")).is_err() {
            fs::copy(bin, sbin.join("sysup")).unwrap();
        }
    }
    t
}

fn verify(root: &Path) -> Output {
    let mut c = Command::new("systemd-analyze");
    c.args(["verify", "--man=no"])
        .arg(format!("--root={}", root.display()))
        .args(UNITS);
    common::run(&mut c)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn units_verify_and_enable_in_a_root() {
    if !tools() {
        return;
    }
    let t = installed_root(true);
    let o = verify(t.path());
    assert!(
        o.status.success() && text(&o).is_empty(),
        "systemd-analyze verify:\n{}",
        text(&o)
    );

    // `systemctl enable sysup-update.timer`, in the root.
    let o = common::run(
        Command::new("systemctl")
            .arg(format!("--root={}", t.path().display()))
            .args(["enable", "sysup-update.timer"]),
    );
    assert!(o.status.success(), "{}", text(&o));
    let link = t
        .path()
        .join("etc/systemd/system/timers.target.wants/sysup-update.timer");
    assert_eq!(
        fs::read_link(&link).unwrap(),
        Path::new("/etc/systemd/system/sysup-update.timer")
    );

    // The page `Documentation=man:sysup-update(1)` names exists.
    let man = t.path().join("man");
    common::ok(common::sysup().arg("man").arg("--out").arg(&man));
    assert!(man.join("sysup-update.1").is_file());
}

#[test]
fn verify_fails_without_the_binary_the_service_runs() {
    if !tools() {
        return;
    }
    // The negative control: verify does look at ExecStart in the root.
    let t = installed_root(false);
    let o = verify(t.path());
    assert!(!o.status.success(), "verify passed without sysup");
    assert!(text(&o).contains("/usr/local/sbin/sysup"), "{}", text(&o));
}

/// `key=value` lines of a unit file (comments and sections left out).
fn settings(unit: &str) -> Vec<(String, String)> {
    fs::read_to_string(repo(&format!("systemd/{unit}")))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn timer_spreads_a_fleet_and_service_can_write_the_system() {
    if !tools() {
        return;
    }
    let timer = settings("sysup-update.timer");
    for kv in [
        ("OnCalendar", "daily"),
        ("Persistent", "true"),
        ("WantedBy", "timers.target"),
    ] {
        assert!(
            timer.contains(&(kv.0.into(), kv.1.into())),
            "{kv:?} not in the timer"
        );
    }
    assert!(timer.iter().any(|(k, _)| k == "RandomizedDelaySec"));

    // Settings that would make part of the tree read-only, hidden or a
    // private copy, or forbid device nodes — an update would then fail, or
    // write where nothing boots from (docs/fleet.md says which and why).
    let service = settings("sysup-update.service");
    for k in [
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectClock",
        "ReadOnlyPaths",
        "InaccessiblePaths",
        "TemporaryFileSystem",
        "DeviceAllow",
        "DynamicUser",
        "User",
    ] {
        assert!(
            !service.iter().any(|(key, _)| key == k),
            "{k}= in the service"
        );
    }

    // What the hardening does achieve, as systemd itself rates it; the
    // exposure may only go down (5.7 when written: --threshold is ×10).
    let t = installed_root(true);
    let o = common::run(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=57"])
            .arg(format!("--root={}", t.path().display()))
            .arg("sysup-update.service"),
    );
    let out = text(&o);
    assert!(o.status.success(), "exposure above 5.7:\n{out}");
    for line in [
        "✓ CapabilityBoundingSet=~CAP_SYS_MODULE",
        "✓ SystemCallFilter=~@module",
        "✓ NoNewPrivileges=",
        "✓ ProtectKernelTunables=",
        "✓ RestrictNamespaces=~mnt",
        "✗ ProtectSystem=",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }
}

/// docs/fleet.md shows the commands `installed_root` and the enable test
/// run (there without the temporary root's prefix).
#[test]
fn fleet_md_shows_these_commands() {
    let doc = fs::read_to_string(repo("docs/fleet.md")).unwrap();
    for cmd in [
        "install -m 0644 systemd/sysup-update.service systemd/sysup-update.timer /etc/systemd/system/",
        "install -m 0644 systemd/sysup.env /etc/default/sysup",
        "systemctl enable sysup-update.timer",
        "journalctl -u sysup-update",
    ] {
        assert!(doc.contains(cmd), "docs/fleet.md lacks {cmd:?}");
    }
    // The ExecStart path the doc names.
    assert!(doc.contains("`/usr/local/sbin/sysup`"));
    let service = fs::read_to_string(repo("systemd/sysup-update.service")).unwrap();
    assert!(service.contains("\nExecStart=/usr/local/sbin/sysup update "));
}
