//! Messages that send the admin the right way: a missing file is said to
//! be missing (not a name that does not parse), a patch that does not fit
//! the host points at what to do on a host, a patch whose target is
//! already installed says it ran as a repair, and `--help` carries no
//! implementation notes.

use crate::common;

use common::*;

#[test]
fn a_missing_dist_is_said_to_be_missing() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("nonexistent/world-2.tar.gz");
    let e = apply_fails(&t.path().join("root"), &[&missing]);
    assert!(e.contains("could not open"), "{e}");
    assert!(e.contains("world-2.tar.gz"), "{e}");
    assert!(e.contains("No such file or directory"), "{e}");
    assert!(!e.contains("invalid date"), "{e}");
}

#[test]
fn a_dist_with_a_bad_name_names_the_file() {
    let t = tempfile::tempdir().unwrap();
    let bad = t.path().join("world-2.tar.gz");
    std::fs::write(&bad, b"not a dist").unwrap();
    let e = apply_fails(&t.path().join("root"), &[&bad]);
    assert!(e.contains("is not named as a dist"), "{e}");
    assert!(e.contains(&*bad.to_string_lossy()), "{e}");
    assert!(e.contains("invalid date '2'"), "{e}");
}

#[test]
fn a_patch_whose_target_is_installed_says_it_ran_as_a_repair() {
    let c = chain();
    let (t, _) = installed_root(2);
    let out = apply_ok(t.path(), &[&c.patches[0]]);
    assert!(
        out.contains("note: world-2-20260102 is already installed: the patch was not needed"),
        "{out}"
    );
    let json = ok(sysup()
        .args(["apply", "--json", "--root"])
        .arg(t.path())
        .arg(&c.patches[0]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["action"], "repair", "{json}");
    let notes = v["notes"].as_array().expect("notes");
    assert_eq!(notes.len(), 1, "{json}");
    assert!(
        notes[0].as_str().unwrap().contains("already installed"),
        "{json}"
    );
    // An ordinary upgrade has no note.
    let (t, _) = installed_root(1);
    let out = apply_ok(t.path(), &[&c.patches[0]]);
    assert!(!out.contains("note:"), "{out}");
}

#[test]
fn help_has_no_implementation_notes() {
    let help = ok(sysup().args(["build", "--help"]));
    assert!(help.contains("--rev"), "{help}");
    assert!(!help.contains("clap"), "{help}");
    assert!(!help.contains("Validated by"), "{help}");
}
