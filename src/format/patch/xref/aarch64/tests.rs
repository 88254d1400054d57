//! Round trips of aarch64 reference prediction: random A64-like code (valid
//! encodings) whose branches, literal loads and ADRP pairs follow their
//! moved targets, diffed with the real matcher, predicted by the differ's
//! side and decoded piece by piece as the applier does; exact predictions
//! of hand-assembled instructions; hostile tables never panic.

use super::*;
use crate::diff::matcher::{self, Delta, Index};
use crate::format::patch::ctrl::Ctrl;
use crate::format::patch::xref::{Map, Segment, Segments};
use proptest::prelude::*;

const BASE: u64 = 0x40_0000;

/// A reference a function makes: to a function (by index) or a data object.
#[derive(Clone, Copy, Debug)]
enum Ref {
    Bl(usize),
    Bcond(usize),
    Cbz(usize),
    Tbz(usize),
    Adr(usize),
    AdrpAdd(usize),
    AdrpLdr(usize),
    LdrLit(usize),
}

impl Ref {
    fn words(self) -> usize {
        match self {
            Ref::AdrpAdd(_) => 2,
            Ref::AdrpLdr(_) => 3,
            _ => 1,
        }
    }
}

fn bl(pc: u64, t: u64) -> u32 {
    0x9400_0000 | ((t.wrapping_sub(pc) as i64 >> 2) as u32 & 0x3ff_ffff)
}
fn imm19(pc: u64, t: u64) -> u32 {
    ((t.wrapping_sub(pc) as i64 >> 2) as u32 & 0x7_ffff) << 5
}
fn adr_bits(imm: i64) -> u32 {
    let v = imm as u32;
    (v & 3) << 29 | (v >> 2 & 0x7_ffff) << 5
}
fn adrp(pc: u64, t: u64, rd: u32) -> u32 {
    0x9000_0000 | adr_bits(((t >> 12) as i64) - ((pc >> 12) as i64)) | rd
}
fn add_lo(rd: u32, rn: u32, t: u64) -> u32 {
    0x9100_0000 | ((t & 0xfff) as u32) << 10 | rn << 5 | rd
}
fn ldr_lo(rt: u32, rn: u32, t: u64) -> u32 {
    0xf940_0000 | ((t & 0xfff) as u32 >> 3) << 10 | rn << 5 | rt
}

