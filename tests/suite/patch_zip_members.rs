//! Zip-family members (patch format 5): wheels made by Python's `zipfile`
//! (sized local headers, and data descriptors when written to a pipe, as
//! Java's jar writer does) and archives made by Info-ZIP's `zip`, two
//! versions of each inside dist trees, are diffed through their expanded
//! form where zlib rebuilds their deflate entries exactly; the patch is
//! smaller than with re-zipping off, rebuilds the new tar byte for byte
//! (library, `sysup patch`, `sysup apply --root`), and a hostile table in
//! a re-zipped record is refused.
//!
//! `python3` and `zip` are needed: outside CI a missing one makes its part
//! say SKIPPED; with `CI` set it fails.

use crate::common;
use crate::patch_support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use patch_support::craft::{assemble, header_diff, one_member_tar, plan, varints, Craft};
use patch_support::{apply, diff, edit, file, make_dist, opts, sysup_patch, Entry, Tree};
use sysup::diff::{diff_dists, DiffOptions};
use sysup::format::patch::ctrl::Ctrl;
use sysup::format::patch::header::VERSION;
use sysup::format::patch::recode::{self, Codec};
use sysup::format::patch::record::{DataOp, HeaderOp, Keep, MemberRecord, RecordWriter};
use sysup::Error;

/// Writes a zip of the files in `argv[1]` (sorted) with every name ending
/// in `.png` stored and the rest deflated at level `argv[3]`, to `argv[2]`
/// or, given `-`, to stdout: a pipe, so `zipfile` writes data descriptors.
const PY_ZIP: &str = r#"
import os, sys, zipfile
src, out, level = sys.argv[1], sys.argv[2], int(sys.argv[3])
def fill(z):
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(root, f)
            info = zipfile.ZipInfo(os.path.relpath(p, src), date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if f.endswith('.png') else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with open(p, 'rb') as fh:
                z.writestr(info, fh.read(), compresslevel=level)
if out == '-':
    with zipfile.ZipFile(sys.stdout.buffer, 'w') as z:
        fill(z)
else:
    with zipfile.ZipFile(out, 'w') as z:
        fill(z)
"#;

/// Who makes an archive.
#[derive(Clone, Copy, Debug)]
enum Maker {
    /// Python's `zipfile` at a level; to a pipe (data descriptors) or not.
    Python { level: u8, piped: bool },
    /// Info-ZIP's `zip` at a level.
    InfoZip { level: u8 },
}

/// Whether `tool` runs; outside CI a missing tool says SKIPPED.
fn have(tool: &str) -> bool {
    match Command::new(tool).arg("-h").stdout(Stdio::null()).status() {
        Ok(_) => true,
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: {tool} missing, its archives are not checked");
            false
        }
        Err(e) => panic!("{tool} is needed in CI: {e}"),
    }
}

/// Python-like source text: `lines` lines from `seed`.
fn module(seed: u64, lines: usize) -> Vec<u8> {
    let words = [
        "def",
        "return",
        "self",
        "import",
        "value",
        "name",
        "data",
        "None",
        "if",
        "for",
        "in",
        "raise",
        "ValueError",
        "path",
        "os.path.join(",
        "):",
        "=",
        "+= 1",
    ];
    patch_support::binary(seed, lines * 7)
        .chunks(7)
        .enumerate()
        .flat_map(|(k, c)| {
            let mut l = "    ".repeat(k % 3).into_bytes();
            for &b in c {
                l.extend_from_slice(words[usize::from(b) % words.len()].as_bytes());
                l.push(b' ');
            }
            l.push(b'\n');
            l
        })
        .collect()
}

