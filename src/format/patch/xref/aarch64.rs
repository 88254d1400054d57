//! aarch64 reference prediction for bsdiffed executables (patch format 4):
//! the same idea as the x86-64 prediction of the parent module, for the
//! fixed-width A64 instruction set. A rebuilt aarch64 binary changes in the
//! immediate of every branch (B, BL: imm26; B.cond, CBZ/CBNZ, LDR literal:
//! imm19; TBZ/TBNZ: imm14), ADR and ADRP whose target moved relative to it,
//! and in the low 12 bits (ADD, LDR/STR unsigned offset) paired with an ADRP
//! when its target moved within its page. Both sides predict each such
//! instruction word from the old word, the member's map and the two segment
//! tables ([`Predictor`]); the four diff bytes of the word carry
//! `new − predicted` (a little-endian 32-bit wrapping difference) instead
//! of the bytewise `new − old`.
//!
//! Sites are the 4-byte words at old offsets `x ≡ 0 (mod 4)` that lie
//! wholly inside an add (A64 code is 4-aligned in the file because
//! `p_offset ≡ p_vaddr` modulo the segment alignment). Unlike x86, a word's
//! prediction may read old bytes around it: an ADRP takes the low bits of
//! its target from its first consumer (the first later ADD/LDR/STR within
//! [`REACH`] words whose base register is the ADRP's destination, unless
//! another ADRP writes that register first), and a consumer takes its page
//! from the nearest earlier ADRP writing its base register within
//! [`REACH`] words (unless a consumer in between overwrote it).
//!
//! Invariants:
//! - a word's prediction is a function of the old member's bytes within
//!   [`CONTEXT`] bytes of it, its own old and new offsets, the map and the
//!   tables, so the applier (which holds the old member) can cut an add
//!   into any pieces: [`piece_end`] only keeps a site word whole, and
//!   [`Window`]s clip at the old member's ends the same way on both sides;
//! - every computation on table or instruction values is checked or
//!   wrapping: hostile tables make wrong bytes (refused by the result's
//!   SHA-256), never a panic.

use super::Predictor;

/// ELF `e_machine` of aarch64.
pub const EM_AARCH64: u16 = 183;
/// How many words apart an ADRP and its consumer may be.
pub const REACH: u64 = 16;
/// Old bytes either side of a site its prediction may read.
pub const CONTEXT: u64 = 4 * REACH;

/// Whether `data` starts like an aarch64 ELF file (64-bit, little-endian,
/// e_machine 183).
pub fn is_aarch64_elf(data: &[u8]) -> bool {
    data.len() >= 20
        && data[..4] == *b"\x7fELF"
        && data[4] == 2
        && data[5] == 1
        && u16::from_le_bytes([data[18], data[19]]) == EM_AARCH64
}

/// The ELF machine whose references a file starting with `head` has
/// predicted: x86-64 (62, the parent module) or aarch64.
pub fn machine(head: &[u8]) -> Option<u16> {
    if super::is_x86_64_elf(head) {
        Some(62)
    } else if is_aarch64_elf(head) {
        Some(EM_AARCH64)
    } else {
        None
    }
}

/// Old member bytes `bytes` from old offset `start`.
#[derive(Clone, Copy, Debug)]
pub struct Window<'a> {
    pub bytes: &'a [u8],
    pub start: u64,
}

impl Window<'_> {
    /// The bounds `[lo, hi)` of the old bytes a window for old range
    /// `[x0, x0 + len)` of a member of `old_len` bytes holds.
    pub fn bounds(x0: u64, len: u64, old_len: u64) -> (u64, u64) {
        let hi = x0.saturating_add(len).saturating_add(CONTEXT);
        (x0.saturating_sub(CONTEXT), hi.min(old_len))
    }

    /// The instruction word at old offset `x`, if the window holds it.
    fn word(&self, x: u64) -> Option<u32> {
        let i = usize::try_from(x.checked_sub(self.start)?).ok()?;
        let b = self.bytes.get(i..i.checked_add(4)?)?;
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }
}

/// A PC-relative immediate: where it sits in the word, its width in bits
/// and how far it is shifted left in the address.
#[derive(Clone, Copy)]
struct Field {
    lsb: u32,
    width: u32,
    scale: u32,
}

/// B and BL, B.cond (and BC.cond), CBZ/CBNZ, TBZ/TBNZ, LDR (literal) and
/// PRFM (literal): (mask, value, immediate).
const BRANCHES: [(u32, u32, Field); 5] = [
    (0x7c00_0000, 0x1400_0000, field(0, 26, 2)),
    (0xff00_0000, 0x5400_0000, field(5, 19, 2)),
    (0x7e00_0000, 0x3400_0000, field(5, 19, 2)),
    (0x7e00_0000, 0x3600_0000, field(5, 14, 2)),
    (0x3b00_0000, 0x1800_0000, field(5, 19, 2)),
];

