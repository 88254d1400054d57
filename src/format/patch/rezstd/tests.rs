use super::*;

use crate::util::testdata::words as text;

fn zst(p: &Params, raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    assert!(encode(p, raw, |c| {
        out.extend_from_slice(c);
        true
    })
    .unwrap());
    out
}

fn params(level: u8) -> Params {
    Params {
        level,
        checksum: true,
        pledged: true,
        content_size: true,
    }
}

#[test]
fn frames_made_at_each_setting_are_rebuilt_exactly() {
    let raw = text(30_000, 3);
    let mut cases: Vec<Params> = [1, 3, 9, 19].into_iter().map(params).collect();
    cases.push(Params {
        checksum: false,
        ..params(3)
    });
    cases.push(Params {
        pledged: false,
        ..params(19)
    });
    cases.push(Params {
        content_size: false,
        ..params(5)
    });
    for p in cases {
        let file = zst(&p, &raw);
        assert_eq!(raw_of(&file, 1 << 20).as_deref(), Some(&raw[..]), "{p:?}");
        let (found, got) = recipe(&file, 1 << 20).unwrap_or_else(|| panic!("{p:?}"));
        assert_eq!(got, raw);
        assert_eq!(zst(&found, &raw), file, "{p:?} found as {found:?}");
        assert_eq!(found.checksum, p.checksum);
    }
}

#[test]
fn damaged_or_foreign_frames_are_refused() {
    let raw = text(8_000, 4);
    let file = zst(&params(3), &raw);
    assert!(
        raw_of(&file[..file.len() - 1], 1 << 20).is_none(),
        "truncated"
    );
    assert!(raw_of(&file[..10], 1 << 20).is_none(), "truncated");
    let two = [file.clone(), file.clone()].concat();
    assert!(raw_of(&two, 1 << 20).is_none(), "two frames");
    let mut trailing = file.clone();
    trailing.push(0);
    assert!(raw_of(&trailing, 1 << 20).is_none(), "trailing byte");
    for at in [4, file.len() / 2, file.len() - 2] {
        let mut bad = file.clone();
        bad[at] ^= 0x08;
        assert!(raw_of(&bad, 1 << 20).is_none(), "flipped at {at}");
    }
    assert!(
        raw_of(&file, raw.len() as u64 - 1).is_none(),
        "over the cap"
    );
    assert!(raw_of(b"(\xb5/\xfd nonsense", 1 << 20).is_none());
    // A frame that needs a dictionary.
    let mut dict = file.clone();
    dict[4] |= 1;
    assert!(raw_of(&dict, 1 << 20).is_none());
}

#[test]
fn levels_beyond_the_bounds_are_refused() {
    for level in [0, 20, 22] {
        let p = params(level);
        assert!(p.check().is_err(), "{level}");
        assert!(encode(&p, b"x", |_| true).is_err(), "{level}");
    }
}
