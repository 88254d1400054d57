//! The README's first command, `sysup demo`: it tells the whole story —
//! build, diff, apply, repair, then publish a signed INDEX, update a host
//! over HTTP from it, verify, roll back, update forward, history and clean —
//! printing each admin step as the command a person would type, and leaves
//! nothing behind in its temporary directory.

use crate::common;

use common::*;

#[test]
fn the_demo_tells_the_mirror_story_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(sysup().arg("demo").env("TMPDIR", tmp.path()));
    let mut at = 0;
    // In this order: each step's command line, then what it printed.
    for needle in [
        "$ sysup publish dists --sign demo.key",
        "wrote dists/INDEX.minisig",
        "$ sysup -q apply --root host2 dists/world-1-20261121.tar.gz",
        "$ sysup update --root host2 --mirror http://127.0.0.1:",
        "world-1-20261121 -> world-3-20261123 by patches",
        "upgrade world-1-20261121 → world-3-20261123 in ",
        "$ sysup verify --root host2",
        "verify world-3-20261123: 50 entries checked, clean",
        "$ sysup rollback --root host2",
        "rollback world-3-20261123 → world-1-20261121",
        "$ sysup -q update --root host2",
        "$ sysup history --root host2",
        "rollback  world-3-20261123  world-1-20261121",
        "$ sysup clean --root host2 --keep 1",
        "bases/world-1-20261121.tar.gz",
    ] {
        let found = out[at..]
            .find(needle)
            .unwrap_or_else(|| panic!("'{needle}' missing after byte {at} of:\n{out}"));
        at += found + needle.len();
    }
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
