//! Round trips of zip archives through their expanded form and table, and
//! refusals of damaged archives and tables.
use std::io::Write;

use proptest::prelude::*;

use super::*;
use crate::util::testdata::words;

/// How one entry of a test archive is compressed.
#[derive(Clone, Copy, Debug)]
enum How {
    Stored,
    /// zlib at this level (memLevel 8).
    Zlib(u8),
    /// Another deflater (zlib-rs, through flate2) at this level.
    Other(u32),
}

/// Bytes of entry `k`: text, with some binary bytes when `seed` says so.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut b = words(len / 6 + 1, seed as u32);
    b.truncate(len);
    if seed % 3 == 0 {
        let mut x = seed as u32 | 1;
        b.extend((0..len / 4).map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        }));
    }
    b
}

fn pack(how: How, raw: &[u8]) -> Vec<u8> {
    match how {
        How::Stored => raw.to_vec(),
        How::Zlib(level) => {
            let mut out = Vec::new();
            let d = Deflate {
                level,
                mem_level: 8,
            };
            zlib::deflate_raw(raw, d, |c| {
                out.extend_from_slice(c);
                true
            })
            .unwrap();
            out
        }
        How::Other(level) => {
            let mut e =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
            e.write_all(raw).unwrap();
            e.finish().unwrap()
        }
    }
}

