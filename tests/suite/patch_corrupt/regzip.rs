//! Re-gzipped members: rebuilt exactly, refused when they come out wrong,
//! and an old base whose gzip member does not inflate is the wrong base.

use crate::patch_support;

use patch_support::craft::{assemble, header_diff, one_member_tar, plan, Craft};
use patch_support::*;
use sysup::format::patch::ctrl::Ctrl;
use sysup::format::patch::header::VERSION;
use sysup::format::patch::record::{DataOp, HeaderOp, Keep, MemberRecord, RecordWriter};
use sysup::format::patch::regz::{self, Recipe};
use sysup::Error;

use super::crafted::{expect_err, run};

/// Old and new tars of one gzipped member, the new text a line longer at
/// the top; the patch rebuilds it through its uncompressed bytes with
/// `ctrls` (default: the new line as extra, then the old text as adds).
fn regz_craft(level: u8, raw_len_delta: i64, ctrls: Option<Vec<Ctrl>>) -> Craft {
    let old_raw: Vec<u8> = (0..4000u32)
        .flat_map(|i| format!("line {} of the changelog\n", i * 7 % 1000).into_bytes())
        .collect();
    let line = b"  * a new entry at the top\n".to_vec();
    let new_raw = [line.clone(), old_raw.clone()].concat();
    let old_gz = regz::rebuild(&regz::GZIP_9N_HEADER, &old_raw, 9).unwrap();
    let new_gz = regz::rebuild(&regz::GZIP_9N_HEADER, &new_raw, 9).unwrap();
    let (old, new) = (
        one_member_tar("doc.gz", &old_gz),
        one_member_tar("doc.gz", &new_gz),
    );
    let ctrls = ctrls.unwrap_or(vec![
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
    ]);
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
        data: DataOp::Regz {
            old: 0,
            len_delta: new_gz.len() as i64 - old_gz.len() as i64,
            recipe: Recipe {
                level,
                header_len: regz::GZIP_9N_HEADER.len() as u32,
                raw_len: (new_raw.len() as i64 + raw_len_delta) as u64,
            },
        },
        pad_literal: false,
    })
    .unwrap();
    for c in &ctrls {
        w.ctrl(c).unwrap();
    }
    w.varint(1024).unwrap();
    let head = header_diff(&new, &old);
    let diff = [head, vec![0u8; old_raw.len()]].concat();
    let extra = [regz::GZIP_9N_HEADER.to_vec(), line, vec![0u8; 1024]].concat();
    Craft {
        old,
        new,
        ctrl: w.into_inner(),
        diff,
        extra,
        old_members: 1,
        new_members: 1,
        window_log: 20,
        raw_len_override: [None, None],
        version: VERSION,
    }
}

#[test]
fn a_re_gzipped_member_is_rebuilt_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let c = regz_craft(9, 0, None);
    assert_eq!(run(dir.path(), &c).unwrap(), c.new);
}

#[test]
fn a_re_gzipped_member_that_comes_out_wrong_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Deflated at another level, the member is not the size it must be: as
    // if this sysup's zlib compressed differently from the differ's.
    let e = expect_err(d, &regz_craft(1, 0, None), "came out");
    assert!(matches!(e, Error::Patch { .. }), "{e:?}");
    assert!(e.to_string().contains("apply a full dist"), "{e}");
    // Uncompressed lengths past the bound, or controls outside the bytes.
    let big = regz::MAX_RAW as i64;
    expect_err(d, &regz_craft(9, big, None), "impossible sizes");
    let outside = vec![Ctrl {
        old_pos: 90_000,
        add: 20_000,
        extra: 0,
    }];
    expect_err(d, &regz_craft(9, 0, Some(outside)), "reaches outside");
    let empty = vec![Ctrl {
        old_pos: 0,
        add: 0,
        extra: 0,
    }];
    expect_err(d, &regz_craft(9, 0, Some(empty)), "an empty bsdiff control");
    // Controls that stop short of the uncompressed length run into the
    // trailer's record.
    let short = vec![Ctrl {
        old_pos: 0,
        add: 0,
        extra: 10,
    }];
    assert!(run(d, &regz_craft(9, 0, Some(short))).is_err());
    // A format 1 patch cannot hold such a record.
    let mut v1 = regz_craft(9, 0, None);
    v1.version = 1;
    expect_err(d, &v1, "unknown member flags");
}

#[test]
fn a_base_whose_gzip_member_does_not_inflate_is_the_wrong_base() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = regz_craft(9, 0, None);
    // Damage the old member's CRC-32 (its gzip trailer ends its data); the
    // header's from-digests are of the damaged tar, so only the rebuild can
    // tell.
    let size = usize::from_str_radix(
        std::str::from_utf8(&c.old[124..135])
            .unwrap()
            .trim_end_matches('\0'),
        8,
    )
    .unwrap();
    c.old[512 + size - 8] ^= 1;
    let p = assemble(dir.path(), &c);
    let e = apply(&p, &c.old).unwrap_err();
    assert!(matches!(e, Error::WrongBase { .. }), "{e:?}");
    assert!(e.to_string().contains("not the gzip file"), "{e}");
}
