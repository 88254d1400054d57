//! The command line around patches: `sysup diff` names and places the patch
//! (and refuses what it must, leaving nothing behind), `sysup info` shows the
//! header, and the docs/design.md §3 shell pipeline
//! `gunzip < A | sysup patch P | tar -xpf - -C DIR` extracts the new tree
//! with GNU tar; a reader that goes away (EPIPE) is an error, not a panic.

use crate::patch_support;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use patch_support::*;

/// `find` listing of a tree: path, type, mode, link target, size.
fn listing(root: &Path) -> String {
    let o = ok(Command::new("find")
        .arg(".")
        .args(["-printf", "%p %y %m %l %s\n"])
        .current_dir(root));
    let mut lines: Vec<&str> = std::str::from_utf8(&o.stdout).unwrap().lines().collect();
    lines.sort();
    // Directory sizes depend on the filesystem, not the tar.
    lines
        .iter()
        .map(|l| {
            if l.split(' ').nth(1) == Some("d") {
                l.rsplit_once(' ').unwrap().0.to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn sh(script: &str) -> std::process::Output {
    Command::new("bash")
        .args(["-o", "pipefail", "-c", script])
        .env("SYSUP", env!("CARGO_BIN_EXE_sysup"))
        .output()
        .unwrap()
}

/// The world pair's two dists, gzipped (`ga`, `gb`) and as tars (`ta`,
/// `tb`), in a temporary directory `d` (kept alive by `_dir`).
struct Pair {
    _dir: tempfile::TempDir,
    d: PathBuf,
    ga: PathBuf,
    gb: PathBuf,
    ta: Vec<u8>,
    tb: Vec<u8>,
}

fn pair() -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let (a, b) = world_pair();
    let (ga, ta) = make_dist(&d, "world-1-20260101", &a);
    let (gb, tb) = make_dist(&d, "world-2-20260102", &b);
    Pair {
        _dir: dir,
        d,
        ga,
        gb,
        ta,
        tb,
    }
}

/// `sysup diff OLD NEW ARGS…`, refused: exit 1, never a panic. Its stderr.
fn diff_refused(old: &Path, new: &Path, args: &[&OsStr]) -> String {
    let o = sysup()
        .arg("diff")
        .arg(old)
        .arg(new)
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn shell_pipeline_extracts_the_new_tree() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = world_pair();
    let (ga, _) = make_dist(d, "world-1-20260101", &a);
    let (gb, tb) = make_dist(d, "world-2-20260102", &b);
    fs::create_dir(d.join("patches")).unwrap();
    ok(sysup()
        .arg("diff")
        .arg(&ga)
        .arg(&gb)
        .arg("--out")
        .arg(d.join("patches")));
    let patch = d.join("patches/world-1-20260101_2-20260102.patch");
    assert!(patch.is_file());
    fs::create_dir(d.join("x")).unwrap();
    let o = sh(&format!(
        "cd '{}' && gunzip < world-1-20260101.tar.gz | \"$SYSUP\" patch patches/world-1-20260101_2-20260102.patch | tar -xpf - -C x",
        d.display()
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        listing(&d.join("x")),
        listing(&d.join("tree-world-2-20260102"))
    );
    for (path, e) in &b {
        if let Entry::File { data, .. } = e {
            assert!(&fs::read(d.join("x").join(path)).unwrap() == data, "{path}");
        }
    }
    // And the stream itself is the new tar, byte for byte.
    let o = sh(&format!(
        "cd '{}' && gunzip < world-1-20260101.tar.gz | \"$SYSUP\" patch patches/*.patch",
        d.display()
    ));
    assert!(o.status.success());
    assert!(o.stdout == tb);
}

#[test]
fn a_closed_stdout_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = world_pair();
    let (ga, _) = make_dist(d, "world-1-20260101", &a);
    let (gb, _) = make_dist(d, "world-2-20260102", &b);
    let p = diff(d, &ga, &gb).patch;
    let o = sh(&format!(
        "gunzip < '{}' | \"$SYSUP\" patch '{}' | head -c 100 > /dev/null; echo \"status ${{PIPESTATUS[1]}}\"",
        ga.display(),
        p.display()
    ));
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(out.contains("status 1"), "{out} {err}");
    assert!(
        err.starts_with("error: ") && err.contains("<stdout>"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn diff_json_and_info() {
    let Pair {
        d, ga, gb, ta, tb, ..
    } = &pair();
    let o = ok(sysup()
        .arg("diff")
        .arg(ga)
        .arg(gb)
        .arg("--json")
        .current_dir(d));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let patch = d.join("world-1-20260101_2-20260102.patch");
    assert_eq!(j["size"], fs::metadata(&patch).unwrap().len());
    assert_eq!(j["header"]["from"]["id"], "world-1-20260101");
    assert_eq!(j["header"]["to"]["size"], tb.len());
    assert_eq!(
        j["header"]["from"]["sha256"],
        sysup::util::digest::Digests::of(ta).sha256_hex()
    );

    let o = ok(sysup().arg("info").arg(&patch).arg("--json"));
    let i: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(i["kind"], "patch");
    assert_eq!(i["name"], "world-1-20260101_2-20260102");
    assert_eq!(i["to"]["id"], "world-2-20260102");
    assert_eq!(
        i["to"]["md5"],
        sysup::util::digest::Digests::of(tb).md5_hex()
    );
    assert_eq!(i["body_format"], "member-bsdiff");
    assert_eq!(i["compression"], "zstd");
    // The xz codec, through the command line, applies to the same result.
    let xdir = d.join("x");
    fs::create_dir(&xdir).unwrap();
    ok(sysup()
        .arg("diff")
        .arg(ga)
        .arg(gb)
        .args(["--compression", "xz", "--level", "1", "--out"])
        .arg(&xdir));
    let xpatch = xdir.join("world-1-20260101_2-20260102.patch");
    let o = ok(sysup().arg("info").arg(&xpatch).arg("--json"));
    let xi: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(xi["compression"], "xz");
    assert!(apply(&xpatch, ta).unwrap() == *tb);
    // A level outside the codec's range is refused, for either codec.
    for args in [
        &["--level", "23"][..],
        &["--compression", "xz", "--level", "12"],
    ] {
        let mut args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        args.extend([OsStr::new("--out"), xdir.as_os_str()]);
        let err = diff_refused(ga, gb, &args);
        assert!(err.contains("--level"), "{args:?}: {err}");
    }
    let o = ok(sysup().arg("info").arg(&patch));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&sysup::util::digest::Digests::of(ta).md5_hex()),
        "{text}"
    );
    assert!(text.contains("world-2-20260102"), "{text}");
}

#[test]
fn info_reads_only_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = world_pair();
    let (ga, _) = make_dist(d, "world-1-20260101", &a);
    let (gb, _) = make_dist(d, "world-2-20260102", &b);
    let p = diff(d, &ga, &gb).patch;
    // Damage the body: info still shows the header, patch refuses.
    let mut bytes = fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    fs::write(&p, bytes).unwrap();
    ok(sysup().arg("info").arg(&p));
    let o = sysup_patch(&p, b"");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn diff_refuses_other_names_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = world_pair();
    let (ga, _) = make_dist(d, "world-1-20260101", &a);
    let (gk, _) = make_dist(d, "kernel-GENERIC-2-20260102", &b);
    let out = d.join("out");
    fs::create_dir(&out).unwrap();
    let to_out = [OsStr::new("--out"), out.as_os_str()];
    let err = diff_refused(&ga, &gk, &to_out);
    assert!(err.contains("never crosses names"), "{err}");

    // A new dist that is not gzip: exit 1, nothing (not even a temp file) left.
    let bad = d.join("world-2-20260102.tar.gz");
    fs::write(&bad, b"this is not gzip at all").unwrap();
    let err = diff_refused(&ga, &bad, &to_out);
    assert!(err.contains("world-2-20260102.tar.gz"), "{err}");
    assert_eq!(fs::read_dir(&out).unwrap().count(), 0);

    // Not a dist file name.
    diff_refused(&ga, &d.join("tree-world-1-20260101"), &[]);
}

#[test]
fn diff_names_a_damaged_dist_and_leaves_nothing() {
    // The dists are inflated on threads of their own; their errors must
    // still come out as the dist's, not as a stopped thread or a panic.
    let Pair { d, ga, gb, .. } = &pair();
    let good = fs::read(gb).unwrap();
    let cut = d.join("cut");
    let flipped = d.join("flipped");
    for (sub, bytes) in [
        (&cut, good[..good.len() / 2].to_vec()),
        (&flipped, {
            let mut v = good.clone();
            let at = v.len() * 2 / 3;
            v[at] ^= 0x55;
            v
        }),
    ] {
        fs::create_dir(sub).unwrap();
        let bad = sub.join("world-2-20260102.tar.gz");
        fs::write(&bad, bytes).unwrap();
        let out = sub.join("out");
        let err = diff_refused(ga, &bad, &[OsStr::new("--out"), out.as_os_str()]);
        assert!(err.contains(&*bad.to_string_lossy()), "{err}");
        assert!(!err.contains("thread stopped"), "{err}");
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0, "{err}");
    }
}

#[test]
fn diff_makes_its_output_directory_as_build_does() {
    let Pair { d, ga, gb, .. } = &pair();
    let out = d.join("patches/world");
    ok(sysup().arg("diff").arg(ga).arg(gb).arg("--out").arg(&out));
    assert!(out.join("world-1-20260101_2-20260102.patch").is_file());
    // A directory that cannot be made (under a file) is named in the error.
    let under_file = ga.join("sub");
    let err = diff_refused(ga, gb, &[OsStr::new("--out"), under_file.as_os_str()]);
    assert!(
        err.contains("create output directory") && err.contains(&*under_file.to_string_lossy()),
        "{err}"
    );
}
