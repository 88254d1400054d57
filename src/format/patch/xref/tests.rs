//! Round trips of reference prediction: random x86-like code whose
//! references move with their targets, diffed with the real matcher,
//! predicted by the differ's side and decoded piece by piece as the applier
//! does.

use super::*;
use crate::diff::matcher::{self, Delta, Index};
use proptest::prelude::*;

/// Code of `funcs` functions, each filler bytes with calls (E8) and
/// RIP-relative loads (48 8B 05) to other functions' starts, laid out with
/// `gaps[f]` extra bytes before function `f`.
fn code(funcs: &[(Vec<u8>, Vec<usize>)], gaps: &[usize]) -> Vec<u8> {
    let mut starts = Vec::new();
    let mut at = 0;
    for (f, (body, refs)) in funcs.iter().enumerate() {
        at += gaps[f];
        starts.push(at);
        at += body.len() + refs.len() * 8;
    }
    let mut out = vec![0x90u8; at];
    for (f, (body, refs)) in funcs.iter().enumerate() {
        let mut p = starts[f];
        for (r, &target) in refs.iter().enumerate() {
            let chunk = body.len() / (refs.len() + 1);
            out[p..p + chunk].copy_from_slice(&body[r * chunk..(r + 1) * chunk]);
            p += chunk;
            let op: &[u8] = if r % 2 == 0 {
                &[0xe8]
            } else {
                &[0x48, 0x8b, 0x05]
            };
            out[p..p + op.len()].copy_from_slice(op);
            p += op.len();
            let next = p + 4;
            let disp = starts[target % funcs.len()] as i64 - next as i64;
            out[p..p + 4].copy_from_slice(&(disp as i32).to_le_bytes());
            p += 4;
        }
        let rest = body.len() - (body.len() / (refs.len() + 1)) * refs.len();
        let tail = &body[body.len() - rest..];
        out[p..p + tail.len()].copy_from_slice(tail);
    }
    out
}

/// Filler with no byte that starts a pattern, so only the planted
/// references are operands.
fn filler() -> impl Strategy<Value = u8> {
    any::<u8>().prop_filter("not a pattern start", |b| {
        ![0xe8, 0xe9, 0x0f].contains(b) && !MODRM_OPS.contains(b)
    })
}

/// One segment covering `len` file bytes at address `base`.
fn flat(len: usize, base: u64) -> Segments {
    Segments(vec![Segment {
        offset: 0,
        vaddr: base,
        filesz: len as u64,
        memsz: len as u64 + 4096,
    }])
}

fn predictor(old: &[u8], new_len: usize, d: &Delta) -> Predictor {
    Predictor {
        map: Map::new(&d.ctrls).unwrap(),
        old: flat(old.len(), 0x1000),
        new: flat(new_len, 0x1000),
    }
}

/// The differ's side over a whole delta: returns (nonzero before, after).
fn encode(old: &[u8], new_len: usize, d: &mut Delta) -> (u64, u64) {
    let p = predictor(old, new_len, d);
    let (mut b, mut a, mut at, mut y) = (0, 0, 0usize, 0u64);
    for c in d.ctrls.clone() {
        let (x, len) = (c.old_pos as usize, c.add as usize);
        let r = encode_add(
            &p,
            &old[x..x + len],
            (c.old_pos, y),
            &mut d.diff[at..at + len],
            true,
        );
        b += r.0;
        a += r.1;
        at += len;
        y += c.add + c.extra;
    }
    (b, a)
}

/// The applier's side: adds cut into pieces of at most `piece` bytes.
fn decode(old: &[u8], new_len: usize, d: &Delta, piece: usize) -> Vec<u8> {
    let p = predictor(old, new_len, d);
    let (mut out, mut diff_at, mut extra_at) = (Vec::new(), 0usize, 0usize);
    for c in &d.ctrls {
        let (mut pos, mut left) = (c.old_pos as usize, c.add as usize);
        while left > 0 {
            let n = left.min(piece);
            let ext = left.min(n + LOOKAHEAD);
            let ob = &old[pos..pos + ext];
            let end = piece_end(ob, n);
            let start = out.len();
            let diff = &d.diff[diff_at..diff_at + end];
            out.extend(ob[..end].iter().zip(diff).map(|(o, x)| o.wrapping_add(*x)));
            let y0 = start as u64;
            decode_piece(&p, ob, n, (pos as u64, y0), &mut out[start..]);
            diff_at += end;
            pos += end;
            left -= end;
        }
        out.extend_from_slice(&d.extra[extra_at..extra_at + c.extra as usize]);
        extra_at += c.extra as usize;
    }
    out
}

