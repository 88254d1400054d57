//! Compressed members beyond gzip (patch format 4): xz files made by the
//! real `xz` tool and zstd frames made by the real `zstd` tool, at several
//! settings, are diffed through their uncompressed bytes when this build
//! rebuilds them exactly (and that is smaller), kept plain when it does not;
//! every patch rebuilds the new tar byte for byte, and a hostile or damaged
//! re-encoded record is refused.
//!
//! The tools are needed: outside CI a missing one makes its test say
//! SKIPPED; with `CI` set it fails.

use crate::patch_support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use patch_support::craft::{assemble, header_diff, one_member_tar, plan, varints, Craft};
use patch_support::*;
use sysup::diff::{diff_dists, DiffOptions, DiffReport};
use sysup::format::patch::ctrl::Ctrl;
use sysup::format::patch::header::VERSION;
use sysup::format::patch::recode::{self, Codec, Recipe};
use sysup::format::patch::record::{DataOp, HeaderOp, Keep, MemberRecord, RecordWriter};
use sysup::format::patch::{rexz, rezstd};
use sysup::Error;

/// `tool args` with `input` on stdin: its stdout; `None` (SKIPPED said)
/// when the tool is missing outside CI.
fn run_tool(tool: &str, args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    let child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: {tool} missing, its files are not checked");
            return None;
        }
        Err(e) => panic!("{tool} is needed in CI: {e}"),
    };
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(out.status.success(), "{tool} {args:?} failed");
    Some(out.stdout)
}

/// `tool args FILE` on a file holding `input` (the tool knows the size in
/// advance, as when it compresses a file in place): the compressed bytes.
fn compress_file(dir: &Path, tool: &str, args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    let f = dir.join("in");
    std::fs::write(&f, input).unwrap();
    let mut a = args.to_vec();
    a.extend(["-c", f.to_str().unwrap()]);
    run_tool(tool, &a, b"")
}

/// A changelog-like text of `lines` lines.
fn text(seed: u64, lines: usize) -> Vec<u8> {
    let words = [
        "fix", "the", "build", "of", "module", "when", "CONFIG", "is", "set",
    ];
    binary(seed, lines * 8)
        .chunks(8)
        .flat_map(|c| {
            let mut l = b"  * ".to_vec();
            for &b in c {
                l.extend_from_slice(words[usize::from(b) % words.len()].as_bytes());
                l.push(b' ');
            }
            l.push(b'\n');
            l
        })
        .collect()
}

/// A new version of `old`: a line at the top, a few bytes changed inside.
fn newer(old: &[u8], seed: u64) -> Vec<u8> {
    let mut n = format!("  * version {seed}\n").into_bytes();
    n.extend_from_slice(&edit(old, seed, 4000));
    n
}

struct Case {
    path: &'static str,
    args: &'static [&'static str],
    /// Compressed from a pipe rather than a file.
    piped: bool,
    /// Content replaced wholesale rather than edited.
    replaced: bool,
    /// Expected to be re-encoded.
    recoded: Expect,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Yes,
    No,
    /// When this build's encoder reproduces the tool's output: libzstd's
    /// output changes between versions, and the `zstd` tool's libzstd is
    /// not sysup's.
    IfReproduced,
}

/// Old and new trees of the cases' members compressed by `tool`; `None` if
/// the tool is missing.
fn trees(dir: &Path, tool: &str, cases: &[Case]) -> Option<(Tree, Tree)> {
    let (mut a, mut b) = (Tree::new(), Tree::new());
    for (k, c) in cases.iter().enumerate() {
        let seed = 10 + k as u64;
        let old_raw = [text(seed, 900), binary(seed, 20_000)].concat();
        let new_raw = if c.replaced {
            [text(seed + 100, 900), binary(seed + 100, 20_000)].concat()
        } else {
            newer(&old_raw, seed)
        };
        let pack = |raw: &[u8]| match c.piped {
            true => run_tool(tool, c.args, raw),
            false => compress_file(dir, tool, c.args, raw),
        };
        a.insert(c.path.to_string(), file(pack(&old_raw)?));
        b.insert(c.path.to_string(), file(pack(&new_raw)?));
    }
    Some((a, b))
}

