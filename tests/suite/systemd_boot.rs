//! docs/fleet.md's systemd section run as written, under a real systemd:
//! systemd booted as PID 1 of a container whose root is a temporary
//! directory (tests/suite/systemd_support), the doc's commands taken from the doc
//! itself and run in it one by one, each checked by its effect —
//! `install -m …` puts the binary, the units and the environment file where
//! the doc says; `daemon-reload` loads the units; `enable` and `start` make
//! the timer enabled and active, waiting for its daily moment;
//! `list-timers` shows that moment; `systemctl start sysup-update.service`
//! runs a real `sysup update` from a signed `file://` mirror inside the
//! container and the container's tree and `sysup status --json` show the new
//! dist; `journalctl -u sysup-update` shows sysup's own report; an INDEX
//! whose signature does not verify leaves the unit failed, the tree as it
//! was, and the journal naming the cause.
//!
//! The doc's commands run in a "checkout" at `/root/sysup` in the container:
//! `systemd/` copied from this repository, and the sysup this test built
//! where the doc's `target/release/sysup` is. The dists this test publishes
//! ship only `usr/share/sysup-fleet-test/` and `etc/sysup-fleet-test.conf`:
//! never a file of the container's own system. This machine's `/usr`,
//! `/etc` and `/var` are checked untouched.

use crate::mirror_support;
use crate::systemd_support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use mirror_support::common;
use systemd_support::Container;

/// Where the doc's commands run (their `systemd/…`, `target/release/sysup`).
const CHECKOUT: &str = "/root/sysup";
/// The mirror inside the container.
const MIRROR: &str = "/srv/sysup";
const LIMIT: Duration = Duration::from_secs(30);

