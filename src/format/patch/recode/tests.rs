use proptest::prelude::*;

use super::*;
use crate::format::patch::{rexz, rezip, rezstd};

fn read_back(fields: &[u64]) -> Result<Recipe, &'static str> {
    let mut it = fields.iter().copied();
    Recipe::read(|| it.next().ok_or("ran out"), |m| m)
}

fn xz_recipe(check: u8, preset: u8, dict_size: u32, block_size: u64, raw_len: u64) -> Recipe {
    Recipe {
        codec: Codec::Xz(rexz::Params {
            check,
            preset,
            extreme: preset % 2 == 0,
            dict_size,
            bcj: if preset > 4 { 4 } else { 0 },
            block_size,
        }),
        raw_len,
    }
}

proptest! {
    #[test]
    fn recipes_survive_their_record_fields(
        check in prop::sample::select(vec![0u8, 1, 4, 10]),
        preset in 0u8..=9,
        dict_size in 4096u32..=rexz::MAX_DICT,
        block_size in 0u64..=MAX_RAW,
        raw_len in 0u64..=MAX_RAW,
        level in 1u8..=19,
        flags in 0u8..8,
    ) {
        let x = xz_recipe(check, preset, dict_size, block_size, raw_len);
        prop_assert_eq!(read_back(&x.fields()), Ok(x));
        let z = Recipe {
            codec: Codec::Zstd(rezstd::Params {
                level,
                checksum: flags & 1 != 0,
                pledged: flags & 2 != 0,
                content_size: flags & 4 != 0,
            }),
            raw_len,
        };
        prop_assert_eq!(read_back(&z.fields()), Ok(z));
        let zip = Recipe {
            codec: Codec::Zip(rezip::Params { entries: u32::from(level) * 1000 }),
            raw_len,
        };
        prop_assert_eq!(read_back(&zip.fields()), Ok(zip));
    }
}

#[test]
fn records_beyond_the_bounds_are_refused() {
    let good = xz_recipe(4, 6, 1 << 20, 0, 1000).fields();
    assert!(read_back(&good).is_ok());
    // codec, check, preset, extreme, dict, bcj, block size, raw length
    for (at, v) in [
        (0, 4),
        (1, 2),
        (2, 10),
        (3, 2),
        (4, u64::from(rexz::MAX_DICT) + 1),
        (4, 1 << 40),
        (5, 10),
        (6, MAX_RAW + 1),
        (7, MAX_RAW + 1),
    ] {
        let mut f = good.clone();
        f[at] = v;
        assert!(read_back(&f).is_err(), "field {at} = {v}");
    }
    assert!(read_back(&good[..5]).is_err(), "cut short");
    // codec, entries, raw length
    for (at, v) in [(1, 0), (1, rezip::MAX_ENTRIES + 1), (2, MAX_RAW + 1)] {
        let mut f = vec![3, 5, 1000];
        f[at] = v;
        assert!(read_back(&f).is_err(), "zip field {at} = {v}");
    }
    // codec, level, flags, raw length
    for (at, v) in [(1, 0), (1, 20), (2, 8)] {
        let mut f = vec![2, 3, 7, 10];
        f[at] = v;
        assert!(read_back(&f).is_err(), "zstd field {at} = {v}");
    }
}

#[test]
fn a_recipe_rebuilds_what_it_was_read_from() {
    let raw: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for r in [
        xz_recipe(1, 6, 1 << 20, 0, raw.len() as u64),
        Recipe {
            codec: Codec::Zstd(rezstd::Params {
                level: 19,
                checksum: true,
                pledged: true,
                content_size: true,
            }),
            raw_len: raw.len() as u64,
        },
    ] {
        let file = rebuild(&r, &raw).unwrap();
        let (found, got) = recipe(&file).expect("reproducible");
        assert_eq!(got, raw);
        assert_eq!(rebuild(&found, &raw).unwrap(), file);
        assert_eq!(raw_as(&found, &file).as_deref(), Some(&raw[..]));
        assert_eq!(raw_of(&file).as_deref(), Some(&raw[..]));
    }
    assert!(recipe(b"\x1f\x8b\x08 gzip is regz's").is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Whatever the bytes and settings, what this build makes it finds a
    /// recipe for, and that recipe makes the same bytes again.
    #[test]
    fn what_this_build_makes_it_rebuilds(
        seed in any::<u64>(),
        len in 0usize..40_000,
        preset in 0u8..=6,
        extreme in any::<bool>(),
        check in prop::sample::select(vec![0u8, 1, 4, 10]),
        level in 1u8..=19,
        flags in 0u8..8,
        xz in any::<bool>(),
    ) {
        let mut x = seed | 1;
        let raw: Vec<u8> = (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // runs of text-like bytes and noise
                if (i / 512) % 2 == 0 { b"abcdefgh"[(x % 8) as usize] } else { x as u8 }
            })
            .collect();
        let codec = if xz {
            Codec::Xz(rexz::Params { check, preset, extreme, dict_size: 1 << 20, bcj: 0, block_size: 0 })
        } else {
            Codec::Zstd(rezstd::Params {
                level,
                checksum: flags & 1 != 0,
                pledged: flags & 2 != 0,
                content_size: flags & 4 != 0,
            })
        };
        let r = Recipe { codec, raw_len: len as u64 };
        let file = rebuild(&r, &raw).unwrap();
        let (found, got) = recipe(&file).expect("a recipe for our own bytes");
        prop_assert_eq!(&got, &raw);
        prop_assert_eq!(rebuild(&found, &raw).unwrap(), file);
    }
}
