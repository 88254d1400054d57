//! Round trips and refusals of the controls section's records.
use super::*;
use proptest::prelude::*;

fn arb_member() -> impl Strategy<Value = MemberRecord> {
    let header = prop_oneof![
        (0u64..1 << 22).prop_map(|len| HeaderOp::Literal { len }),
        (0u32..100_000).prop_map(|old| HeaderOp::Diff { old }),
    ];
    let data = prop_oneof![
        any::<u64>().prop_map(|len| DataOp::Literal { len }),
        (0u32..100_000).prop_map(|old| DataOp::Copy { old }),
        (0u32..100_000, any::<i64>(), any::<bool>()).prop_map(|(old, len_delta, xref)| {
            DataOp::Bsdiff {
                old,
                len_delta,
                xref,
            }
        }),
        (
            0u32..100_000,
            any::<i64>(),
            1u8..=9,
            any::<u32>(),
            any::<u64>()
        )
            .prop_map(|(old, len_delta, level, header_len, raw_len)| {
                DataOp::Regz {
                    old,
                    len_delta,
                    recipe: Recipe {
                        level,
                        header_len,
                        raw_len,
                    },
                }
            }),
        (0u32..100_000, any::<i64>(), 1u32..=1 << 16, 0u64..=8 << 20).prop_map(
            |(old, len_delta, entries, raw_len)| DataOp::Recode {
                old,
                len_delta,
                recipe: recode::Recipe {
                    codec: recode::Codec::Zip(crate::format::patch::rezip::Params { entries }),
                    raw_len,
                },
            }
        ),
    ];
    (header, data, any::<bool>()).prop_map(|(header, data, pad_literal)| MemberRecord {
        header,
        data,
        pad_literal,
    })
}

proptest! {
    #[test]
    fn records_round_trip(
        keeps in proptest::collection::vec((0u32..50_000, 0u32..50_000), 0..40),
        members in proptest::collection::vec(
            (arb_member(), proptest::collection::vec((0u64..1 << 40, 0u64..1 << 30, 0u64..1 << 30), 0..5)),
            0..30,
        ),
    ) {
        let mut w = RecordWriter::new(Vec::new());
        let keeps: Vec<Keep> = keeps.iter().map(|&(h, d)| Keep { hdr_last: h, data_last: d }).collect();
        for k in &keeps { w.keep(k).unwrap(); }
        for (m, cs) in &members {
            w.member(m).unwrap();
            for &(p, a, x) in cs { w.ctrl(&Ctrl { old_pos: p, add: a, extra: x }).unwrap(); }
        }
        w.varint(u64::MAX).unwrap();
        let bytes = w.into_inner();
        let mut r = RecordReader::new(&bytes[..]);
        for k in &keeps { prop_assert_eq!(&r.keep().unwrap(), k); }
        for (m, cs) in &members {
            prop_assert_eq!(&r.member().unwrap(), m);
            for &(p, a, x) in cs {
                prop_assert_eq!(r.ctrl().unwrap(), Ctrl { old_pos: p, add: a, extra: x });
            }
        }
        prop_assert_eq!(r.varint().unwrap(), u64::MAX);
        prop_assert!(matches!(r.varint(), Err(RecordError::Io(_))));
    }

    #[test]
    fn any_bytes_decode_or_error(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut r = RecordReader::new(&bytes[..]);
        for _ in 0..8 {
            if r.keep().is_err() || r.member().is_err() || r.ctrl().is_err() { break; }
        }
    }
}