/// The files of package version `version` (1 or 2): modules, a stored
/// picture, metadata. Version 2 edits three modules, adds one and bumps
/// the metadata; with `replaced` every module is new.
fn package(seed: u64, version: u64, replaced: bool) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let s = if replaced && version == 2 {
        seed + 1000
    } else {
        seed
    };
    for k in 0..16 {
        let mut m = module(s * 100 + k, 60 + 20 * k as usize);
        if version == 2 && !replaced && k % 5 == 1 {
            m = edit(&m, k, 700);
            m.extend_from_slice(b"def added_in_2():\n    return None\n");
        }
        files.push((format!("pkg/mod_{k:02}.py"), m));
    }
    if version == 2 {
        files.push(("pkg/new_in_2.py".into(), module(s * 100 + 99, 80)));
    }
    files.push((
        "pkg/data/logo.png".into(),
        patch_support::binary(seed, 3000),
    ));
    let meta = format!("Metadata-Version: 2.1\nName: pkg{seed}\nVersion: {version}.0\n\n");
    files.push(("pkg-1.0.dist-info/METADATA".into(), meta.into_bytes()));
    files
}

/// The archive `maker` makes of `files` (in `dir`).
fn archive(dir: &Path, maker: Maker, files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let src = dir.join("src");
    let _ = std::fs::remove_dir_all(&src);
    for (name, data) in files {
        let p = src.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
    }
    let out = dir.join("out.zip");
    let _ = std::fs::remove_file(&out);
    match maker {
        Maker::Python { level, piped } => {
            let o = patch_support::ok(
                Command::new("python3")
                    .args(["-c", PY_ZIP])
                    .arg(&src)
                    .arg(if piped { "-".as_ref() } else { out.as_os_str() })
                    .arg(level.to_string()),
            );
            if piped {
                return o.stdout;
            }
        }
        Maker::InfoZip { level } => {
            // Fixed times, names in order, no extra fields: the same files
            // make the same archive.
            patch_support::ok(Command::new("find").arg(&src).args([
                "-exec",
                "touch",
                "-d",
                "2024-01-01 00:00",
                "{}",
                "+",
            ]));
            let mut names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
            names.sort();
            let mut child = Command::new("zip")
                .current_dir(&src)
                .args(["-q", "-X", "-D", &format!("-{level}")])
                .arg(&out)
                .arg("-@")
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            let list = names.join("\n") + "\n";
            child
                .stdin
                .take()
                .unwrap()
                .write_all(list.as_bytes())
                .unwrap();
            assert!(child.wait().unwrap().success(), "zip -{level} failed");
        }
    }
    std::fs::read(&out).unwrap()
}

struct Case {
    path: &'static str,
    maker: Maker,
    replaced: bool,
}

/// Old and new trees holding each case's archive, versions 1 and 2.
fn trees(dir: &Path, cases: &[Case]) -> (Tree, Tree) {
    let (mut a, mut b) = (Tree::new(), Tree::new());
    for (k, c) in cases.iter().enumerate() {
        let seed = 1 + k as u64;
        let one = archive(dir, c.maker, &package(seed, 1, c.replaced));
        let two = archive(dir, c.maker, &package(seed, 2, c.replaced));
        a.insert(c.path.into(), file(one));
        b.insert(c.path.into(), file(two));
    }
    (a, b)
}

fn data(t: &Tree, p: &str) -> Vec<u8> {
    match &t[p] {
        Entry::File { data, .. } => data.clone(),
        _ => unreachable!(),
    }
}

