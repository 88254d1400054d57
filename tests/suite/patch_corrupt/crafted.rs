//! Hostile patches with valid checksums, assembled by hand around a small
//! old tar: absurd lengths, references outside the old tar, predicted
//! members without their controls, a plan that drops what it needs,
//! sections that lie about their length, a wrong result.

use crate::patch_support;

use std::io::Read;
use std::path::Path;

use patch_support::craft::{assemble, plan, Craft};
use patch_support::*;
use sysup::format::patch::ctrl::Ctrl;
use sysup::format::patch::header::VERSION;
use sysup::format::patch::record::{DataOp, HeaderOp, Keep, MemberRecord, RecordWriter};
use sysup::format::patch::xref::Segments;
use sysup::patch::PatchReader;
use sysup::Error;

/// The old tar of the hand-made patches: two members of one header block and
/// 512 data bytes each, then two zero blocks.
fn small_old_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for m in 0..2u8 {
        let mut h = tar::Header::new_ustar();
        h.set_path(format!("m{m}")).unwrap();
        h.set_size(512);
        h.set_mode(0o644);
        h.set_cksum();
        let data: Vec<u8> = (0..512).map(|i| (i as u8).wrapping_mul(m + 3)).collect();
        b.append(&h, &data[..]).unwrap();
    }
    let t = b.into_inner().unwrap();
    assert_eq!(t.len(), 3072);
    t
}

const K0: Keep = Keep {
    hdr_last: 2,
    data_last: 1,
};
const K1: Keep = Keep {
    hdr_last: 1,
    data_last: 2,
};

/// A valid little patch: new member 0 = old member 1's header (+1 byte-wise)
/// with old member 0's data; new member 1 = old member 0's header with a
/// bsdiff of old member 1's data (300 bytes added at 100, 212 literal); then
/// a 1024-byte trailer.
fn good_craft() -> Craft {
    let old = small_old_tar();
    let mut w = RecordWriter::new(Vec::new());
    plan(&mut w, &[K0, K1]);
    w.varint(2).unwrap();
    w.member(&MemberRecord {
        header: HeaderOp::Diff { old: 1 },
        data: DataOp::Copy { old: 0 },
        pad_literal: false,
    })
    .unwrap();
    w.member(&MemberRecord {
        header: HeaderOp::Diff { old: 0 },
        data: DataOp::Bsdiff {
            old: 1,
            len_delta: 0,
            xref: false,
        },
        pad_literal: false,
    })
    .unwrap();
    w.ctrl(&Ctrl {
        old_pos: 100,
        add: 300,
        extra: 212,
    })
    .unwrap();
    w.varint(1024).unwrap();
    let ctrl = w.into_inner();
    // Member 0's header diff, member 1's header diff, member 1's bsdiff adds.
    let diff: Vec<u8> = [vec![1u8; 512], vec![0u8; 512], vec![2u8; 300]].concat();
    let extra: Vec<u8> = (0..212)
        .map(|i| i as u8)
        .chain(std::iter::repeat_n(0, 1024))
        .collect();

    let mut new = Vec::new();
    new.extend(old[1024..1536].iter().map(|b| b.wrapping_add(1)));
    new.extend_from_slice(&old[512..1024]);
    new.extend_from_slice(&old[0..512]);
    new.extend(
        old[1536 + 100..1536 + 400]
            .iter()
            .map(|b| b.wrapping_add(2)),
    );
    new.extend((0..212).map(|i| i as u8));
    new.extend(vec![0u8; 1024]);
    Craft {
        old,
        new,
        ctrl,
        diff,
        extra,
        old_members: 2,
        new_members: 2,
        window_log: 20,
        raw_len_override: [None, None],
        version: VERSION,
    }
}

pub(super) fn run(dir: &Path, c: &Craft) -> sysup::Result<Vec<u8>> {
    let p = assemble(dir, c);
    apply(&p, &c.old)
}

pub(super) fn expect_err(dir: &Path, c: &Craft, want: &str) -> Error {
    let e = run(dir, c).expect_err("hostile patch accepted");
    let msg = e.to_string();
    assert!(msg.contains(want), "expected '{want}' in: {msg}");
    e
}

#[test]
fn the_hand_made_patch_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let c = good_craft();
    assert_eq!(run(dir.path(), &c).unwrap(), c.new);
}

