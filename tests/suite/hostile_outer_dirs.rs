//! Threat: a dist that turns a link of the root into a directory and ships
//! a file below a directory it does not list (an "outer" directory, which
//! staging creates). Staging made that outer directory inside the new,
//! staged directory, but journaled it by path: when the apply was then
//! refused, the undo resolved that path through the live link (`lib ->
//! usr/lib`, a merged-/usr root) and set `usr/lib`'s mtime to the staged
//! directory's — a refused apply changed the root. Found by the
//! `dist_stage` fuzz target (a flaky crash: visible only when a second
//! ticked between the install and the apply); here the mtimes are far
//! apart, so it shows every time.

use crate::common::*;
use crate::hostile_support::check_refusal;
use std::path::{Path, PathBuf};

/// A merged-/usr root: `lib -> usr/lib`, installed from world-1.
fn merged_usr(t: &Path) -> PathBuf {
    let root = t.join("root");
    std::fs::create_dir(&root).unwrap();
    let w1 = vec![
        Crafted::symlink("lib", "usr/lib"),
        Crafted::dir("usr"),
        Crafted::dir("usr/lib"),
        Crafted::file("usr/lib/libx.so", b"x"),
    ];
    apply_ok(&root, &[&craft_dist(t, "world-1-20260101", "x86_64", &w1)]);
    root
}

/// World-2: `lib` a directory, `lib/x` not listed but `lib/x/f`, then
/// `last` if given.
fn lib_a_directory(t: &Path, last: Option<Crafted>) -> PathBuf {
    let mut w2 = vec![
        Crafted::dir("lib"),
        Crafted::file("lib/x/f", b"f"),
        Crafted::dir("usr"),
        Crafted::dir("usr/lib"),
        Crafted::file("usr/lib/libx.so", b"x"),
    ];
    w2.extend(last);
    craft_dist(t, "world-2-20260102", "x86_64", &w2)
}

#[test]
fn an_outer_directory_inside_a_new_one_is_made_there() {
    // before: staging made lib/x inside the staged lib, then looked for it
    // through the live link (usr/lib/x) and refused a good dist
    let t = tempfile::tempdir().unwrap();
    let root = merged_usr(t.path());
    apply_ok(&root, &[&lib_a_directory(t.path(), None)]);
    assert!(root.join("lib").symlink_metadata().unwrap().is_dir());
    assert_eq!(std::fs::read(root.join("lib/x/f")).unwrap(), b"f");
    assert!(!root.join("usr/lib/x").exists());
}

#[test]
fn an_outer_directory_inside_a_new_one_is_undone_with_it() {
    let t = tempfile::tempdir().unwrap();
    let root = merged_usr(t.path());
    // lib becomes a directory; lib/x is not listed, lib/x/f is; then a new
    // file whose content is not what its MANIFEST line says
    let mut lying = Crafted::file("usr/z", b"y");
    lying.data = b"z".to_vec();
    let dist = lib_a_directory(t.path(), Some(lying));
    let before = guarded_snapshot(&root);
    let o = run_measured(sysup().args(["apply", "--root"]).arg(&root).arg(&dist));
    check_refusal(&o, &dist, &["does not match"]);
    assert_unchanged(&root, &before);
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
}