#[test]
fn a_format_1_stream_refuses_regz_records() {
    let mut w = RecordWriter::new(Vec::new());
    let m = MemberRecord {
        header: HeaderOp::Literal { len: 512 },
        data: DataOp::Regz {
            old: 3,
            len_delta: -5,
            recipe: Recipe {
                level: 9,
                header_len: 20,
                raw_len: 4000,
            },
        },
        pad_literal: false,
    };
    w.member(&m).unwrap();
    let bytes = w.into_inner();
    assert_eq!(RecordReader::new(&bytes[..]).member().unwrap(), m);
    assert!(matches!(
        RecordReader::new(&bytes[..]).without_regz().member(),
        Err(RecordError::Malformed("unknown member flags"))
    ));
    // A level outside 1-9 is malformed, not clamped.
    let mut bad = bytes.clone();
    let at = bad.len() - 4; // level, header_len (20), raw_len (2 bytes)
    bad[at] = 10;
    assert!(matches!(
        RecordReader::new(&bad[..]).member(),
        Err(RecordError::Malformed("a deflate level outside 1-9"))
    ));
}

#[test]
fn a_format_2_stream_refuses_xref_records() {
    let mut w = RecordWriter::new(Vec::new());
    let m = MemberRecord {
        header: HeaderOp::Diff { old: 0 },
        data: DataOp::Bsdiff {
            old: 0,
            len_delta: 7,
            xref: true,
        },
        pad_literal: false,
    };
    w.member(&m).unwrap();
    let bytes = w.into_inner();
    assert_eq!(RecordReader::new(&bytes[..]).member().unwrap(), m);
    assert!(matches!(
        RecordReader::new(&bytes[..]).without_xref().member(),
        Err(RecordError::Malformed("unknown member flags"))
    ));
    // The flag means nothing on other data operations.
    for data in [DATA_COPY, DATA_REGZ, 0] {
        let r = RecordReader::new(&[XREF | data, 0, 0][..]).member();
        assert!(matches!(r, Err(RecordError::Malformed(_))), "{data}");
    }
}

#[test]
fn predictable_records_are_small() {
    let mut w = RecordWriter::new(Vec::new());
    for j in 0..1000 {
        w.keep(&Keep {
            hdr_last: j + 1,
            data_last: j + 1,
        })
        .unwrap();
    }
    for j in 0..1000 {
        w.member(&MemberRecord {
            header: HeaderOp::Diff { old: j },
            data: DataOp::Copy { old: j },
            pad_literal: false,
        })
        .unwrap();
    }
    // One byte per plan field, three per member (flags, two references).
    assert_eq!(w.into_inner().len(), 1000 * 2 + 1000 * 3);
}

#[test]
fn overlong_varints_and_wild_references_are_malformed() {
    let bytes = [0xffu8; 11];
    assert!(matches!(
        RecordReader::new(&bytes[..]).varint(),
        Err(RecordError::Malformed(_))
    ));
    let mut ten = [0x80u8; 10];
    ten[9] = 0x02;
    assert!(matches!(
        RecordReader::new(&ten[..]).varint(),
        Err(RecordError::Malformed(_))
    ));
    // A header reference of -1 (zigzag 1) from the start.
    let r = RecordReader::new(&[HDR_DIFF, 1][..]).member();
    assert!(matches!(r, Err(RecordError::Malformed(_))));
    // A last use of 0 coded as a delta.
    let r = RecordReader::new(&[2u8, 0][..]).keep();
    assert!(matches!(r, Err(RecordError::Malformed(_))));
}

#[test]
fn a_format_4_stream_refuses_re_zipped_records() {
    use crate::format::patch::recode::Codec;
    use crate::format::patch::rezip;
    let mut w = RecordWriter::new(Vec::new());
    let m = MemberRecord {
        header: HeaderOp::Diff { old: 2 },
        data: DataOp::Recode {
            old: 2,
            len_delta: 300,
            recipe: recode::Recipe {
                codec: Codec::Zip(rezip::Params { entries: 12 }),
                raw_len: 90_000,
            },
        },
        pad_literal: false,
    };
    w.member(&m).unwrap();
    let bytes = w.into_inner();
    assert_eq!(RecordReader::new(&bytes[..]).member().unwrap(), m);
    assert!(matches!(
        RecordReader::new(&bytes[..]).without_rezip().member(),
        Err(RecordError::Malformed(
            "a re-zipped member in a patch older than format 5"
        ))
    ));
}