#[test]
fn zip_archives_from_python_and_info_zip_are_diffed_expanded() {
    if !have("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let py = |level, piped| Maker::Python { level, piped };
    let case = |path, maker| Case {
        path,
        maker,
        replaced: false,
    };
    let mut cases = vec![
        case(
            "usr/share/python-wheels/a-1.0-py3-none-any.whl",
            py(6, false),
        ),
        case(
            "usr/share/python-wheels/b-1.0-py3-none-any.whl",
            py(9, false),
        ),
        case(
            "usr/share/python-wheels/c-1.0-py3-none-any.whl",
            py(1, false),
        ),
        case("usr/share/java/d.jar", py(6, true)),
        Case {
            replaced: true,
            ..case(
                "usr/share/python-wheels/e-1.0-py3-none-any.whl",
                py(6, false),
            )
        },
    ];
    let info_zip = have("zip");
    if info_zip {
        cases.push(case("usr/share/doc/f.zip", Maker::InfoZip { level: 6 }));
        cases.push(case("usr/share/doc/g.zip", Maker::InfoZip { level: 9 }));
    }
    let (a, b) = trees(d, &cases);
    // The piped archive has data descriptors.
    let jar = data(&b, "usr/share/java/d.jar");
    assert_eq!(jar[6] & 8, 8, "no data descriptor");
    let (ga, ta) = make_dist(d, "world-1-20260101", &a);
    let (gb, tb) = make_dist(d, "world-2-20260102", &b);
    let plain = diff_dists(
        &ga,
        &gb,
        &d.join("plain"),
        &DiffOptions {
            rezip: false,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(plain.stats.rezipped, 0);
    assert!(apply(&plain.patch, &ta).unwrap() == tb, "plain: differs");
    let r = diff(d, &ga, &gb);
    assert_eq!(r.header.version, VERSION);
    assert!(apply(&r.patch, &ta).unwrap() == tb, "re-zipped: differs");
    let out = sysup_patch(&r.patch, &ta);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == tb, "sysup patch: output differs");
    // Python's archives are zlib's own; Info-ZIP's deflate is its own
    // code, counted when zlib happens to match it (zip 3.0 and zlib 1.2
    // and 1.3 agree on these). The replaced one does not pay.
    let reproduced = |p: &str| recode::zip_recipe(&data(&b, p)).is_some();
    for c in &cases[..4] {
        assert!(reproduced(c.path), "{}", c.path);
    }
    let want: Vec<&str> = cases
        .iter()
        .filter(|c| !c.replaced && reproduced(c.path))
        .map(|c| c.path)
        .collect();
    eprintln!(
        "patch: {} bytes re-zipped, {} plain; re-zipped {want:?}; {:?}",
        r.size, plain.size, r.stats
    );
    assert_eq!(r.stats.rezipped, want.len() as u64, "{:?}", r.stats);
    let bytes: u64 = want.iter().map(|p| data(&b, p).len() as u64).sum();
    assert_eq!(r.stats.rezipped_bytes, bytes);
    // The replaced archive costs about as much either way (~27 KB here).
    assert!(
        r.size * 3 < plain.size * 2,
        "{} vs {} plain",
        r.size,
        plain.size
    );
}

#[test]
fn a_world_with_changed_wheels_upgrades_through_sysup_apply() {
    if !have("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wheel = "usr/share/python-wheels/pip-1.0-py3-none-any.whl";
    for rev in 1..=2 {
        let tree = d.join(format!("tree-{rev}"));
        common::fixtures::make_world(&tree, rev, common::fixtures::privileged()).unwrap();
        let zip = archive(
            d,
            Maker::Python {
                level: 6,
                piped: false,
            },
            &package(5, u64::from(rev), false),
        );
        let p = tree.join(wheel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, zip).unwrap();
    }
    let (t1, d1) = common::world_dist(d, 1);
    let (t2, d2) = common::world_dist(d, 2);
    let diff_to = |out: &Path, rezip: bool| {
        let mut c = common::sysup();
        c.arg("diff").arg(&d1).arg(&d2).arg("--out").arg(out);
        if !rezip {
            c.env("SYSUP_DIFF_NO_REZIP", "1");
        }
        common::ok(&mut c);
        let p = std::fs::read_dir(out)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let size = std::fs::metadata(&p).unwrap().len();
        (p, size)
    };
    let (patch, size) = diff_to(&d.join("rezip"), true);
    let (_, plain) = diff_to(&d.join("plain"), false);
    eprintln!("world patch: {size} bytes re-zipped, {plain} plain");
    assert!(size < plain, "{size} vs {plain}");
    let root = tempfile::tempdir().unwrap();
    common::apply_ok(root.path(), &[&d1]);
    common::assert_root_is(root.path(), &t1);
    let out = common::apply_ok(root.path(), &[&patch]);
    assert!(out.contains("world-2-20260102"), "{out}");
    common::assert_root_is(root.path(), &t2);
}

// ---- a hand-made patch: checksums valid, the table hostile ----------------

/// Old and new tars of one wheel; the patch makes the new wheel's
/// expanded form literally and rebuilds it by its table, whose fields
/// `tamper` may change (or cut: `cut` fields dropped from the end).
fn craft(dir: &Path, tamper: impl FnOnce(&mut Vec<u64>), cut: usize) -> Craft {
    let py = Maker::Python {
        level: 6,
        piped: false,
    };
    let old_zip = archive(dir, py, &package(3, 1, false));
    let new_zip = archive(dir, py, &package(3, 2, false));
    let (recipe, table, expanded) = recode::zip_recipe(&new_zip).expect("reproduced");
    assert!(matches!(recipe.codec, Codec::Zip(_)));
    let (old, new) = (
        one_member_tar("w.whl", &old_zip),
        one_member_tar("w.whl", &new_zip),
    );
    let mut fields = table.fields();
    tamper(&mut fields);
    fields.truncate(fields.len() - cut);
    let mut w = RecordWriter::new(Vec::new());
    plan(
        &mut w,
        &[Keep {
            hdr_last: 1,
            data_last: 1,
        }],
    );
    w.varint(1).unwrap();
    w.member(&MemberRecord {
        header: HeaderOp::Diff { old: 0 },
        data: DataOp::Recode {
            old: 0,
            len_delta: new_zip.len() as i64 - old_zip.len() as i64,
            recipe,
        },
        pad_literal: false,
    })
    .unwrap();
    let mut ctrl = w.into_inner();
    ctrl.extend_from_slice(&varints(&fields));
    let mut w = RecordWriter::new(ctrl);
    w.ctrl(&Ctrl {
        old_pos: 0,
        add: 0,
        extra: expanded.len() as u64,
    })
    .unwrap();
    w.varint(1024).unwrap();
    let head = header_diff(&new, &old);
    Craft {
        old,
        new,
        ctrl: w.into_inner(),
        diff: head,
        extra: [expanded, vec![0u8; 1024]].concat(),
        old_members: 1,
        new_members: 1,
        window_log: 20,
        raw_len_override: [None; 2],
        version: VERSION,
    }
}

fn refused(dir: &Path, c: &Craft, want: &str) {
    let e = apply(&assemble(dir, c), &c.old).unwrap_err();
    assert!(matches!(e, Error::Patch { .. }), "{e:?}");
    assert!(e.to_string().contains(want), "want {want:?}: {e}");
}

#[test]
fn hostile_zip_tables_are_refused() {
    if !have("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = craft(d, |_| {}, 0);
    assert!(apply(&assemble(d, &good), &good.old).unwrap() == good.new);
    // Fields per entry: gap, length, memLevel × 16 + level.
    refused(
        d,
        &craft(d, |f| f[1] = 1 << 40, 0),
        "beyond the member's expanded bytes",
    );
    refused(
        d,
        &craft(d, |f| f[2] = 0x80, 0),
        "deflate setting out of range",
    );
    refused(
        d,
        &craft(d, |f| f[5] = 0x8a, 0),
        "deflate setting out of range",
    );
    // Cut short: the controls after it are read as the table.
    assert!(apply(&assemble(d, &craft(d, |_| {}, 2)), &good.old).is_err());
    // In range but wrong: another level rebuilds other bytes.
    assert!(apply(&assemble(d, &craft(d, |f| f[2] = 0x89, 0)), &good.old).is_err());
    // An old member that is no zip archive: the wrong base, said so.
    let mut c = craft(d, |_| {}, 0);
    c.old[512] ^= 1;
    let e = apply(&assemble(d, &c), &c.old).unwrap_err();
    assert!(matches!(e, Error::WrongBase { .. }), "{e:?}");
    assert!(e.to_string().contains("not the zip file"), "{e}");
    // A format 4 patch cannot hold a re-zipped member.
    let mut v4 = craft(d, |_| {}, 0);
    v4.version = 4;
    refused(d, &v4, "older than format 5");
}