fn funcs() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<usize>)>> {
    proptest::collection::vec(
        (
            proptest::collection::vec(filler(), 40..200),
            proptest::collection::vec(0usize..64, 0..6),
        ),
        4..24,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn predicted_deltas_round_trip_in_any_pieces(
        funcs in funcs(),
        old_gaps in proptest::collection::vec(0usize..40, 24),
        new_gaps in proptest::collection::vec(0usize..40, 24),
        piece in 1usize..300,
        noise in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let old = code(&funcs, &old_gaps);
        let mut new = code(&funcs, &new_gaps);
        for (i, b) in noise {
            let i = i.index(new.len());
            new[i] = b;
        }
        let mut d = matcher::diff(&Index::new(&old), &new);
        prop_assert_eq!(d.apply(&old), new.clone());
        encode(&old, new.len(), &mut d);
        prop_assert_eq!(decode(&old, new.len(), &d, piece), new);
    }

    #[test]
    fn moved_references_cost_fewer_diff_bytes(
        funcs in funcs(),
        new_gaps in proptest::collection::vec(0usize..400, 24),
    ) {
        let n_refs: usize = funcs.iter().map(|f| f.1.len()).sum();
        prop_assume!(n_refs >= 8);
        let old = code(&funcs, &[0; 24]);
        let new = code(&funcs, &new_gaps);
        let mut d = matcher::diff(&Index::new(&old), &new);
        let (before, after) = encode(&old, new.len(), &mut d);
        prop_assert!(after <= before, "{} -> {}", before, after);
        prop_assert_eq!(decode(&old, new.len(), &d, 64), new);
    }

    #[test]
    fn the_map_projects_into_its_adds_only(
        ctrls in proptest::collection::vec((0u64..1000, 0u64..50, 0u64..50), 0..20),
        t in 0u64..1100,
    ) {
        let ctrls: Vec<Ctrl> = ctrls
            .into_iter()
            .map(|(old_pos, add, extra)| Ctrl { old_pos, add, extra })
            .collect();
        let map = Map::new(&ctrls).unwrap();
        if let Some(p) = map.project(t) {
            // Some add carries t to p.
            let mut y = 0;
            let carried = ctrls.iter().any(|c| {
                let hit = c.old_pos <= t && t < c.old_pos + c.add && p == y + (t - c.old_pos);
                y += c.add + c.extra;
                hit
            });
            prop_assert!(carried);
        }
    }
}

#[test]
fn a_call_into_moved_code_predicts_exactly() {
    // old: call at 0 to 100; new: 16 bytes inserted before the target.
    let mut old = [0x90u8; 200];
    old[0] = 0xe8;
    old[1..5].copy_from_slice(&95i32.to_le_bytes());
    let mut new = old[..50].to_vec();
    new.extend_from_slice(&[0xccu8; 16]);
    new.extend_from_slice(&old[50..]);
    new[1..5].copy_from_slice(&111i32.to_le_bytes());
    let ctrls = vec![
        Ctrl {
            old_pos: 0,
            add: 50,
            extra: 16,
        },
        Ctrl {
            old_pos: 50,
            add: 150,
            extra: 0,
        },
    ];
    let p = Predictor {
        map: Map::new(&ctrls).unwrap(),
        old: flat(200, 0x1000),
        new: flat(216, 0x1000),
    };
    assert_eq!(p.map.project(100), Some(116));
    assert_eq!(
        p.predict(1, 1, 95i32.to_le_bytes()),
        Some(111i32.to_le_bytes())
    );
    // Outside every segment: no prediction. In zero-filled memory: moved
    // with the segment (which did not move).
    assert_eq!(p.predict(1, 1, 9000i32.to_le_bytes()), None);
    assert_eq!(p.predict(1, 1, (-10i32).to_le_bytes()), None);
    assert_eq!(
        p.predict(1, 1, 500i32.to_le_bytes()),
        Some(500i32.to_le_bytes())
    );
    let mut diff: Vec<u8> = new[..50]
        .iter()
        .zip(&old[..50])
        .map(|(n, o)| n.wrapping_sub(*o))
        .collect();
    assert_eq!(encode_add(&p, &old[..50], (0, 0), &mut diff, true), (1, 0));
    assert!(diff.iter().all(|&b| b == 0));
}

#[test]
fn overlapping_adds_map_through_the_longest() {
    let c = |old_pos, add, extra| Ctrl {
        old_pos,
        add,
        extra,
    };
    // A long add 0..100 -> 0..100, then a short reuse of 40..50 at 100..110.
    let m = Map::new(&[c(0, 100, 0), c(40, 10, 0)]).unwrap();
    assert_eq!(m.project(45), Some(45));
    assert_eq!(m.project(99), Some(99));
    assert_eq!(m.project(100), None);
    // The short one comes first in old order and is longer than nothing.
    let m = Map::new(&[c(30, 5, 0), c(0, 100, 0)]).unwrap();
    assert_eq!(m.project(31), Some(36));
    let m = Map::new(&[c(30, 5, 0), c(200, 10, 0)]).unwrap();
    assert_eq!(m.project(31), Some(1));
    assert_eq!(m.project(205), Some(10));
}

#[test]
fn segment_tables_come_from_program_headers() {
    let mut h = vec![0u8; 64 + 2 * 56];
    h[..20].copy_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0\x3e\0");
    h[32..40].copy_from_slice(&64u64.to_le_bytes());
    h[54..56].copy_from_slice(&56u16.to_le_bytes());
    h[56..58].copy_from_slice(&2u16.to_le_bytes());
    let ph = |h: &mut Vec<u8>, at: usize, kind: u32, off: u64, va: u64| {
        h[at..at + 4].copy_from_slice(&kind.to_le_bytes());
        h[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
        h[at + 16..at + 24].copy_from_slice(&va.to_le_bytes());
        h[at + 32..at + 40].copy_from_slice(&100u64.to_le_bytes());
        h[at + 40..at + 48].copy_from_slice(&200u64.to_le_bytes());
    };
    ph(&mut h, 64, 1, 0x1000, 0x2000);
    ph(&mut h, 120, 6, 0, 0); // PT_PHDR: not loadable
    let s = Segments::parse(&h).unwrap();
    assert_eq!(
        s.0,
        vec![Segment {
            offset: 0x1000,
            vaddr: 0x2000,
            filesz: 100,
            memsz: 200
        }]
    );
    assert_eq!(s.vaddr_of(0x1010), Some(0x2010));
    assert_eq!(s.offset_of(0x2010), Some((0, Some(0x1010))));
    assert_eq!(s.offset_of(0x2080), Some((0, None)));
    assert!(Segments::parse(&h[..100]).is_none(), "headers cut short");
    // Program headers claimed at the end of the address space.
    let mut far = h.clone();
    far[32..40].copy_from_slice(&(u64::MAX - 8).to_le_bytes());
    assert!(Segments::parse(&far).is_none());
    far[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
    far[32..40].copy_from_slice(&64u64.to_le_bytes());
    assert!(
        Segments::parse(&far).is_none(),
        "more headers than the head holds"
    );
}

#[test]
fn maps_beyond_the_bounds_are_refused() {
    let c = |old_pos, add, extra| Ctrl {
        old_pos,
        add,
        extra,
    };
    assert!(Map::new(&[c(MAX_LEN, 1, 0)]).is_none());
    assert!(Map::new(&[c(0, 1, MAX_LEN)]).is_none());
    assert!(Map::new(&[c(u64::MAX, 2, 0)]).is_none());
    assert!(Map::new(&vec![c(0, 1, 0); MAX_CTRLS + 1]).is_none());
    assert!(Map::new(&vec![c(0, 1, 0); MAX_CTRLS]).is_some());
}

#[test]
fn elf_headers_are_told_apart() {
    let mut h = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0\x3e\0".to_vec();
    assert!(is_x86_64_elf(&h));
    h[18] = 0xb7; // aarch64
    assert!(!is_x86_64_elf(&h));
    assert!(!is_x86_64_elf(b"\x7fELF"));
}

proptest! {
    /// The bucketed search finds what a search over every segment finds,
    /// for maps of a few to thousands of segments spread over small and
    /// large offsets.
    #[test]
    fn the_bucketed_map_projects_as_a_full_search_does(
        ctrls in proptest::collection::vec((0u64..1 << 26, 1u64..5000, 0u64..300), 0..400),
        ts in proptest::collection::vec(0u64..(1 << 26) + 10_000, 50),
    ) {
        let ctrls: Vec<Ctrl> = ctrls
            .into_iter()
            .map(|(old_pos, add, extra)| Ctrl { old_pos, add, extra })
            .collect();
        let map = Map::new(&ctrls).unwrap();
        let full = |t: u64| {
            let i = map.segs.partition_point(|s| u64::from(s.0) <= t);
            let &(o, len, n) = map.segs.get(i.checked_sub(1)?)?;
            (t < u64::from(o) + u64::from(len)).then(|| u64::from(n) + (t - u64::from(o)))
        };
        let starts = map.segs.iter().flat_map(|s| [u64::from(s.0), u64::from(s.0) + u64::from(s.1)]);
        for t in ts.into_iter().chain(starts.flat_map(|t| [t.saturating_sub(1), t, t + 1])) {
            prop_assert_eq!(map.project(t), full(t), "t = {}", t);
        }
        prop_assert!(map.first.len() <= 2 * map.segs.len() + 16);
    }
}