/// A zip archive as Python's `zipfile` writes one (local headers with
/// sizes, or with `descriptor` a data descriptor after deflate entries as
/// Java's `ZipOutputStream` writes, then the central directory).
fn zip_of(entries: &[(How, Vec<u8>)], descriptor: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (k, (how, raw)) in entries.iter().enumerate() {
        let name = format!("pkg/module_{k}.py");
        let packed = pack(*how, raw);
        let method: u16 = if matches!(how, How::Stored) { 0 } else { 8 };
        let dd = descriptor && method == 8;
        let crc = {
            let mut c = flate2::Crc::new();
            c.update(raw);
            c.sum()
        };
        let offset = out.len() as u32;
        let flags: u16 = if dd { 8 } else { 0 };
        let fixed = |sig: &[u8], central_dir: bool| {
            let mut h = sig.to_vec();
            if central_dir {
                h.extend_from_slice(&20u16.to_le_bytes());
            }
            h.extend_from_slice(&20u16.to_le_bytes());
            h.extend_from_slice(&flags.to_le_bytes());
            h.extend_from_slice(&method.to_le_bytes());
            h.extend_from_slice(&[0, 0, 0x21, 0]);
            let local_sizes = !dd || central_dir;
            for v in [crc, packed.len() as u32, raw.len() as u32] {
                h.extend_from_slice(&if local_sizes { v } else { 0 }.to_le_bytes());
            }
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            if central_dir {
                h.extend_from_slice(&[0; 6]);
                h.extend_from_slice(&0o100644u32.wrapping_shl(16).to_le_bytes());
                h.extend_from_slice(&offset.to_le_bytes());
            }
            h.extend_from_slice(name.as_bytes());
            h
        };
        out.extend(fixed(b"PK\x03\x04", false));
        out.extend(&packed);
        if dd {
            out.extend_from_slice(b"PK\x07\x08");
            for v in [crc, packed.len() as u32, raw.len() as u32] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        central.extend(fixed(b"PK\x01\x02", true));
    }
    let cd_at = out.len() as u32;
    out.extend(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    let n = entries.len() as u16;
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_at.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn reads_back(t: &Table, total: u64) -> Result<Table, &'static str> {
    let f = t.fields();
    let mut it = f.iter().copied();
    Table::read(
        t.0.len() as u32,
        total,
        || it.next().ok_or("ran out"),
        |m| m,
    )
}

/// Rebuilding the archive from its table and expanded form gives its
/// bytes, and the table survives its record fields.
fn round_trips(file: &[u8]) -> Table {
    let (table, expanded) = recipe(file).expect("some entry reproduced");
    assert_eq!(rebuild(&table, &expanded).unwrap(), file);
    assert_eq!(expand_new(file, &table).as_deref(), Some(&expanded[..]));
    assert_eq!(reads_back(&table, expanded.len() as u64), Ok(table.clone()));
    table
}

fn arb_how() -> impl Strategy<Value = How> {
    prop_oneof![
        Just(How::Stored),
        prop::sample::select(vec![1u8, 6, 9]).prop_map(How::Zlib),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn zlib_made_archives_round_trip_through_their_expanded_form(
        entries in prop::collection::vec((arb_how(), 0usize..20_000, any::<u64>()), 1..12),
        descriptor in any::<bool>(),
    ) {
        let mut entries: Vec<(How, Vec<u8>)> = entries
            .into_iter()
            .map(|(h, len, seed)| (h, content(seed, len)))
            .collect();
        entries.push((How::Zlib(6), content(1, 3000)));
        let file = zip_of(&entries, descriptor);
        let table = round_trips(&file);
        let deflated = entries.iter().filter(|(h, _)| !matches!(h, How::Stored)).count();
        prop_assert_eq!(table.0.len(), deflated);
        // The old side's walk finds the same entries: its expanded form
        // is the new side's when every entry was reproduced.
        let (_, expanded) = recipe(&file).unwrap();
        prop_assert_eq!(expand_old(&file), Some(expanded));
    }

    #[test]
    fn damaged_archives_never_panic_and_never_mislead(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let entries = vec![
            (How::Zlib(9), content(3, 5000)),
            (How::Stored, content(4, 700)),
            (How::Zlib(6), content(5, 9000)),
        ];
        let good = zip_of(&entries, flips.len() % 2 == 0);
        let mut bad = good.clone();
        for (at, b) in &flips {
            let i = at.index(bad.len());
            bad[i] ^= b | 1;
        }
        for file in [&bad[..], &good[..cut.index(good.len())]] {
            let _ = expand_old(file);
            // Whatever is found still rebuilds the damaged bytes exactly.
            if let Some((t, x)) = recipe(file) {
                prop_assert_eq!(rebuild(&t, &x).unwrap(), file);
            }
        }
    }
}

#[test]
fn entries_another_deflater_made_stay_compressed() {
    let raw = content(7, 60_000);
    let other = pack(How::Other(6), &raw);
    assert!(
        other != pack(How::Zlib(6), &raw) && other != pack(How::Zlib(9), &raw),
        "zlib-rs deflated as zlib did: the test shows nothing"
    );
    let entries = vec![
        (How::Zlib(6), content(8, 4000)),
        (How::Other(6), raw.clone()),
        (How::Zlib(6), content(9, 4000)),
    ];
    let file = zip_of(&entries, false);
    let table = round_trips(&file);
    assert_eq!(table.0.len(), 2, "{table:?}");
    // Its compressed bytes are in the expanded form as they are.
    let (_, expanded) = recipe(&file).unwrap();
    let at = |h: &[u8], n: &[u8]| h.windows(n.len()).position(|w| w == n);
    assert!(at(&expanded, &other).is_some());
    // The old side expands it all the same.
    assert!(at(&expand_old(&file).unwrap(), &raw).is_some());
    // An archive only another deflater made is no candidate, and the search
    // gives up on it after a few entries.
    let all_other: Vec<_> = (0..40)
        .map(|k| (How::Other(6), content(20 + k, 30_000)))
        .collect();
    assert!(recipe(&zip_of(&all_other, false)).is_none());
}

#[test]
fn what_the_walk_does_not_interpret_stays_bytes() {
    let entries = vec![
        (How::Zlib(6), content(11, 4000)),
        (How::Zlib(6), content(12, 4000)),
    ];
    let good = zip_of(&entries, false);
    let second = good
        .windows(4)
        .enumerate()
        .filter(|(_, w)| w == b"PK\x03\x04")
        .nth(1)
        .unwrap()
        .0;
    // zip64 (a size of 0xFFFFFFFF) and encryption end the walk there.
    for (off, v) in [(18, 0xff), (19, 0xff), (20, 0xff), (21, 0xff), (6, 1)] {
        let mut f = good.clone();
        f[second + off] |= v;
        if off != 6 && f[second + 18..second + 22] != [0xff; 4] {
            continue;
        }
        let (t, x) = recipe(&f).unwrap();
        assert_eq!(t.0.len(), 1);
        assert_eq!(rebuild(&t, &x).unwrap(), f);
    }
    // A compressed size that lies: the entry stays compressed, or the walk
    // ends.
    let mut f = good.clone();
    f[18] ^= 1;
    if let Some((t, x)) = recipe(&f) {
        assert_eq!(rebuild(&t, &x).unwrap(), f);
    }
    assert!(expand_old(b"PK\x03\x04").is_some(), "a header cut short");
    assert!(expand_old(b"not a zip").is_none() && recipe(b"not a zip").is_none());
    // Over the expanded bound: a zip bomb of an entry stays compressed.
    let bomb = vec![(How::Zlib(9), vec![0u8; MAX_RAW as usize + 1])];
    let f = zip_of(&bomb, false);
    assert!(recipe(&f).is_none());
    assert_eq!(expand_old(&f), Some(f.clone()));
    let f = zip_of(&bomb, true);
    assert_eq!(expand_old(&f), Some(f.clone()));
}

#[test]
fn tables_beyond_their_bounds_are_refused() {
    let d = Deflate {
        level: 6,
        mem_level: 8,
    };
    let t = Table(vec![
        Entry {
            gap: 40,
            raw_len: 100,
            deflate: d,
        },
        Entry {
            gap: 10,
            raw_len: 5,
            deflate: d,
        },
    ]);
    assert_eq!(reads_back(&t, 155), Ok(t.clone()));
    assert!(reads_back(&t, 154).is_err(), "past the expanded bytes");
    let mut wide = t.clone();
    wide.0[1].raw_len = u64::MAX - 20;
    assert!(reads_back(&wide, 155).is_err(), "overflowing spans");
    for (level, mem_level) in [(0, 8), (10, 8), (6, 0), (6, 10), (15, 15)] {
        let mut bad = t.clone();
        bad.0[0].deflate = Deflate { level, mem_level };
        assert!(reads_back(&bad, 155).is_err(), "{level} {mem_level}");
    }
    let mut it = [1u64, 1, 0x1068].into_iter();
    let code_too_big = Table::read(1, 10, || it.next().ok_or("ran out"), |m| m);
    assert!(code_too_big.is_err());
    let mut none = std::iter::empty::<u64>();
    assert!(Table::read(1, 10, || none.next().ok_or("ran out"), |m| m).is_err());
    let huge = Table::read((MAX_ENTRIES + 1) as u32, 10, || Ok::<_, &str>(0), |m| m);
    assert!(huge.is_err());
    assert!(Table::read(1, MAX_RAW + 1, || Ok::<_, &str>(0), |m| m).is_err());
    // A table that does not fit the bytes it is given: an error, not a panic.
    assert!(rebuild(&t, &[0u8; 100]).is_err());
    assert!(expand_new(&[0u8; 100], &t).is_none());
    let read = |n: u64| Params::read(&mut || Ok::<_, &str>(n), &|m: &'static str| m);
    assert!(read(0).is_err() && read(MAX_ENTRIES + 1).is_err());
    assert_eq!(read(3), Ok(Params { entries: 3 }));
}
