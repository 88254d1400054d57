//! `sysup update` killed inside its apply, at every crash checkpoint: run
//! again, it must finish the update — the target tree byte for byte, the
//! journal gone, nothing left in the download directory — even when the
//! kill came after the new id was recorded (the mirror then says
//! "up to date", but the interrupted cleanup still has to run). And the
//! host lock is held from the INDEX to the end of the apply, so nothing can
//! slip in between the download and the apply.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::mirror_support;
use mirror_support::*;

/// `sysup update` with extra environment, proxies cleared.
fn update_env(
    root: &std::path::Path,
    url: &str,
    key: &std::path::Path,
    env: (&str, &str),
) -> Command {
    let mut c = common::sysup();
    c.env(env.0, env.1)
        .arg("update")
        .arg("--root")
        .arg(root)
        .args(["--mirror", url])
        .arg("--pubkey")
        .arg(key);
    without_proxies(&mut c);
    c
}

fn killed(o: &Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    o.status.signal() == Some(libc::SIGKILL)
}

#[test]
fn an_update_killed_at_any_checkpoint_finishes_when_run_again() {
    let w = World::new(&[1, 2], &[1]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    // the apply's checkpoints, and the update's own after its apply
    let points = sysup::host::checkpoint::ALL
        .iter()
        .chain(&["update-applied"]);
    for at in points {
        let root = w.root(&format!("host-{at}"));
        install(&root, 1);
        let o = common::run(&mut update_env(
            &root,
            &nginx.url(),
            &w.keys.public,
            ("SYSUP_CRASH_AT", at),
        ));
        assert!(killed(&o), "{at}: not killed: {}", stderr(&o));
        json_ok(&update(&root, &nginx.url(), &w.keys.public, &["--json"]));
        let d = tree_diff(&root, 2);
        assert!(d.is_empty(), "after a kill at {at}:\n{}", d.join("\n"));
        assert_eq!(installed(&root).as_deref(), Some(id(2).as_str()), "{at}");
        assert!(
            !root.join("var/db/sysup/journal").exists(),
            "{at}: journal left"
        );
        assert_eq!(downloads(&root), Vec::<String>::new(), "{at}");
        assert_eq!(common::leftovers(&root), Vec::<String>::new(), "{at}");
    }
}

#[test]
fn nothing_can_slip_in_between_an_updates_download_and_its_apply() {
    let w = World::new(&[1, 2], &[1]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let root = w.root("host");
    install(&root, 1);
    // the update sleeps between its downloads and its apply (failpoint)
    let mut up = update_env(
        &root,
        &nginx.url(),
        &w.keys.public,
        ("FAILPOINTS", "update-before-apply=sleep(3000)"),
    );
    let child = up
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !downloads(&root).iter().any(|f| f.ends_with(".patch")) {
        assert!(t0.elapsed() < Duration::from_secs(20), "no download");
        std::thread::sleep(Duration::from_millis(20));
    }
    // another sysup now: it must wait its turn, not apply over the update
    let o = common::run(
        common::sysup()
            .arg("apply")
            .arg("--root")
            .arg(&root)
            .arg(&built().dists[2]),
    );
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("another sysup"), "{e}");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tree_diff(&root, 2).is_empty());
}
