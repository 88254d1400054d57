//! The state directory: links refused, what touches it, the lock, the
//! installed records.

use super::*;
use std::fs;

#[test]
fn a_state_directory_behind_a_link_is_refused_even_inside_the_root() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let outside = t.path().join("outside");
    fs::create_dir_all(root.join("var")).unwrap();
    fs::create_dir_all(root.join("elsewhere")).unwrap();
    fs::create_dir_all(&outside).unwrap();
    for target in [
        outside.clone(),
        "../../../outside".into(),
        "../elsewhere".into(),
    ] {
        let _ = fs::remove_file(root.join("var/db"));
        std::os::unix::fs::symlink(&target, root.join("var/db")).unwrap();
        let e = State::open(&root).unwrap_err().to_string();
        assert!(e.contains("var/db' is a symbolic link"), "{e}");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        assert_eq!(fs::read_dir(root.join("elsewhere")).unwrap().count(), 0);
    }
}

#[test]
fn links_in_the_state_directory_are_refused() {
    let t = tempfile::tempdir().unwrap();
    State::open(t.path()).unwrap();
    for name in [
        "journal",
        "installed/world",
        "bases/world-1-20260101.tar.gz",
    ] {
        let p = t.path().join(STATE_DIR).join(name);
        std::os::unix::fs::symlink("/etc/passwd", &p).unwrap();
        let e = State::open(t.path()).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{STATE_DIR}/{name}' is a symbolic link")),
            "{e}"
        );
        fs::remove_file(&p).unwrap();
    }
    State::open(t.path()).unwrap();
}

#[test]
fn what_touches_the_state_directory() {
    for p in [
        "var",
        "var/db",
        "var/db/sysup",
        "var/db/sysup/history",
        "var/db/sysup/bases/x",
    ] {
        assert!(touches_state(p.as_bytes()), "{p}");
    }
    for p in [
        "va",
        "var/dbx",
        "var/db/sysupx",
        "var/lib",
        "etc",
        "var/db/other",
    ] {
        assert!(!touches_state(p.as_bytes()), "{p}");
    }
}

#[test]
fn lock_is_exclusive_and_names_the_holder() {
    let t = tempfile::tempdir().unwrap();
    let s = State::open(t.path()).unwrap();
    let held = s.lock().unwrap();
    // flock is per open file description: a second open conflicts even in-process
    let e = s.lock().unwrap_err().to_string();
    assert!(e.contains(&std::process::id().to_string()), "{e}");
    drop(held);
    s.lock().unwrap();
}

#[test]
fn installed_records_round_trip() {
    let t = tempfile::tempdir().unwrap();
    let s = State::open(t.path()).unwrap();
    let name: DistName = "world".parse().unwrap();
    assert!(s.installed(&name).unwrap().is_none());
    let rec = Installed {
        id: "world-1-20260101".parse().unwrap(),
        arch: "x86_64".into(),
        installed_at: 5,
        tar: Digests::of(b"x"),
        base_size: 3,
    };
    s.write_installed(&rec).unwrap();
    assert_eq!(s.installed(&name).unwrap(), Some(rec.clone()));
    assert_eq!(s.installed_all().unwrap(), vec![rec]);
}

#[test]
fn a_base_swapped_after_open_is_not_followed() {
    let t = tempfile::tempdir().unwrap();
    let s = State::open(t.path()).unwrap();
    let id: DistId = "world-1-20260101".parse().unwrap();
    let p = t.path().join(STATE_DIR).join("bases").join(id.file_name());
    let outside = t.path().join("outside.tar.gz");
    fs::write(&outside, b"not sysup's").unwrap();
    // a link planted once the state was opened (and checked)
    std::os::unix::fs::symlink(&outside, &p).unwrap();
    for e in [
        s.open_base(&id).unwrap_err().to_string(),
        s.base_metadata(&id).unwrap_err().to_string(),
    ] {
        assert!(
            e.contains(&format!("{}' is a symbolic link", p.display())),
            "{e}"
        );
    }
    // a FIFO neither blocks the open nor is read
    fs::remove_file(&p).unwrap();
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let e = s.open_base(&id).unwrap_err().to_string();
    assert!(e.contains("is not a regular file"), "{e}");
}

#[test]
fn accepted_keys_are_kept_by_key_id_and_never_read_through_a_link() {
    let t = tempfile::tempdir().unwrap();
    let s = State::open(t.path()).unwrap();
    assert!(s.accepted_keys().unwrap().is_empty());
    let p = s.store_key("00AB00CD00EF0012", b"sysup-keys 1\n").unwrap();
    assert!(p.ends_with("keys/00AB00CD00EF0012"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(s.store_key("../x", b"").is_err());
    // Only key ids are keys: an interrupted write's temporary is not.
    let dir = t.path().join(STATE_DIR).join(KEYS_DIR);
    fs::write(dir.join(".00AB00CD00EF0012.9.tmp"), b"x").unwrap();
    let keys = s.accepted_keys().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].key_id, "00AB00CD00EF0012");
    assert_eq!(keys[0].text, b"sysup-keys 1\n");
    std::os::unix::fs::symlink("/etc/passwd", dir.join("1111111111111111")).unwrap();
    let e = State::open(t.path()).unwrap_err().to_string();
    assert!(
        e.contains("keys/1111111111111111") && e.contains("symbolic link"),
        "{e}"
    );
    let e = s.accepted_keys().unwrap_err().to_string();
    assert!(e.contains("symbolic link"), "{e}");
}