const fn field(lsb: u32, width: u32, scale: u32) -> Field {
    Field { lsb, width, scale }
}

/// ADR (`op` 0) and ADRP (`op` 1): `op immlo 10000 immhi Rd`.
const ADR_MASK: u32 = 0x9f00_0000;
const ADR: u32 = 0x1000_0000;
const ADRP: u32 = 0x9000_0000;

/// Sign-extend the low `bits` bits of `v`.
fn sext(v: u64, bits: u32) -> i64 {
    ((v << (64 - bits)) as i64) >> (64 - bits)
}

/// The ADR/ADRP immediate (immhi:immlo, signed 21 bits).
fn adr_imm(w: u32) -> i64 {
    let v = u64::from((w >> 5) & 0x7ffff) << 2 | u64::from((w >> 29) & 3);
    sext(v, 21)
}

/// `w` with its ADR/ADRP immediate replaced by `imm`, if it fits.
fn with_adr_imm(w: u32, imm: i64) -> Option<u32> {
    if sext(imm as u64, 21) != imm {
        return None;
    }
    let v = imm as u32;
    Some(w & !(0x7ffff << 5 | 3 << 29) | (v >> 2 & 0x7ffff) << 5 | (v & 3) << 29)
}

/// A consumer of an ADRP's page: 64-bit ADD (immediate, unshifted) or
/// LDR/STR (unsigned offset). Its base register, the register it writes
/// (loads and ADD; `None` for stores) and the shift of its imm12.
fn consumer(w: u32) -> Option<(u32, Option<u32>, u32)> {
    let (rn, rt) = ((w >> 5) & 31, w & 31);
    if w & 0xffc0_0000 == 0x9100_0000 {
        return Some((rn, Some(rt), 0));
    }
    if w & 0x3b00_0000 != 0x3900_0000 {
        return None;
    }
    let (size, v, opc) = (w >> 30, (w >> 26) & 1, (w >> 22) & 3);
    // V=1, size 0, opc 1x: a 128-bit register.
    let scale = if v == 1 && size == 0 && opc >= 2 {
        4
    } else {
        size
    };
    let loads = opc != 0 && !(v == 1 && size == 0 && opc == 2);
    Some((rn, loads.then_some(rt), scale))
}

/// Whether `w` is an ADRP writing register `r`.
fn adrp_to(w: u32, r: u32) -> bool {
    w & ADR_MASK == ADRP && w & 31 == r
}

/// Where old virtual address `vt` is in the new executable: carried by
/// the map when an add holds its file byte, else moved with its segment
/// (the parent module's rule).
fn carry(p: &Predictor, vt: u64) -> Option<u64> {
    let (k, t) = p.old.offset_of(vt)?;
    let carried = t
        .and_then(|t| p.map.project(t))
        .and_then(|t| p.new.vaddr_of(t));
    match carried {
        Some(v) => Some(v),
        None => {
            let (a, b) = (p.old.0[k], *p.new.0.get(k)?);
            b.vaddr.checked_add(vt - a.vaddr)
        }
    }
}

/// The predicted new word for the old word at old offset `x` (in `w`)
/// landing at new offset `y`, or `None` (keep the bytewise difference).
pub fn predict(p: &Predictor, w: &Window, x: u64, y: u64) -> Option<u32> {
    let word = w.word(x)?;
    for (mask, value, f) in BRANCHES {
        if word & mask == value {
            return branch(p, word, f, x, y);
        }
    }
    match word & ADR_MASK {
        ADR => {
            let t = p.old.vaddr_of(x)?.checked_add_signed(adr_imm(word))?;
            let d = carry(p, t)?.wrapping_sub(p.new.vaddr_of(y)?);
            with_adr_imm(word, d as i64)
        }
        ADRP => adrp(p, w, word, x, y),
        _ => low_bits(p, w, word, x),
    }
}

/// A branch or literal load with immediate `f`.
fn branch(p: &Predictor, word: u32, f: Field, x: u64, y: u64) -> Option<u32> {
    let imm = sext(u64::from(word >> f.lsb), f.width) << f.scale;
    let t = p.old.vaddr_of(x)?.checked_add_signed(imm)?;
    let d = carry(p, t)?.wrapping_sub(p.new.vaddr_of(y)?) as i64;
    let v = d >> f.scale;
    if v << f.scale != d || sext(v as u64, f.width) != v {
        return None;
    }
    let m = ((1u32 << f.width) - 1) << f.lsb;
    Some(word & !m | ((v as u32) << f.lsb & m))
}

/// The old target address of ADRP `word` at `x` completed by the imm12
/// of consumer `c` (shifted by `scale`).
fn page_target(p: &Predictor, word: u32, x: u64, c: u32, scale: u32) -> Option<u64> {
    let page = (p.old.vaddr_of(x)? & !0xfff).checked_add_signed(adr_imm(word) << 12)?;
    page.checked_add(u64::from((c >> 10) & 0xfff) << scale)
}