/// docs/fleet.md §3's commands, in its order: installing, enabling, watching.
const INSTALL: [&str; 3] = [
    "install -m 0755 target/release/sysup /usr/local/sbin/sysup",
    "install -m 0644 systemd/sysup-update.service systemd/sysup-update.timer /etc/systemd/system/",
    "install -m 0644 systemd/sysup.env /etc/default/sysup",
];
const ENABLE: [&str; 3] = [
    "systemctl daemon-reload",
    "systemctl enable sysup-update.timer",
    "systemctl start sysup-update.timer",
];
const WATCH: [&str; 3] = [
    "systemctl list-timers sysup-update.timer     # when it runs next",
    "systemctl start sysup-update.service         # run it now",
    "journalctl -u sysup-update                   # what each run did: sysup's own report",
];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The indented (code) lines of docs/fleet.md's section 3.
fn doc_commands() -> Vec<String> {
    let doc = fs::read_to_string(repo("docs/fleet.md")).unwrap();
    let start = doc.find("\n## 3.").expect("fleet.md has a section 3");
    let end = start + doc[start..].find("\n## 4.").expect("and a section 4");
    doc[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .map(str::to_string)
        .collect()
}

#[test]
fn fleet_md_shows_the_commands_this_test_runs() {
    let expected: Vec<&str> = INSTALL
        .iter()
        .chain(&ENABLE)
        .chain(&WATCH)
        .copied()
        .collect();
    assert_eq!(
        doc_commands(),
        expected,
        "docs/fleet.md §3 changed: change this test too"
    );
    let doc = fs::read_to_string(repo("docs/fleet.md")).unwrap();
    assert!(
        doc.contains("| `tests/suite/systemd_boot.rs`"),
        "the doc's table names this test"
    );
}

/// What this test must not change on this machine.
const HOST_PATHS: [&str; 8] = [
    "/usr/local/sbin/sysup",
    "/usr/share/sysup-fleet-test",
    "/etc/systemd/system/sysup-update.service",
    "/etc/systemd/system/sysup-update.timer",
    "/etc/systemd/system/timers.target.wants",
    "/etc/default/sysup",
    "/etc/sysup-fleet-test.conf",
    "/var/db/sysup",
];

fn host_state() -> Vec<Option<(u64, i64, i64)>> {
    HOST_PATHS
        .iter()
        .map(|p| {
            fs::symlink_metadata(p)
                .ok()
                .map(|m| (m.ino(), m.mtime(), m.mtime_nsec()))
        })
        .collect()
}

/// The fixture tree of revision `rev`: a data directory under usr/share
/// (files changed by every revision, one dropped and one added by rev 2)
/// and a config file.
fn tree(dir: &Path, rev: u32) -> PathBuf {
    let t = dir.join(format!("tree-{rev}"));
    let data = t.join("usr/share/sysup-fleet-test");
    fs::create_dir_all(&data).unwrap();
    fs::create_dir_all(t.join("etc")).unwrap();
    fs::write(data.join("VERSION"), format!("{rev}\n")).unwrap();
    // Mostly the same in every revision: a patch is cheaper than the dist.
    let mut blob = common::fixtures::noise(7, 64 * 1024);
    blob[1000..1008].copy_from_slice(&u64::from(rev).to_le_bytes());
    fs::write(data.join("blob"), blob).unwrap();
    let extra = if rev == 1 { "only-in-1" } else { "added-in-2" };
    fs::write(data.join(extra), format!("{extra}\n")).unwrap();
    fs::write(t.join("etc/sysup-fleet-test.conf"), conf(rev)).unwrap();
    t
}

fn conf(rev: u32) -> String {
    format!("# the systemd_boot test's config file\nlevel = {rev}\n")
}

fn id(rev: u32) -> String {
    format!("world-{rev}-202612{rev:02}")
}

/// Build revision `rev` into the container's mirror and publish it, signed
/// with the real minisign key `key` (with the patch from the one before).
fn publish(c: &Container, key: &Path, rev: u32) {
    let work = c.root.join("root/build");
    let spec = work.join("world.toml");
    fs::create_dir_all(&work).unwrap();
    fs::write(
        &spec,
        "name = \"world\"\narch = \"x86_64\"\ninclude = [\"**\"]\nconfig = [\"etc/**\"]\n",
    )
    .unwrap();
    let mirror = c.root.join(&MIRROR[1..]);
    common::ok(
        common::sysup()
            .arg("build")
            .arg(&spec)
            .arg("--tree")
            .arg(tree(&work, rev))
            .args([
                "--rev",
                &rev.to_string(),
                "--date",
                &format!("202612{rev:02}"),
            ])
            .arg("--out")
            .arg(&mirror),
    );
    common::ok(
        common::sysup()
            .arg("publish")
            .arg(&mirror)
            .arg("--sign")
            .arg(key)
            .args(["--make-patches", "1"]),
    );
}

/// The container's root before the boot: a signed mirror of revisions 1
/// and 2, the public key, and the checkout the doc's commands run in.
fn prepare(c: &Container) -> mirror_support::Keys {
    let keydir = c.root.join("root/keys");
    fs::create_dir_all(&keydir).unwrap();
    let keys = mirror_support::keys(&keydir, "sysup");
    fs::create_dir_all(c.root.join(&MIRROR[1..])).unwrap();
    publish(c, &keys.secret, 1);
    publish(c, &keys.secret, 2);
    fs::create_dir_all(c.root.join("etc/sysup")).unwrap();
    fs::copy(&keys.public, c.root.join("etc/sysup/minisign.pub")).unwrap();

    let checkout = c.root.join(&CHECKOUT[1..]);
    fs::create_dir_all(checkout.join("systemd")).unwrap();
    for f in ["sysup-update.service", "sysup-update.timer", "sysup.env"] {
        fs::copy(
            repo(&format!("systemd/{f}")),
            checkout.join("systemd").join(f),
        )
        .unwrap();
    }
    let release = checkout.join("target/release");
    fs::create_dir_all(&release).unwrap();
    let bin = env!("CARGO_BIN_EXE_sysup");
    if fs::hard_link(bin, release.join("sysup")).is_err() {
        fs::copy(bin, release.join("sysup")).unwrap();
    }
    keys
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Run `line` in the checkout; it must succeed. Returns stdout.
fn ok(c: &Container, line: &str) -> String {
    let o = c.sh(CHECKOUT, line, LIMIT);
    assert!(
        o.status.success(),
        "`{line}` failed in the container:\n{}",
        text(&o)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `systemctl show -p PROPERTY --value UNIT`.
fn show(c: &Container, unit: &str, property: &str) -> String {
    ok(c, &format!("systemctl show -p {property} --value {unit}"))
        .trim()
        .to_string()
}

/// The installed world id, from `sysup status --json` in the container.
fn installed(c: &Container) -> String {
    let out = ok(c, "sysup status --json");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["root"], "/");
    assert!(j["pending"].is_null(), "{j}");
    let names = j["names"].as_array().unwrap();
    assert_eq!(names.len(), 1, "{j}");
    names[0]["installed"]["id"].as_str().unwrap().to_string()
}

/// `cmd`'s output once it holds every one of `needles` (journald writes a
/// service's lines a moment after the service ends), at most 10 s.
fn journal_with(c: &Container, cmd: &str, needles: &[&str]) -> String {
    let t0 = std::time::Instant::now();
    loop {
        let out = ok(c, cmd);
        if needles.iter().all(|n| out.contains(n)) {
            return out;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "`{cmd}` lacks one of {needles:?}:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn minisign_here() -> bool {
    let here = Command::new("minisign")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !here {
        assert!(std::env::var_os("CI").is_none(), "CI installs minisign");
        eprintln!("SKIPPED: minisign is not installed");
    }
    here
}

#[test]
fn fleet_md_timer_and_service_under_a_booted_systemd() {
    if !systemd_support::available() || !minisign_here() {
        return;
    }
    let cmds = doc_commands();
    assert_eq!(cmds.len(), 9, "{cmds:?}");
    let host_before = host_state();
    let mut c = Container::new();
    let keys = prepare(&c);
    c.boot();

    installs(&c, &cmds[0..3]);
    // The host as it was before its timer: world 1 installed, the
    // environment file edited as the doc says.
    ok(&c, &format!("sysup apply {MIRROR}/{}.tar.gz", id(1)));
    assert_eq!(installed(&c), id(1));
    let env = fs::read_to_string(c.path("/etc/default/sysup")).unwrap();
    assert!(
        env.contains("\nSYSUP_PUBKEY=/etc/sysup/minisign.pub\n"),
        "{env}"
    );
    let edited: Vec<String> = env
        .lines()
        .map(|l| match l.starts_with("SYSUP_MIRROR=") {
            true => format!("SYSUP_MIRROR=file://{MIRROR}/"),
            false => l.to_string(),
        })
        .collect();
    fs::write(c.path("/etc/default/sysup"), edited.join("\n") + "\n").unwrap();

    enables(&c, &cmds[3..6]);
    list_timers(&c, &cmds[6]);
    a_run_updates(&c, &cmds[7], &cmds[8]);
    a_bad_signature_fails(&c, &keys, &cmds[7], &cmds[8]);
    drop(c);
    assert_eq!(
        host_state(),
        host_before,
        "this machine's {HOST_PATHS:?} changed"
    );
}

/// `install -m …`: the binary, the units and the environment file, with
/// the doc's modes, and the binary on the /usr overlay's upper layer.
fn installs(c: &Container, cmds: &[String]) {
    for cmd in cmds {
        ok(c, cmd);
    }
    let bin = fs::metadata(c.path("/usr/local/sbin/sysup")).unwrap();
    assert_eq!(bin.permissions().mode() & 0o7777, 0o755);
    let built = fs::metadata(env!("CARGO_BIN_EXE_sysup")).unwrap();
    assert_eq!(bin.len(), built.len());
    assert!(c.usr_upper.join("local/sbin/sysup").is_file());
    for (from, to) in [
        (
            "sysup-update.service",
            "/etc/systemd/system/sysup-update.service",
        ),
        (
            "sysup-update.timer",
            "/etc/systemd/system/sysup-update.timer",
        ),
        ("sysup.env", "/etc/default/sysup"),
    ] {
        let m = fs::metadata(c.path(to)).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o644, "{to}");
        assert_eq!(
            fs::read(c.path(to)).unwrap(),
            fs::read(repo(&format!("systemd/{from}"))).unwrap()
        );
    }
}

/// `daemon-reload`, `enable`, `start` of the timer: loaded from
/// /etc/systemd/system, hooked into timers.target, active, and waiting —
/// starting the timer does not run the service.
fn enables(c: &Container, cmds: &[String]) {
    ok(c, &cmds[0]);
    for unit in ["sysup-update.service", "sysup-update.timer"] {
        assert_eq!(show(c, unit, "LoadState"), "loaded");
        assert_eq!(
            show(c, unit, "FragmentPath"),
            format!("/etc/systemd/system/{unit}")
        );
    }
    ok(c, &cmds[1]);
    assert_eq!(
        fs::read_link(c.path("/etc/systemd/system/timers.target.wants/sysup-update.timer"))
            .unwrap(),
        Path::new("/etc/systemd/system/sysup-update.timer")
    );
    assert_eq!(
        ok(c, "systemctl is-enabled sysup-update.timer").trim(),
        "enabled"
    );
    ok(c, &cmds[2]);
    assert_eq!(
        ok(c, "systemctl is-active sysup-update.timer").trim(),
        "active"
    );
    assert_eq!(
        show(c, "sysup-update.service", "InactiveExitTimestampMonotonic"),
        "0",
        "starting the timer ran the service"
    );
}

/// `list-timers`: the timer, the service it starts, and its next moment —
/// within the next day plus the six-hour spread.
fn list_timers(c: &Container, cmd: &str) {
    let out = ok(c, cmd);
    let next = show(c, "sysup-update.timer", "NextElapseUSecRealtime");
    assert!(!next.is_empty(), "no next elapse");
    let line = out
        .lines()
        .find(|l| l.contains("sysup-update.timer"))
        .unwrap_or_else(|| panic!("the timer is not listed:\n{out}"));
    assert!(line.contains("sysup-update.service"), "{out}");
    assert!(
        line.starts_with(&next),
        "next {next:?} not first in:\n{out}"
    );
    assert!(out.contains("1 timers listed."), "{out}");
    let unix = ok(c, &format!("date -d '{next}' +%s"));
    let at: u64 = unix.trim().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        at > now && at <= now + 30 * 3600,
        "next run {at} is not within a day and six hours of {now}"
    );
}

/// `systemctl start sysup-update.service`: a real update from the signed
/// mirror to world 2, then its report in `journalctl -u sysup-update`.
fn a_run_updates(c: &Container, start: &str, journal: &str) {
    ok(c, start);
    assert_eq!(show(c, "sysup-update.service", "Result"), "success");
    assert_eq!(show(c, "sysup-update.service", "ExecMainStatus"), "0");
    assert_eq!(installed(c), id(2));
    let data = c.path("/usr/share/sysup-fleet-test");
    assert_eq!(fs::read_to_string(data.join("VERSION")).unwrap(), "2\n");
    assert!(data.join("added-in-2").is_file());
    assert!(
        !data.join("only-in-1").exists(),
        "a file rev 2 dropped is still there"
    );
    assert_eq!(
        fs::read_to_string(c.path("/etc/sysup-fleet-test.conf")).unwrap(),
        conf(2)
    );
    // Written on the overlay's upper layer, not this machine's /usr.
    assert_eq!(
        fs::read_to_string(c.usr_upper.join("share/sysup-fleet-test/VERSION")).unwrap(),
        "2\n"
    );
    journal_with(
        c,
        journal,
        &[
            &format!("mirror file://{MIRROR} (INDEX serial "),
            &format!("world: {} -> {} by patches (1 file, ", id(1), id(2)),
            &format!("upgrade {} → {} in /", id(1), id(2)),
        ],
    );
}

/// A mirror whose INDEX no longer matches its signature: the run fails, the
/// unit is left failed, nothing changes, and the journal says why.
fn a_bad_signature_fails(c: &Container, keys: &mirror_support::Keys, start: &str, journal: &str) {
    publish(c, &keys.secret, 3);
    let index = c.path(&format!("{MIRROR}/INDEX"));
    let signed = fs::read_to_string(&index).unwrap();
    fs::write(&index, signed.replacen("timestamp ", "timestamp 9", 1)).unwrap();
    let o = c.sh(CHECKOUT, start, LIMIT);
    assert!(!o.status.success(), "the run passed:\n{}", text(&o));
    assert_eq!(
        ok(c, "systemctl is-failed sysup-update.service").trim(),
        "failed"
    );
    assert_eq!(show(c, "sysup-update.service", "Result"), "exit-code");
    assert_eq!(show(c, "sysup-update.service", "ExecMainStatus"), "1");
    assert_eq!(installed(c), id(2));
    let data = c.path("/usr/share/sysup-fleet-test");
    assert_eq!(fs::read_to_string(data.join("VERSION")).unwrap(), "2\n");
    journal_with(
        c,
        journal,
        &[
            "INDEX.minisig",
            "does not verify",
            "Failed with result 'exit-code'",
        ],
    );
}
