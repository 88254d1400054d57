use super::*;

use crate::util::testdata::words as text;

fn params(preset: u8, extreme: bool) -> Params {
    Params {
        check: 4,
        preset,
        extreme,
        dict_size: 8 << 20,
        bcj: 0,
        block_size: 0,
    }
}

fn xz(p: &Params, raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    assert!(encode(p, raw, |c| {
        out.extend_from_slice(c);
        true
    })
    .unwrap());
    out
}

#[test]
fn streams_made_with_each_setting_are_rebuilt_exactly() {
    let raw = text(20_000, 5);
    let mut cases: Vec<Params> = PRESETS.iter().map(|&(l, e)| params(l, e)).collect();
    cases.push(Params {
        check: 1,
        dict_size: 1 << 20,
        ..params(6, false)
    });
    cases.push(Params {
        check: 10,
        bcj: 4,
        ..params(6, false)
    });
    cases.push(Params {
        check: 0,
        block_size: 30_000,
        ..params(6, false)
    });
    for p in cases {
        let file = xz(&p, &raw);
        assert_eq!(raw_of(&file, 1 << 20).as_deref(), Some(&raw[..]), "{p:?}");
        let (found, got) = recipe(&file, 1 << 20).unwrap_or_else(|| panic!("{p:?}"));
        assert_eq!(got, raw);
        assert_eq!(xz(&found, &raw), file, "{p:?} found as {found:?}");
        assert_eq!(
            (found.check, found.bcj, found.dict_size),
            (p.check, p.bcj, p.dict_size)
        );
    }
}

#[test]
fn the_multi_threaded_layout_is_read_from_the_index() {
    let raw = text(40_000, 9);
    let p = Params {
        block_size: 50_000,
        ..params(6, false)
    };
    let file = xz(&p, &raw);
    let l = layout(&file).unwrap();
    assert!(l.sized);
    assert_eq!(l.blocks.len() as u64, (raw.len() as u64).div_ceil(50_000));
    assert_eq!(recipe(&file, 1 << 20).unwrap().0.block_size, 50_000);
    // One block made by the multi-threaded encoder: its header is padded
    // for the block size, which a size of the same padding stands for.
    for (made, found) in [(raw.len() as u64, raw.len() as u64), (4 << 20, 2 << 20)] {
        let one = xz(
            &Params {
                block_size: made,
                ..p
            },
            &raw,
        );
        let (r, _) = recipe(&one, 1 << 20).unwrap();
        assert_eq!(r.block_size, found);
        assert_eq!(xz(&r, &raw), one);
    }
}

#[test]
fn damaged_or_foreign_streams_are_refused() {
    let raw = text(5_000, 1);
    let file = xz(&params(6, false), &raw);
    assert!(
        raw_of(&file[..file.len() - 1], 1 << 20).is_none(),
        "truncated"
    );
    assert!(raw_of(&file[..40], 1 << 20).is_none(), "truncated");
    let mut trailing = file.clone();
    trailing.extend_from_slice(&[0; 4]);
    assert!(raw_of(&trailing, 1 << 20).is_none(), "stream padding");
    let two = [file.clone(), file.clone()].concat();
    assert!(raw_of(&two, 1 << 20).is_none(), "two streams");
    for at in [7, 14, file.len() / 2, file.len() - 20, file.len() - 3] {
        let mut bad = file.clone();
        bad[at] ^= 0x10;
        assert!(raw_of(&bad, 1 << 20).is_none(), "flipped at {at}");
        assert!(recipe(&bad, 1 << 20).is_none(), "flipped at {at}");
    }
    assert!(
        raw_of(&file, raw.len() as u64 - 1).is_none(),
        "over the cap"
    );
    assert!(raw_of(&file, raw.len() as u64).is_some());
    assert!(raw_of(b"not xz at all, just text...", 1 << 20).is_none());
}

#[test]
fn settings_beyond_the_bounds_are_refused() {
    let ok = params(6, false);
    assert!(ok.check().is_ok());
    for bad in [
        Params {
            dict_size: MAX_DICT + 1,
            ..ok
        },
        Params {
            dict_size: 1000,
            ..ok
        },
        Params { check: 3, ..ok },
        Params { preset: 10, ..ok },
        Params { bcj: 3, ..ok },
        Params {
            block_size: MAX_RAW + 1,
            ..ok
        },
    ] {
        assert!(bad.check().is_err(), "{bad:?}");
        assert!(encode(&bad, b"x", |_| true).is_err(), "{bad:?}");
    }
}

#[test]
fn dictionary_sizes_decode_as_xz_writes_them() {
    assert_eq!(dict_of(0), Some(4096));
    assert_eq!(dict_of(1), Some(6144));
    assert_eq!(dict_of(16), Some(1 << 20));
    assert_eq!(dict_of(18), Some(2 << 20));
    assert_eq!(dict_of(22), Some(8 << 20));
    assert_eq!(dict_of(40), Some(u32::MAX));
    assert_eq!(dict_of(41), None);
}
