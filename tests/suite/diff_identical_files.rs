//! `sysup diff` leaves the data of files both dists hold identical (same
//! member name, size and SHA-256 in both MANIFESTs) out of its temporary
//! files — the new dist's copy always, the old one's unless a new member may
//! be diffed against it by version-stripped name — and the patch still
//! rebuilds the new tar byte for byte. A dist whose tar does not match its
//! own MANIFEST for such a file is refused, naming the dist and the member,
//! and no patch is left behind.

use crate::common;
use crate::patch_support;

use std::io::Read;
use std::path::{Path, PathBuf};

use common::*;
use patch_support::{binary, edit};
use sysup::diff::{diff_dists, DiffOptions};

fn critical(path: &str, data: &[u8]) -> Crafted {
    let mut c = Crafted::file(path, data);
    c.entry.critical = true;
    c
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn diff(old: &Path, new: &Path, out: &Path) -> sysup::Result<sysup::diff::DiffReport> {
    diff_dists(old, new, out, &DiffOptions::default())
}

struct World {
    libc: Vec<u8>,
    libfoo: Vec<u8>,
    same: Vec<u8>,
    changed: Vec<u8>,
}

fn world() -> World {
    World {
        libc: binary(1, 200_000),
        libfoo: binary(2, 300_000),
        same: binary(3, 100_000),
        changed: binary(4, 150_000),
    }
}

/// The old dist: every file once.
fn old_members(w: &World) -> Vec<Crafted> {
    vec![
        Crafted::dir("bin"),
        Crafted::file("bin/changed", &w.changed),
        Crafted::file("bin/same", &w.same),
        Crafted::dir("lib"),
        critical("lib/libc.so.6", &w.libc),
        Crafted::file("lib/libfoo.so.1", &w.libfoo),
    ]
}

/// The new dist: `bin/changed` edited, and a new `lib/libfoo.so.2` (an
/// edited libfoo.so.1, which stays) that pairs with the old libfoo.so.1 by
/// version-stripped name.
fn new_members(w: &World) -> Vec<Crafted> {
    vec![
        Crafted::dir("bin"),
        Crafted::file("bin/changed", &edit(&w.changed, 5, 997)),
        Crafted::file("bin/same", &w.same),
        Crafted::dir("lib"),
        critical("lib/libc.so.6", &w.libc),
        Crafted::file("lib/libfoo.so.1", &w.libfoo),
        Crafted::file("lib/libfoo.so.2", &edit(&w.libfoo, 6, 1009)),
    ]
}

/// The old and the new dist, as they should be, in `dir`.
fn good_dists(dir: &Path, w: &World) -> (PathBuf, PathBuf) {
    let old = craft_dist(dir, "world-1-20260101", "x86_64", &old_members(w));
    let new = craft_dist(dir, "world-2-20260102", "x86_64", &new_members(w));
    (old, new)
}

#[test]
fn identical_files_stay_out_of_the_spool_and_the_patch_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let w = world();
    let (old, new) = good_dists(dir.path(), &w);
    let out = dir.path().join("patches");
    let r = diff(&old, &new, &out).unwrap();

    // New side: libc (stored as libc.so.6.new), libfoo.so.1 and bin/same.
    // Old side: libc and bin/same; its libfoo.so.1 is kept, for libfoo.so.2.
    let s = &r.stats;
    let new_side = w.libc.len() + w.libfoo.len() + w.same.len();
    let old_side = w.libc.len() + w.same.len();
    assert_eq!(s.unspooled_bytes, (new_side + old_side) as u64, "{s:?}");
    // libfoo.so.2 was diffed against the old libfoo.so.1, not sent whole;
    // the others diffed are DIST, MANIFEST and bin/changed.
    assert_eq!(s.literal, 0, "{s:?}");
    assert_eq!(s.diffed, 4, "{s:?}");
    assert_eq!(s.copied, 3, "{s:?}");
    assert!(
        r.size < 40_000,
        "patch of {} bytes: libfoo.so.2 went literal?",
        r.size
    );

    let old_tar = gunzip(&old);
    let mut rebuilt = Vec::new();
    sysup::patch::apply(&r.patch, &old_tar[..], &mut rebuilt, Path::new("<old>")).unwrap();
    assert!(
        rebuilt == gunzip(&new),
        "the patch does not rebuild the new tar"
    );
}

/// What spoils the `bin/same` member of a dist.
type Spoil = dyn Fn(&mut Crafted);

/// A dist with `bin/same` listed as the real file but stored spoiled by `bad`.
fn bad_dist(dir: &Path, id: &str, w: &World, bad: &Spoil) -> PathBuf {
    let mut members = if id.starts_with("world-1") {
        old_members(w)
    } else {
        new_members(w)
    };
    let same = members
        .iter_mut()
        .find(|m| m.entry.path == b"bin/same")
        .unwrap();
    bad(same);
    craft_dist(dir, id, "x86_64", &members)
}

#[test]
fn a_dist_that_does_not_match_its_manifest_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let w = world();
    let (good_old, good_new) = good_dists(dir.path(), &w);
    let flipped = |m: &mut Crafted| m.data[50_000] ^= 0x40;
    let longer = |m: &mut Crafted| m.data.push(0);
    let renamed = |m: &mut Crafted| m.member = Some(b"bin/same-elsewhere".to_vec());
    let cases: [(&str, &Spoil, &str); 4] = [
        ("SHA-256", &flipped, "world-2-20260102"),
        ("SHA-256", &flipped, "world-1-20260101"),
        ("100001 bytes", &longer, "world-2-20260102"),
        ("no member of that name", &renamed, "world-1-20260101"),
    ];
    for (i, (needle, bad, id)) in cases.into_iter().enumerate() {
        let sub = dir.path().join(format!("case{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        let broken = bad_dist(&sub, id, &w, bad);
        let (old, new) = if id.starts_with("world-1") {
            (broken.clone(), good_new.clone())
        } else {
            (good_old.clone(), broken.clone())
        };
        let out = sub.join("patches");
        let e = diff(&old, &new, &out).unwrap_err().to_string();
        assert!(
            e.contains(&*broken.to_string_lossy())
                && e.contains("'bin/same'")
                && e.contains("MANIFEST")
                && e.contains(needle),
            "case {i}: {e}"
        );
        let left: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
        assert!(left.is_empty(), "case {i}: left {left:?}");

        // The same through the command line: a clear message, non-zero exit.
        let o = run(sysup()
            .arg("diff")
            .arg(&old)
            .arg(&new)
            .arg("--out")
            .arg(&out));
        assert!(!o.status.success(), "case {i}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("'bin/same'") && err.contains(needle),
            "case {i}: {err}"
        );
    }
}