/// An ADRP: its page from its first consumer's full target.
fn adrp(p: &Predictor, w: &Window, word: u32, x: u64, y: u64) -> Option<u32> {
    let r = word & 31;
    let (c, scale) = (1..=REACH).find_map(|k| {
        let c = w.word(x.checked_add(4 * k)?)?;
        if adrp_to(c, r) {
            return Some(None);
        }
        match consumer(c) {
            Some((rn, _, scale)) if rn == r => Some(Some((c, scale))),
            _ => None,
        }
    })??;
    let t = carry(p, page_target(p, word, x, c, scale)?)?;
    let pages = (t >> 12).wrapping_sub(p.new.vaddr_of(y)? >> 12);
    with_adr_imm(word, pages as i64)
}

/// A consumer of an ADRP: the low 12 bits of its carried target.
fn low_bits(p: &Predictor, w: &Window, word: u32, x: u64) -> Option<u32> {
    let (r, _, scale) = consumer(word)?;
    let a = (1..=REACH).find_map(|k| {
        let at = x.checked_sub(4 * k)?;
        let q = w.word(at)?;
        if adrp_to(q, r) {
            return Some(Some((q, at)));
        }
        match consumer(q) {
            Some((rn, Some(rt), _)) if rn == r && rt == r => Some(None),
            _ => None,
        }
    })??;
    let t = carry(p, page_target(p, a.0, a.1, word, scale)?)?;
    let lo = (t & 0xfff) as u32;
    if lo & ((1 << scale) - 1) != 0 {
        return None;
    }
    Some(word & !(0xfff << 10) | (lo >> scale) << 10)
}

/// The site words of old range `[x0, x0 + len)`: 4-aligned, wholly inside.
fn sites(x0: u64, len: u64) -> impl Iterator<Item = u64> {
    let first = x0.wrapping_add(3) & !3;
    let end = x0.saturating_add(len);
    (0..)
        .map(move |k: u64| first.wrapping_add(4 * k))
        .take_while(move |&x| x >= x0 && x.checked_add(4).is_some_and(|e| e <= end))
}

/// Differ side: the diff bytes `diff` of one add (old offset `x0`, new
/// offset `y0`, `diff.len()` bytes; `w` holds at least the old bytes
/// [`Window::bounds`] gives), rewritten from bytewise to predicted when
/// `write`. Returns the nonzero diff bytes of the predicted words before
/// and after.
pub fn encode_add(
    p: &Predictor,
    w: &Window,
    (x0, y0): (u64, u64),
    diff: &mut [u8],
    write: bool,
) -> (u64, u64) {
    let (mut before, mut after) = (0u64, 0u64);
    for x in sites(x0, diff.len() as u64) {
        let Some(pr) = predict(p, w, x, y0 + (x - x0)) else {
            continue;
        };
        let Some(old) = w.word(x) else { continue };
        let k = (x - x0) as usize;
        let d = &mut diff[k..k + 4];
        let o = old.to_le_bytes();
        let new = u32::from_le_bytes(std::array::from_fn(|i| o[i].wrapping_add(d[i])));
        let coded = new.wrapping_sub(pr).to_le_bytes();
        before += d.iter().filter(|&&b| b != 0).count() as u64;
        after += coded.iter().filter(|&&b| b != 0).count() as u64;
        if write {
            d.copy_from_slice(&coded);
        }
    }
    (before, after)
}

/// Applier side: `out` holds old bytes plus (predicted-coded) diff bytes of
/// a piece of an add at old offset `x0`, new offset `y0`, and ends where
/// [`piece_end`] said; rewrites its site words from their prediction.
pub fn decode_piece(p: &Predictor, w: &Window, (x0, y0): (u64, u64), out: &mut [u8]) {
    for x in sites(x0, out.len() as u64) {
        let Some(pr) = predict(p, w, x, y0 + (x - x0)) else {
            continue;
        };
        let Some(old) = w.word(x) else { continue };
        let k = (x - x0) as usize;
        let d = &mut out[k..k + 4];
        let o = old.to_le_bytes();
        let coded = u32::from_le_bytes(std::array::from_fn(|i| d[i].wrapping_sub(o[i])));
        d.copy_from_slice(&pr.wrapping_add(coded).to_le_bytes());
    }
}

/// How many bytes a piece of `n` bytes at old offset `x0` of an add with
/// `add_left` bytes left must take so that no site word straddles its end.
pub fn piece_end(x0: u64, n: usize, add_left: u64) -> usize {
    let e = x0 + n as u64;
    let r = e % 4;
    let a = e - r;
    if r != 0 && a >= x0 && a + 4 - x0 <= add_left {
        (a + 4 - x0) as usize
    } else {
        n
    }
}

#[cfg(test)]
mod tests;