/// Re-encode the controls with one change.
fn with_ctrl(f: impl FnOnce(&mut RecordWriter<Vec<u8>>)) -> Craft {
    let mut c = good_craft();
    let mut w = RecordWriter::new(Vec::new());
    f(&mut w);
    c.ctrl = w.into_inner();
    c
}

fn one_member(w: &mut RecordWriter<Vec<u8>>, m0: MemberRecord) {
    plan(w, &[K0, K1]);
    w.varint(2).unwrap();
    w.member(&m0).unwrap();
}

const M0: MemberRecord = MemberRecord {
    header: HeaderOp::Diff { old: 1 },
    data: DataOp::Copy { old: 0 },
    pad_literal: false,
};

#[test]
fn absurd_lengths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A header longer than any tar header may be.
    let c = with_ctrl(|w| {
        one_member(
            w,
            MemberRecord {
                header: HeaderOp::Literal { len: 1 << 40 },
                ..M0
            },
        )
    });
    expect_err(d, &c, "impossible lengths");
    // A literal member of 2^60 bytes.
    let c = with_ctrl(|w| {
        one_member(
            w,
            MemberRecord {
                data: DataOp::Literal { len: 1 << 60 },
                ..M0
            },
        )
    });
    expect_err(d, &c, "overruns the new tar");
    // Bsdiff lengths below zero or past 2^64.
    for len_delta in [-513, i64::MAX] {
        let c = with_ctrl(|w| {
            one_member(
                w,
                MemberRecord {
                    data: DataOp::Bsdiff {
                        old: 0,
                        len_delta,
                        xref: false,
                    },
                    ..M0
                },
            )
        });
        let e = run(d, &c).unwrap_err().to_string();
        assert!(
            e.contains("impossible lengths") || e.contains("overruns"),
            "{e}"
        );
    }
    // More old members than the header says, and more than fit the tar.
    let c = with_ctrl(|w| w.varint(1 << 40).unwrap());
    expect_err(d, &c, "old members");
    // A compression window beyond what the applier accepts.
    let mut c = good_craft();
    c.window_log = 31;
    expect_err(d, &c, "window");
}

#[test]
fn references_outside_the_old_tar_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let c = with_ctrl(|w| {
        one_member(
            w,
            MemberRecord {
                data: DataOp::Copy { old: 7 },
                ..M0
            },
        )
    });
    expect_err(d, &c, "refers to old member 7");
    let c = with_ctrl(|w| {
        one_member(
            w,
            MemberRecord {
                header: HeaderOp::Diff { old: u32::MAX - 1 },
                ..M0
            },
        )
    });
    expect_err(d, &c, "refers to old member");
    // Bsdiff controls reaching past the old data, or past the new data.
    for (ctrl, want) in [
        (
            Ctrl {
                old_pos: 400,
                add: 300,
                extra: 0,
            },
            "outside",
        ),
        (
            Ctrl {
                old_pos: 0,
                add: 300,
                extra: 300,
            },
            "outside",
        ),
        (
            Ctrl {
                old_pos: u64::MAX - 5,
                add: 10,
                extra: 0,
            },
            "outside",
        ),
        (
            Ctrl {
                old_pos: 0,
                add: 0,
                extra: 0,
            },
            "empty bsdiff control",
        ),
    ] {
        // Reference prediction reads a member's controls up front: the same
        // checks hold.
        for xref in [false, true] {
            let c = with_ctrl(|w| {
                one_member(
                    w,
                    MemberRecord {
                        data: DataOp::Bsdiff {
                            old: 0,
                            len_delta: 0,
                            xref,
                        },
                        ..M0
                    },
                );
                if xref {
                    w.segments(&Segments::default(), &Segments::default())
                        .unwrap();
                }
                w.ctrl(&ctrl).unwrap();
            });
            expect_err(d, &c, want);
        }
    }
}