/// Diff the trees with and without re-encoding; check both round trips
/// and the members re-encoded; the two patch sizes and how many were.
fn diff_both_ways(dir: &Path, a: &Tree, b: &Tree, cases: &[Case]) -> (DiffReport, u64, usize) {
    let (ga, ta) = make_dist(dir, "world-1-20260101", a);
    let (gb, tb) = make_dist(dir, "world-2-20260102", b);
    let plain_dir = dir.join("plain");
    let plain = diff_dists(
        &ga,
        &gb,
        &plain_dir,
        &DiffOptions {
            recode: false,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(plain.stats.recoded, 0);
    assert!(
        apply(&plain.patch, &ta).unwrap() == tb,
        "plain: output differs"
    );
    let r = diff(dir, &ga, &gb);
    assert_eq!(r.header.version, VERSION);
    assert!(
        apply(&r.patch, &ta).unwrap() == tb,
        "re-encoded: output differs"
    );
    // Through the binary too, as a host chains it.
    let out = sysup_patch(&r.patch, &ta);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == tb, "sysup patch: output differs");
    let data = |t: &Tree, p: &str| match &t[p] {
        Entry::File { data, .. } => data.clone(),
        _ => unreachable!(),
    };
    let size = |t: &Tree, p: &str| data(t, p).len() as u64;
    let want: Vec<&str> = cases
        .iter()
        .filter(|c| match c.recoded {
            Expect::Yes => true,
            Expect::No => false,
            Expect::IfReproduced => {
                let found = recode::recipe(&data(b, c.path)).is_some();
                eprintln!("{} {:?}: reproduced {found}", c.path, c.args);
                found
            }
        })
        .map(|c| c.path)
        .collect();
    assert_eq!(
        r.stats.recoded,
        want.len() as u64,
        "{want:?}: {:?}",
        r.stats
    );
    assert_eq!(
        r.stats.recoded_bytes,
        want.iter().map(|p| size(b, p)).sum::<u64>(),
        "{:?}",
        r.stats
    );
    assert_eq!(r.stats.diffed, cases.len() as u64, "{:?}", r.stats);
    eprintln!("patch: {} bytes re-encoded, {} plain", r.size, plain.size);
    (r, plain.size, want.len())
}

#[test]
fn xz_files_from_the_xz_tool_are_rebuilt_and_diffed_uncompressed() {
    let dir = tempfile::tempdir().unwrap();
    let case = |path, args, recoded| Case {
        path,
        args,
        piped: false,
        replaced: false,
        recoded,
    };
    let cases = [
        // How Linux compresses its modules.
        case(
            "lib/modules/a.ko.xz",
            &["--check=crc32", "--lzma2=dict=1MiB"],
            Expect::Yes,
        ),
        case("usr/share/doc/b.xz", &["-6"], Expect::Yes),
        case("usr/share/doc/c.xz", &["-0"], Expect::Yes),
        case("usr/share/doc/d.xz", &["-6e"], Expect::Yes),
        case(
            "usr/share/doc/e.xz",
            &["-T2", "--block-size=40000"],
            Expect::Yes,
        ),
        Case {
            piped: true,
            ..case("usr/share/doc/f.xz", &["-3", "--check=sha256"], Expect::Yes)
        },
        // A 64 MiB dictionary is beyond what the applier may allocate, and
        // lc=4 is no preset: both stay plain.
        case("usr/share/doc/g.xz", &["-9"], Expect::No),
        case("usr/share/doc/h.xz", &["--lzma2=preset=6,lc=4"], Expect::No),
        // Content replaced wholesale: re-encoding would not pay.
        Case {
            replaced: true,
            ..case("lib/firmware/i.bin.xz", &["-6"], Expect::No)
        },
    ];
    let Some((a, b)) = trees(dir.path(), "xz", &cases) else {
        return;
    };
    let (r, plain, _) = diff_both_ways(dir.path(), &a, &b, &cases);
    assert!(r.size * 3 < plain, "{} vs {plain} plain", r.size);
}

#[test]
fn zstd_frames_from_the_zstd_tool_are_rebuilt_and_diffed_uncompressed() {
    let dir = tempfile::tempdir().unwrap();
    let case = |path, args, recoded| Case {
        path,
        args,
        piped: false,
        replaced: false,
        recoded,
    };
    let cases = [
        case("usr/share/doc/a.zst", &["-q", "-3"], Expect::IfReproduced),
        case("usr/share/doc/b.zst", &["-q", "-19"], Expect::IfReproduced),
        case(
            "usr/share/doc/c.zst",
            &["-q", "-1", "--no-check"],
            Expect::IfReproduced,
        ),
        case("usr/share/doc/d.zst", &["-q", "-12"], Expect::IfReproduced),
        Case {
            piped: true,
            ..case("usr/share/doc/e.zst", &["-q", "-19"], Expect::IfReproduced)
        },
        // Parameters no level has: stays plain.
        case(
            "usr/share/doc/f.zst",
            &["-q", "--zstd=strategy=1,hlog=12"],
            Expect::No,
        ),
        Case {
            replaced: true,
            ..case("usr/share/doc/g.zst", &["-q", "-19"], Expect::No)
        },
    ];
    let Some((a, b)) = trees(dir.path(), "zstd", &cases) else {
        return;
    };
    let (r, plain, recoded) = diff_both_ways(dir.path(), &a, &b, &cases);
    // zstd 1.5.4 (Debian 12's tool) and sysup's 1.5.7 agree on three of
    // these five here (-1, -12, and -19 from a pipe).
    assert!(
        recoded >= 2,
        "only {recoded} of the tool's frames reproduced"
    );
    assert!(r.size < plain, "{} vs {plain} plain", r.size);
}

/// Damaged patches holding re-encoded members are refused, however cut.
#[test]
fn a_damaged_patch_with_re_encoded_members_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let raw = text(1, 2000);
    let p = Recipe {
        codec: Codec::Xz(rexz::Params {
            check: 1,
            preset: 6,
            extreme: false,
            dict_size: 1 << 20,
            bcj: 0,
            block_size: 0,
        }),
        raw_len: 0,
    };
    let pack = |raw: &[u8]| recode::rebuild(&p, raw).unwrap();
    let a: Tree = [("m.ko.xz".to_string(), file(pack(&raw)))].into();
    let b: Tree = [("m.ko.xz".to_string(), file(pack(&newer(&raw, 2))))].into();
    let (ga, ta) = make_dist(dir.path(), "world-1-20260101", &a);
    let (gb, _) = make_dist(dir.path(), "world-2-20260102", &b);
    let r = diff(dir.path(), &ga, &gb);
    assert_eq!(r.stats.recoded, 1, "{:?}", r.stats);
    let bytes = std::fs::read(&r.patch).unwrap();
    let cut = dir.path().join("cut");
    std::fs::create_dir(&cut).unwrap();
    let name = cut.join(r.patch.file_name().unwrap());
    let body = u64::from(r.header.header_len) as usize;
    for at in [body, body + 10, (body + bytes.len()) / 2, bytes.len() - 1] {
        std::fs::write(&name, &bytes[..at]).unwrap();
        assert!(apply(&name, &ta).is_err(), "cut at {at}");
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x20;
        std::fs::write(&name, &flipped).unwrap();
        assert!(apply(&name, &ta).is_err(), "flipped at {at}");
    }
}

