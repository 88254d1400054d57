//! Where a host's base is cut into gzip members: at tar member boundaries
//! chosen by content, so that a change to a tar moves only the cuts near it
//! and every other group of members — and so its gzip member — is the same
//! as in the base before (docs/design.md §4, "Kept bases").
//!
//! [`Cutter`] follows the tar framing of the bytes it is fed (512-byte
//! headers, each followed by its data padded to 512) and says how many of
//! the bytes fed so far end the current group. A group ends
//! - before a member whose header's name hashes to a hit
//!   (1 in [`HIT`]), once the group holds [`MIN`] bytes;
//! - before any member, once it holds [`MAX`] bytes;
//! - before and after a member of [`BIG`] data bytes or more;
//! - inside a member's data, at a multiple of [`STEP`] from the data's
//!   start, once the group holds [`MIN`] bytes (a big file is cut at the
//!   same places wherever it sits in the tar);
//! - anywhere, at [`HARD_MAX`] bytes (input that is not tar, or a tar whose
//!   framing the cutter lost).
//!
//! The groups are small (~28 KiB on the bench world): deflate's window is
//! 32 KiB, so a member that starts afresh loses little (the bench world's
//! base 0.384× of the tar, against 0.367× with groups of ~200 KiB), and
//! small groups leave fewer unchanged bytes in a group that changed (61%
//! of the new tar copied, against 42%: bench/log/issue-23.md, "Finer cuts").
//!
//! Invariants: the cuts depend only on the bytes, never on how they were
//! split across calls; a group is never over [`HARD_MAX`] bytes; the cutter
//! trusts nothing it reads — a bad header only stops content-defined cuts
//! (the rest of the stream is cut at [`HARD_MAX`]), it is never an error:
//! where the base is cut changes its size, never its contents.

/// Tar's block.
const BLOCK: u64 = 512;
/// The least a group holds before a content-defined cut.
pub const MIN: usize = 16 << 10;
/// A group this big ends before the next member, whatever its name.
pub const MAX: usize = 64 << 10;
/// Inside a member's data, cuts fall at multiples of this from its start.
pub const STEP: u64 = 32 << 10;
/// A member with this much data is a group (or groups) of its own.
pub const BIG: u64 = 16 << 10;
/// No group is bigger.
pub const HARD_MAX: usize = 4 << 20;
/// One member name in this many ends a group (past [`MIN`]).
const HIT: u64 = 2;

/// Where groups end: [`MIN`], [`MAX`], [`STEP`], [`BIG`] and [`HIT`] by
/// default; other values are for benchmarks that look for better ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub min: usize,
    pub max: usize,
    pub step: u64,
    pub big: u64,
    pub hit: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min: MIN,
            max: MAX,
            step: STEP,
            big: BIG,
            hit: HIT,
        }
    }
}

/// Follows the tar framing of a byte stream to find its cut points.
#[derive(Debug)]
pub struct Cutter {
    /// Offset in the stream of the next byte fed.
    pos: u64,
    /// Offset of the next header block; `None` once the framing is lost or
    /// the trailer reached.
    next_header: Option<u64>,
    /// The header block being gathered (at `next_header`).
    header: Vec<u8>,
    /// Where the data of the member being read starts and ends.
    data: (u64, u64),
    /// The member before was big: the group ends before the next one.
    after_big: bool,
    p: Params,
}

/// What [`Cutter::feed`] found in the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Cut {
    /// Take this many of the bytes given; they do not end a group.
    Take(usize),
    /// Take this many bytes; the group ends after them.
    End(usize),
    /// A header completed with this call's first `usize` bytes, and the
    /// group ends before that header, which started `back` bytes before
    /// the end of those bytes (always [`BLOCK`]): the caller splits there.
    Before { take: usize, back: usize },
}

impl Default for Cutter {
    fn default() -> Self {
        Cutter {
            pos: 0,
            next_header: Some(0),
            header: Vec::with_capacity(BLOCK as usize),
            data: (0, 0),
            after_big: false,
            p: Params::default(),
        }
    }
}

impl Cutter {
    /// A cutter with other parameters than the default (bounded by
    /// [`HARD_MAX`] all the same; a zero step or hit is taken as one).
    pub fn with(p: Params) -> Cutter {
        Cutter {
            p: Params {
                step: p.step.max(1),
                hit: p.hit.max(1),
                ..p
            },
            ..Cutter::default()
        }
    }

    /// Look at the start of `bytes`, which follow the `group` bytes of the
    /// current group: how many to take, and whether the group ends.
    pub fn feed(&mut self, group: usize, bytes: &[u8]) -> Cut {
        let room = HARD_MAX - group;
        let n = bytes.len().min(room);
        let cut = match self.next_header {
            Some(h) if self.pos >= h => self.feed_header(group, &bytes[..n]),
            Some(h) => self.feed_data(group, n, h),
            None => Cut::Take(n),
        };
        let took = match cut {
            Cut::Take(t) | Cut::End(t) | Cut::Before { take: t, .. } => t,
        };
        self.pos += took as u64;
        match cut {
            Cut::Take(t) if group + t >= HARD_MAX => Cut::End(t),
            c => c,
        }
    }