/// Code of `funcs` functions (filler words and references), laid out with
/// `gaps[f]` NOPs before function `f`, then `data_gap` 8-byte zero words,
/// then 16-byte data objects. One segment holds it all at [`BASE`].
fn code(funcs: &[(Vec<u32>, Vec<Ref>)], gaps: &[usize], data_gap: usize) -> Vec<u8> {
    let mut starts = Vec::new();
    let mut at = 0usize;
    for (f, (body, refs)) in funcs.iter().enumerate() {
        at += gaps[f];
        starts.push(BASE + 4 * at as u64);
        at += body.len() + refs.iter().map(|r| r.words()).sum::<usize>();
    }
    let data = BASE + 4 * at as u64 + 8 * data_gap as u64;
    let data = (data + 7) & !7;
    let obj = |i: usize| data + 16 * (i % 32) as u64;
    let fun = |i: usize| starts[i % starts.len()];
    let mut words = Vec::new();
    for (f, (body, refs)) in funcs.iter().enumerate() {
        // NOPs: unlike the code, so the matcher's adds end where it does.
        words.extend(std::iter::repeat_n(0xd503_201fu32, gaps[f]));
        let chunk = body.len() / (refs.len() + 1);
        for (r, &rf) in refs.iter().enumerate() {
            words.extend_from_slice(&body[r * chunk..(r + 1) * chunk]);
            let pc = BASE + 4 * words.len() as u64;
            let reg = 1 + (r as u32 % 8);
            match rf {
                Ref::Bl(t) => words.push(bl(pc, fun(t))),
                Ref::Bcond(t) => words.push(0x5400_0001 | imm19(pc, fun(t))),
                Ref::Cbz(t) => words.push(0xb400_0000 | imm19(pc, fun(t)) | reg),
                Ref::Tbz(t) => {
                    let d = (fun(t).wrapping_sub(pc) as i64 >> 2) as u32 & 0x3fff;
                    words.push(0x3618_0000 | d << 5 | reg);
                }
                Ref::Adr(t) => {
                    words.push(0x1000_0000 | adr_bits(fun(t).wrapping_sub(pc) as i64) | reg)
                }
                Ref::AdrpAdd(t) => {
                    words.push(adrp(pc, obj(t), reg));
                    words.push(add_lo(reg, reg, obj(t)));
                }
                Ref::AdrpLdr(t) => {
                    words.push(adrp(pc, obj(t), reg));
                    words.push(0x8b00_0000 | 20 << 16 | 21 << 5 | 22);
                    words.push(ldr_lo(reg + 8, reg, obj(t)));
                }
                Ref::LdrLit(t) => words.push(0x5800_0000 | imm19(pc, obj(t)) | reg),
            }
        }
        words.extend_from_slice(&body[refs.len() * chunk..]);
    }
    let mut out: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    out.resize((data - BASE) as usize, 0);
    // Distinct objects, each word below 2^24: none is an instruction the
    // prediction reads.
    for i in 0..32u32 {
        for w in [i + 1, 0xa5_a5a5 ^ i, 0x5a_5a00 + i, i * 0x1_0307] {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }
    out
}

/// One segment covering `len` file bytes at [`BASE`].
fn flat(len: usize) -> Segments {
    Segments(vec![Segment {
        offset: 0,
        vaddr: BASE,
        filesz: len as u64,
        memsz: len as u64 + 4096,
    }])
}

fn predictor(new_len: usize, old_len: usize, ctrls: &[Ctrl]) -> Predictor {
    Predictor {
        map: Map::new(ctrls).unwrap(),
        old: flat(old_len),
        new: flat(new_len),
    }
}

/// The differ's side over a whole delta: (nonzero before, after).
fn encode(p: &Predictor, old: &[u8], d: &mut Delta) -> (u64, u64) {
    let (mut b, mut a, mut at, mut y) = (0, 0, 0usize, 0u64);
    for c in d.ctrls.clone() {
        let len = c.add as usize;
        let (lo, hi) = Window::bounds(c.old_pos, c.add, old.len() as u64);
        let w = Window {
            bytes: &old[lo as usize..hi as usize],
            start: lo,
        };
        let r = encode_add(p, &w, (c.old_pos, y), &mut d.diff[at..at + len], true);
        b += r.0;
        a += r.1;
        at += len;
        y += c.add + c.extra;
    }
    (b, a)
}

/// The applier's side: adds cut into pieces of at most `piece` bytes, each
/// decoded from a window of old bytes around it.
fn decode(p: &Predictor, old: &[u8], d: &Delta, piece: usize) -> Vec<u8> {
    let (mut out, mut diff_at, mut extra_at) = (Vec::new(), 0usize, 0usize);
    for c in &d.ctrls {
        let (mut pos, mut left) = (c.old_pos, c.add);
        while left > 0 {
            let n = (left as usize).min(piece);
            let end = piece_end(pos, n, left);
            let (lo, hi) = Window::bounds(pos, end as u64, old.len() as u64);
            let start = out.len();
            let from = &old[pos as usize..pos as usize + end];
            let diff = &d.diff[diff_at..diff_at + end];
            out.extend(from.iter().zip(diff).map(|(o, x)| o.wrapping_add(*x)));
            let w = Window {
                bytes: &old[lo as usize..hi as usize],
                start: lo,
            };
            decode_piece(p, &w, (pos, start as u64), &mut out[start..]);
            diff_at += end;
            pos += end as u64;
            left -= end as u64;
        }
        out.extend_from_slice(&d.extra[extra_at..extra_at + c.extra as usize]);
        extra_at += c.extra as usize;
    }
    out
}

/// Filler: ADD (shifted register) with random registers and shift, which
/// no prediction reads.
fn filler() -> impl Strategy<Value = u32> {
    any::<u32>().prop_map(|r| 0x8b00_0000 | (r & 0x1f_ffff))
}

fn a_ref() -> impl Strategy<Value = Ref> {
    (0usize..8, 0usize..64).prop_map(|(k, t)| match k {
        0 => Ref::Bl(t),
        1 => Ref::Bcond(t),
        2 => Ref::Cbz(t),
        3 => Ref::Tbz(t),
        4 => Ref::Adr(t),
        5 => Ref::AdrpAdd(t),
        6 => Ref::AdrpLdr(t),
        _ => Ref::LdrLit(t),
    })
}

fn funcs() -> impl Strategy<Value = Vec<(Vec<u32>, Vec<Ref>)>> {
    proptest::collection::vec(
        (
            proptest::collection::vec(filler(), 10..50),
            proptest::collection::vec(a_ref(), 0..6),
        ),
        4..24,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn predicted_deltas_round_trip_in_any_pieces(
        funcs in funcs(),
        old_gaps in proptest::collection::vec(0usize..10, 24),
        new_gaps in proptest::collection::vec(0usize..10, 24),
        data_gaps in (0usize..600, 0usize..600),
        piece in 1usize..300,
        noise in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let old = code(&funcs, &old_gaps, data_gaps.0);
        let mut new = code(&funcs, &new_gaps, data_gaps.1);
        for (i, b) in noise {
            let i = i.index(new.len());
            new[i] = b;
        }
        let mut d = matcher::diff(&Index::new(&old), &new);
        prop_assert_eq!(d.apply(&old), new.clone());
        let p = predictor(new.len(), old.len(), &d.ctrls);
        encode(&p, &old, &mut d);
        prop_assert_eq!(decode(&p, &old, &d, piece), new);
    }

    #[test]
    fn moved_references_cost_fewer_diff_bytes(
        funcs in funcs(),
        new_gaps in proptest::collection::vec(0usize..40, 24),
        data_gap in 0usize..2000,
    ) {
        let n_refs: usize = funcs.iter().map(|f| f.1.len()).sum();
        prop_assume!(n_refs >= 8);
        let old = code(&funcs, &[0; 24], 0);
        let new = code(&funcs, &new_gaps, data_gap);
        let mut d = matcher::diff(&Index::new(&old), &new);
        let p = predictor(new.len(), old.len(), &d.ctrls);
        let (before, after) = encode(&p, &old, &mut d);
        prop_assert!(after <= before, "{} -> {}", before, after);
        prop_assert_eq!(decode(&p, &old, &d, 64), new);
    }

    #[test]
    fn hostile_tables_and_words_never_panic(
        tables in proptest::collection::vec(
            proptest::collection::vec(any::<(u64, u64, u64, u64)>(), 0..4), 2),
        words in proptest::collection::vec(any::<u32>(), 1..64),
        near in proptest::collection::vec((0u64..0x1_0000, 0u64..0x1_0000), 4),
        ctrls in proptest::collection::vec((0u64..300, 1u64..64, 0u64..8), 1..8),
        xy in any::<(u64, u64)>(),
    ) {
        // Some segments near the words, some anywhere.
        let seg = |t: &[(u64, u64, u64, u64)], k: usize| Segments(
            t.iter()
                .enumerate()
                .map(|(i, &(o, v, f, m))| match i % 2 {
                    0 => Segment { offset: o, vaddr: v, filesz: f, memsz: m },
                    _ => Segment {
                        offset: near[k].0 % 256,
                        vaddr: near[k].1,
                        filesz: f % 4096,
                        memsz: m % 8192,
                    },
                })
                .collect(),
        );
        let ctrls: Vec<Ctrl> = ctrls
            .into_iter()
            .map(|(old_pos, add, extra)| Ctrl { old_pos, add, extra })
            .collect();
        let p = Predictor {
            map: Map::new(&ctrls).unwrap(),
            old: seg(&tables[0], 0),
            new: seg(&tables[1], 1),
        };
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        for start in [0, 4, u64::MAX - 8] {
            let w = Window { bytes: &bytes, start };
            for k in 0..words.len() as u64 {
                let x = start.wrapping_add(4 * k);
                let _ = predict(&p, &w, x, xy.0.wrapping_add(4 * k));
                let _ = predict(&p, &w, xy.1, x);
            }
            let mut out = bytes.clone();
            decode_piece(&p, &w, (start, xy.0 % (1 << 31)), &mut out);
        }
    }
}

#[test]
fn hand_assembled_references_predict_exactly() {
    // Old: code at 0..0x100, data at 0x1ff8. New: 0x40 bytes inserted at
    // 0x80 (after the references), so the data crosses into the next page
    // and its low bits change.
    let c = |old_pos, add, extra| Ctrl {
        old_pos,
        add,
        extra,
    };
    let ctrls = [c(0, 0x80, 0x40), c(0x80, 0x1f80, 0x18), c(0x2000, 0x10, 0)];
    let p = predictor(0x2068, 0x2010, &ctrls);
    let (data, data2) = (BASE + 0x1ff8, BASE + 0x2038);
    let (f, f2) = (BASE + 0xc0, BASE + 0x100);
    let pc = |i: u64| BASE + 4 * i;
    let old = [
        bl(pc(0), f),
        adrp(pc(1), data, 3),
        0x8b02_0020,
        add_lo(3, 3, data),
        adrp(pc(4), data, 5),
        ldr_lo(6, 5, data),
        0x5400_0001 | imm19(pc(6), f),
        0x5800_0000 | imm19(pc(7), data) | 2,
        0x1000_0000 | adr_bits((f - pc(8)) as i64) | 4,
        0x3618_0000 | ((f - pc(9)) as u32 >> 2) << 5 | 1,
    ];
    let new = [
        bl(pc(0), f2),
        adrp(pc(1), data2, 3),
        0x8b02_0020,
        add_lo(3, 3, data2),
        adrp(pc(4), data2, 5),
        ldr_lo(6, 5, data2),
        0x5400_0001 | imm19(pc(6), f2),
        0x5800_0000 | imm19(pc(7), data2) | 2,
        0x1000_0000 | adr_bits((f2 - pc(8)) as i64) | 4,
        0x3618_0000 | ((f2 - pc(9)) as u32 >> 2) << 5 | 1,
    ];
    assert_ne!(adrp(pc(1), data, 3), adrp(pc(1), data2, 3), "a new page");
    let bytes: Vec<u8> = old.iter().flat_map(|w| w.to_le_bytes()).collect();
    let w = Window {
        bytes: &bytes,
        start: 0,
    };
    for (i, (&o, &n)) in old.iter().zip(&new).enumerate() {
        let x = 4 * i as u64;
        let want = (o != n).then_some(n);
        assert_eq!(predict(&p, &w, x, x), want, "word {i}: {o:08x} -> {n:08x}");
    }
    // A consumer beyond its ADRP's reach, or after another ADRP to its
    // register, has no page to complete.
    let mut far = vec![0x8b02_0020u32; REACH as usize + 2];
    far[0] = adrp(pc(0), data, 3);
    *far.last_mut().unwrap() = add_lo(3, 3, data);
    let fb: Vec<u8> = far.iter().flat_map(|w| w.to_le_bytes()).collect();
    let fw = Window {
        bytes: &fb,
        start: 0,
    };
    let last = 4 * (far.len() as u64 - 1);
    assert_eq!(predict(&p, &fw, last, last), None);
    assert_eq!(predict(&p, &fw, 0, 0), None, "no consumer in reach");
    let twice = [
        adrp(pc(0), data, 3),
        adrp(pc(1), data, 3),
        add_lo(3, 3, data),
    ];
    let tb: Vec<u8> = twice.iter().flat_map(|w| w.to_le_bytes()).collect();
    let tw = Window {
        bytes: &tb,
        start: 0,
    };
    assert_eq!(
        predict(&p, &tw, 0, 0),
        None,
        "its register is written again"
    );
    assert!(predict(&p, &tw, 4, 4).is_some());
    assert!(predict(&p, &tw, 8, 8).is_some());
}

#[test]
fn moved_code_costs_few_diff_bytes() {
    let funcs: Vec<(Vec<u32>, Vec<Ref>)> = (0..40)
        .map(|f| {
            let body = (0..24).map(|k| 0x8b00_0000 | (f * 24 + k)).collect();
            let refs = vec![
                Ref::Bl((f as usize * 7 + 3) % 40),
                Ref::AdrpAdd(f as usize),
                Ref::AdrpLdr(f as usize + 5),
                Ref::Cbz(f as usize + 1),
            ];
            (body, refs)
        })
        .collect();
    let old = code(&funcs, &[0; 40], 0);
    let mut gaps = vec![0; 40];
    gaps[10] = 37;
    let new = code(&funcs, &gaps, 900);
    let mut d = matcher::diff(&Index::new(&old), &new);
    let p = predictor(new.len(), old.len(), &d.ctrls);
    let (before, after) = encode(&p, &old, &mut d);
    // What is left is where the matcher's adds overhang the insertion and
    // the end of the code (the map gives an overlap to the longer add).
    assert!(before > 250, "{before}");
    assert!(after * 5 < before, "{before} -> {after}");
    assert_eq!(decode(&p, &old, &d, 13), new);
}

#[test]
fn pieces_end_after_a_site_word_that_fits_the_add() {
    assert_eq!(piece_end(0, 6, 100), 8);
    assert_eq!(piece_end(0, 6, 7), 6, "the word does not fit the add");
    assert_eq!(piece_end(1, 2, 100), 2, "the word starts before the add");
    assert_eq!(piece_end(1, 4, 100), 7);
    assert_eq!(piece_end(8, 4, 4), 4);
    assert_eq!(sites(1, 11).collect::<Vec<_>>(), vec![4, 8]);
    assert_eq!(sites(1, 10).collect::<Vec<_>>(), vec![4]);
    assert_eq!(sites(0, 3).count(), 0);
    assert_eq!(sites(u64::MAX - 2, 2).count(), 0);
}

#[test]
fn machines_are_told_apart() {
    let mut h = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0\xb7\0".to_vec();
    assert!(is_aarch64_elf(&h));
    assert_eq!(machine(&h), Some(EM_AARCH64));
    h[18] = 0x3e;
    assert!(!is_aarch64_elf(&h));
    assert_eq!(machine(&h), Some(62));
    h[5] = 2; // big-endian
    assert_eq!(machine(&h), None);
    assert_eq!(machine(b"\x7fELF"), None);
}