// ---- hand-made patches: checksums valid, records hostile -------------------

fn xz_recipe(raw_len: u64) -> Recipe {
    Recipe {
        codec: Codec::Xz(rexz::Params {
            check: 1,
            preset: 6,
            extreme: false,
            dict_size: 1 << 20,
            bcj: 0,
            block_size: 0,
        }),
        raw_len,
    }
}

/// Old and new tars of one xz member, the new text a line longer at the
/// top; the patch rebuilds it with `recipe` (its `raw_len` set here),
/// whose record fields ([`Recipe::fields`]) `tamper` may change.
fn craft(recipe: Option<Recipe>, tamper: impl FnOnce(&mut Vec<u64>)) -> Craft {
    let old_raw = text(7, 1500);
    let line = b"  * a new entry at the top\n".to_vec();
    let new_raw = [line.clone(), old_raw.clone()].concat();
    let old_xz = recode::rebuild(&xz_recipe(0), &old_raw).unwrap();
    let new_xz = recode::rebuild(&xz_recipe(0), &new_raw).unwrap();
    let (old, new) = (
        one_member_tar("m.ko.xz", &old_xz),
        one_member_tar("m.ko.xz", &new_xz),
    );
    let mut r = recipe.unwrap_or(xz_recipe(0));
    r.raw_len = new_raw.len() as u64;
    let mut fields = r.fields();
    tamper(&mut fields);
    let mut w = RecordWriter::new(Vec::new());
    plan(
        &mut w,
        &[Keep {
            hdr_last: 1,
            data_last: 1,
        }],
    );
    w.varint(1).unwrap();
    // Written as a recode record, then its fields replaced by `fields`.
    let mut rec = RecordWriter::new(Vec::new());
    rec.member(&MemberRecord {
        header: HeaderOp::Diff { old: 0 },
        data: DataOp::Recode {
            old: 0,
            len_delta: new_xz.len() as i64 - old_xz.len() as i64,
            recipe: r,
        },
        pad_literal: false,
    })
    .unwrap();
    let rec = rec.into_inner();
    let mut ctrl = w.into_inner();
    ctrl.extend_from_slice(&rec[..rec.len() - varints(&r.fields()).len()]);
    ctrl.extend_from_slice(&varints(&fields));
    let mut w = RecordWriter::new(ctrl);
    for c in [
        Ctrl {
            old_pos: 0,
            add: 0,
            extra: line.len() as u64,
        },
        Ctrl {
            old_pos: 0,
            add: old_raw.len() as u64,
            extra: 0,
        },
    ] {
        w.ctrl(&c).unwrap();
    }
    w.varint(1024).unwrap();
    let head = header_diff(&new, &old);
    Craft {
        old,
        new,
        ctrl: w.into_inner(),
        diff: [head, vec![0u8; old_raw.len()]].concat(),
        extra: [line, vec![0u8; 1024]].concat(),
        old_members: 1,
        new_members: 1,
        window_log: 20,
        raw_len_override: [None; 2],
        version: VERSION,
    }
}