    /// Gather a header block; once whole, parse it and decide.
    fn feed_header(&mut self, group: usize, bytes: &[u8]) -> Cut {
        let want = BLOCK as usize - self.header.len();
        let t = want.min(bytes.len());
        self.header.extend_from_slice(&bytes[..t]);
        if self.header.len() < BLOCK as usize {
            return Cut::Take(t);
        }
        let start = self.pos + t as u64 - BLOCK;
        let header = std::mem::take(&mut self.header);
        self.header = Vec::with_capacity(BLOCK as usize);
        let Some(size) = data_size(&header) else {
            // the trailer, or not tar: no more content-defined cuts
            self.next_header = None;
            return Cut::Take(t);
        };
        let data_start = start + BLOCK;
        self.data = (data_start, data_start + size);
        self.next_header = Some(data_start + size.div_ceil(BLOCK) * BLOCK);
        // the bytes before this header in the group (none if the header
        // began in the group before)
        let Some(before) = (group + t).checked_sub(BLOCK as usize) else {
            return Cut::Take(t);
        };
        let p = self.p;
        let hit = name_hash(&header) % p.hit == 0;
        let big = size >= p.big;
        let after_big = std::mem::replace(&mut self.after_big, big);
        if before > 0 && (big || after_big || (hit && before >= p.min) || before >= p.max) {
            Cut::Before {
                take: t,
                back: BLOCK as usize,
            }
        } else {
            Cut::Take(t)
        }
    }

    /// Inside a member's data (and padding), up to the next header: cut at
    /// the next multiple of [`STEP`] into the data once past [`MIN`].
    fn feed_data(&mut self, group: usize, n: usize, next_header: u64) -> Cut {
        let mut t = n.min((next_header - self.pos) as usize);
        let (start, end) = self.data;
        if self.pos < end {
            let into = self.pos - start;
            let step = self.p.step;
            let step_at = start + (into / step + 1) * step;
            if step_at < end {
                let to_step = (step_at - self.pos) as usize;
                if to_step <= t {
                    t = to_step;
                    if group + t >= self.p.min {
                        return Cut::End(t);
                    }
                }
            }
        }
        Cut::Take(t)
    }
}

/// The data size of a tar header block, `None` for a zero block, a bad
/// checksum or a size that does not parse.
fn data_size(h: &[u8]) -> Option<u64> {
    if h.iter().all(|&b| b == 0) {
        return None;
    }
    let want = octal(&h[148..156])?;
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    if sum != want {
        return None;
    }
    let field = &h[124..136];
    let size = if field[0] & 0x80 != 0 {
        // base-256: big-endian in the bytes after the marker
        field[4..]
            .iter()
            .fold(0u64, |acc, &b| acc.wrapping_shl(8) | u64::from(b))
    } else {
        octal(field)?
    };
    // hard links, devices, directories and FIFOs carry no data in a
    // sysup tar, whatever their size field says
    match h[156] {
        b'1' | b'3' | b'4' | b'5' | b'6' => Some(0),
        _ if size > 1 << 40 => None,
        _ => Some(size),
    }
}

fn octal(field: &[u8]) -> Option<u64> {
    let s = field
        .iter()
        .skip_while(|&&b| b == b' ' || b == 0)
        .take_while(|&&b| (b'0'..=b'7').contains(&b));
    let mut v: u64 = 0;
    let mut any = false;
    for &b in s {
        v = v.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
        any = true;
    }
    any.then_some(v)
}

/// FNV-1a of the header's name and prefix fields.
fn name_hash(h: &[u8]) -> u64 {
    h[..100]
        .iter()
        .chain(&h[345..500])
        .fold(0xcbf2_9ce4_8422_2325_u64, |acc, &b| {
            (acc ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
        .rotate_right(29)
}

/// The lengths of the groups `data` is cut into (fed in pieces of `piece`).
pub fn groups(data: &[u8], piece: usize) -> Vec<usize> {
    groups_with(data, piece, Params::default())
}

/// [`groups`] with other parameters.
pub fn groups_with(data: &[u8], piece: usize, p: Params) -> Vec<usize> {
    let mut c = Cutter::with(p);
    let mut out = Vec::new();
    let mut group = 0usize;
    for mut p in data.chunks(piece.max(1)) {
        while !p.is_empty() {
            match c.feed(group, p) {
                Cut::Take(t) => {
                    group += t;
                    p = &p[t..];
                }
                Cut::End(t) => {
                    out.push(group + t);
                    group = 0;
                    p = &p[t..];
                }
                Cut::Before { take, back } => {
                    out.push(group + take - back);
                    group = back;
                    p = &p[take..];
                }
            }
        }
    }
    out.push(group);
    out
}