#[test]
fn predicted_members_with_missing_controls_or_an_old_version_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let xref = |w: &mut RecordWriter<Vec<u8>>| {
        one_member(
            w,
            MemberRecord {
                data: DataOp::Bsdiff {
                    old: 0,
                    len_delta: 0,
                    xref: true,
                },
                ..M0
            },
        );
        w.segments(&Segments::default(), &Segments::default())
            .unwrap();
    };
    // More segments than an executable may have.
    let c = with_ctrl(|w| {
        one_member(
            w,
            MemberRecord {
                data: DataOp::Bsdiff {
                    old: 0,
                    len_delta: 0,
                    xref: true,
                },
                ..M0
            },
        );
        w.segments(
            &Segments(vec![Default::default(); 17]),
            &Segments::default(),
        )
        .unwrap();
    });
    expect_err(d, &c, "more segments");
    // The controls stop before they cover the data.
    let c = with_ctrl(|w| {
        xref(w);
        w.ctrl(&Ctrl {
            old_pos: 0,
            add: 10,
            extra: 0,
        })
        .unwrap();
    });
    expect_err(d, &c, "controls section ends inside a bsdiff control");
    // A format 2 patch cannot hold such a member.
    let mut c = with_ctrl(|w| {
        xref(w);
        w.ctrl(&Ctrl {
            old_pos: 0,
            add: 300,
            extra: 0,
        })
        .unwrap();
    });
    c.version = 2;
    expect_err(d, &c, "unknown member flags");
}

#[test]
fn a_plan_that_drops_what_it_needs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // New member 0 uses old member 1's header, but the plan says nobody does.
    let mut c = good_craft();
    let good = c.ctrl.clone();
    let plan_len = {
        let mut w = RecordWriter::new(Vec::new());
        plan(&mut w, &[K0, K1]);
        w.into_inner().len()
    };
    let mut w = RecordWriter::new(Vec::new());
    plan(&mut w, &[K0, Keep { hdr_last: 0, ..K1 }]);
    let mut ctrl = w.into_inner();
    ctrl.extend_from_slice(&good[plan_len..]);
    c.ctrl = ctrl;
    expect_err(d, &c, "planned last use");
    // A plan keeping a member past the last new member.
    let c = with_ctrl(|w| plan(w, &[Keep { data_last: 9, ..K0 }, K1]));
    expect_err(d, &c, "kept past the last new member");
}

#[test]
fn sections_that_lie_about_their_length_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Extra section shorter than the records need.
    let mut c = good_craft();
    c.extra.truncate(100);
    c.raw_len_override[1] = Some(100);
    expect_err(d, &c, "ends before");
    // Declared shorter than it decompresses: the decoder is stopped at the
    // declared length and the surplus is reported.
    let mut c = good_craft();
    c.extra.extend(vec![0u8; 1 << 20]);
    c.raw_len_override[1] = Some(212 + 1024);
    c.window_log = 27;
    expect_err(d, &c, "more bytes than its header says");
    // A frame needing a larger window than the header declares is refused
    // by the decoder, not allocated.
    c.window_log = 19;
    expect_err(d, &c, "too much memory");
    // Declared longer than it decompresses (a bomb claim): caught, no allocation.
    let mut c = good_craft();
    c.raw_len_override[1] = Some(1 << 50);
    expect_err(d, &c, "never used");
    // Bytes left over in the controls, and in the diff section.
    let mut c = good_craft();
    c.ctrl.extend_from_slice(&[1, 2, 3]);
    expect_err(d, &c, "never used");
    let mut c = good_craft();
    c.diff.extend_from_slice(&[0, 0, 9]);
    expect_err(d, &c, "never used");
    // A decompression bomb in the extra section: 64 MiB of zeros declared
    // and present, but only 1236 bytes used.
    let mut c = good_craft();
    c.extra.resize(64 << 20, 0);
    c.raw_len_override[1] = None;
    c.window_log = 27;
    expect_err(d, &c, "never used");
}

#[test]
fn a_wrong_result_never_reaches_a_clean_eof() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = good_craft();
    let good = c.new.clone();
    // Claim a result that differs in one byte from what the body makes.
    c.new[700] ^= 1;
    let p = assemble(dir.path(), &c);
    let mut r = PatchReader::open(&p, &c.old[..]).unwrap();
    let mut out = Vec::new();
    let e = r
        .read_to_end(&mut out)
        .expect_err("wrong result reached EOF");
    assert!(e.to_string().contains("corrupt patch"), "{e}");
    assert!(out.len() <= good.len());
    assert!(r.finish().is_err());
    let e = apply(&p, &c.old).unwrap_err();
    assert!(matches!(e, Error::CorruptPatch { .. }), "{e:?}");
}