fn run(dir: &Path, c: &Craft) -> sysup::Result<Vec<u8>> {
    apply(&assemble(dir, c), &c.old)
}

fn expect_err(dir: &Path, c: &Craft, want: &str) -> Error {
    let e = run(dir, c).unwrap_err();
    assert!(e.to_string().contains(want), "want {want:?}: {e}");
    e
}

#[test]
fn a_hand_made_re_encoded_member_is_rebuilt_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let c = craft(None, |_| {});
    assert!(run(dir.path(), &c).unwrap() == c.new);
}

#[test]
fn hostile_re_encoded_records_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Fields: codec, check, preset, extreme, dict, bcj, block size, raw length.
    let bad: [(usize, u64, &str); 6] = [
        (0, 9, "unknown codec"),
        (4, 1 << 31, "beyond this sysup's bounds"),
        (4, 1 << 40, "out of range"),
        (6, 1 << 40, "beyond this sysup's bounds"),
        (7, recode::MAX_RAW + 1, "larger than this sysup rebuilds"),
        (2, 11, "out of range"),
    ];
    for (at, v, want) in bad {
        let e = expect_err(d, &craft(None, |f| f[at] = v), want);
        assert!(matches!(e, Error::Patch { .. }), "{e:?}");
    }
    // A level the zstd side refuses.
    let z = Recipe {
        codec: Codec::Zstd(rezstd::Params {
            level: 3,
            checksum: true,
            pledged: true,
            content_size: true,
        }),
        raw_len: 0,
    };
    expect_err(d, &craft(Some(z), |f| f[1] = 22), "out of range");
    // Settings within bounds that do not rebuild the member: the wrong
    // length, or the wrong bytes, never a clean end.
    let e = expect_err(d, &craft(None, |f| f[2] = 0), "came out");
    assert!(e.to_string().contains("apply a full dist"), "{e}");
    assert!(run(d, &craft(None, |f| f[1] = 4)).is_err(), "another check");
    // A format 3 patch cannot hold such a record.
    let mut v3 = craft(None, |_| {});
    v3.version = 3;
    expect_err(d, &v3, "unknown member flags");
}

#[test]
fn a_base_whose_xz_member_does_not_decompress_is_the_wrong_base() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = craft(None, |_| {});
    // Damage the old member's compressed bytes; the header's from-digests
    // are of the damaged tar, so only the decompression can tell.
    c.old[512 + 100] ^= 1;
    let e = run(dir.path(), &c).unwrap_err();
    assert!(matches!(e, Error::WrongBase { .. }), "{e:?}");
    assert!(e.to_string().contains("not the xz file"), "{e}");
}
