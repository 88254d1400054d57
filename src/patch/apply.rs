//! The streaming applier: old tar in (forward only, may be a pipe), new tar
//! out (forward only), as a [`Read`] adapter so patches chain without threads:
//! `PatchReader::open(p2, PatchReader::open(p1, gunzip(base))?)?` reads as the
//! tar `p2` makes.
//!
//! Steps, in the order they happen:
//! 1. the header is read and checked, then every body section's SHA-256
//!    (a damaged patch is refused before one byte of input is consumed);
//! 2. the retention plan (one entry per old member) is loaded from the
//!    controls section;
//! 3. per new member: the old tar is segmented forward up to the old members
//!    the record refers to — old members passed on the way are kept in a
//!    [`Store`] only if the plan says a later member needs them, everything
//!    else is dropped as it streams by — then the member's header, data and
//!    padding are produced; a re-gzipped member's data is deflated on a
//!    thread of its own, and what comes after it is [`Held`] until it is
//!    done;
//! 4. after the trailer, every section must be used up exactly, the old
//!    tar must end with exactly the planned number of members, and the input
//!    and output sizes and digests are compared with the header's from and
//!    to digests (the input's by whichever of MD5 and SHA-256 this CPU
//!    computes faster, the output's by SHA-256).
//!
//! Invariants:
//! - EOF (`Ok(0)`) is returned only after step 4 passed: a consumer that sees
//!   EOF has the exact new tar; any mismatch surfaces as an error from `read`
//!   instead (with a [`WrongBase`](Error::WrongBase) or
//!   [`CorruptPatch`](Error::CorruptPatch) cause when it can tell which; a
//!   patch that stops making sense midway over a hashed input is blamed only
//!   after the rest of the input was hashed and found to be the base);
//! - output is hashed and handed out strictly in order, a held piece only
//!   after everything before it;
//! - memory is bounded by constants (output chunk, [`Store`] and [`Held`]
//!   limits, the segmenter's caps, the xz dictionary capped by the header,
//!   the plan capped at [`MAX_MEMBERS`]), never by the size of a tar or a
//!   member;
//! - every length read from the patch is checked against the header's sizes
//!   and the old tar before anything is allocated or copied; no input panics.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::archive::segment::{self, pad_len, Item, Segmenter, MAX_HEADER};
use crate::format::patch::header::{corrupt, PatchHeader, SectionKind};
use crate::format::patch::record::{Ctrl, DataOp, HeaderOp, Keep, RecordError, RecordReader};
use crate::format::patch::regz::{self, Recipe};
use crate::format::patch::section::{self, SectionReader};
use crate::format::patch::zeros::{ZeroRunError, ZeroRunReader};
use crate::patch::held::{Held, Popped};
use crate::patch::retain::Store;
use crate::util::digest::Digests;
use crate::util::hashing::{BackgroundHasher, Hashed};

/// Output produced per step (and the granularity of reads from sections).
const CHUNK: usize = 256 * 1024;
/// Most members a patch may describe on either side (bounds the plan's memory).
pub const MAX_MEMBERS: u64 = 1 << 22;

/// What a successful application read and wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApplyReport {
    /// Bytes of the old tar read: the header's from-size.
    pub input_size: u64,
    /// Size and digest of the old tar (MD5 or SHA-256: see
    /// [`BackgroundHasher::cheaper`]), equal to the header's from-digests; none
    /// when the input was trusted ([`PatchReader::trusting_input`]).
    pub input: Option<Hashed>,
    /// The header's to-digests, which the new tar matched by size and
    /// SHA-256 (the strong one; its MD5 is the header's).
    pub output: Digests,
    /// Old bytes that had to be spilled to a temporary file.
    pub spilled: u64,
}

/// The old tar as read: counted and (unless trusted) hashed, with its first
/// bytes kept for messages.
struct Tap<R> {
    inner: R,
    /// Digest of the input; taken when the digests are read (at the end), or
    /// dropped when the input is trusted.
    hash: Option<BackgroundHasher>,
    /// Bytes read so far.
    pos: u64,
    head: [u8; 2],
    head_len: usize,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hash {
            h.update(&buf[..n]);
        }
        self.pos += n as u64;
        let k = (2 - self.head_len).min(n);
        self.head[self.head_len..self.head_len + k].copy_from_slice(&buf[..k]);
        self.head_len += k;
        Ok(n)
    }
}

impl<R> Tap<R> {
    /// Bytes read so far.
    fn position(&self) -> u64 {
        self.pos
    }
}

/// The old tar, segmented forward.
struct OldStream<R> {
    seg: Segmenter<Tap<R>>,
    /// (header length, data length) of every old member passed so far.
    seen: Vec<(u64, u64)>,
    /// The old member whose header was read and whose data is being streamed.
    cur: Option<u32>,
    cur_header: Vec<u8>,
    store: Store,
}

impl<R> OldStream<R> {
    /// First old member not reached yet.
    fn next(&self) -> u32 {
        self.seen.len() as u32
    }
}

/// Where a member's data comes from, and how far along it is.
enum DataState {
    Literal,
    /// The trailer: literal, and the last thing produced.
    Trailer,
    CopyStream,
    CopyStored {
        old: u32,
        pos: u64,
    },
    Bsdiff {
        old: u32,
        add_pos: u64,
        add_left: u64,
        extra_left: u64,
    },
    /// A re-gzipped member: its data is deflating on a deflate thread
    /// ([`Held`]) and comes out from there; nothing is left to produce here.
    Rebuilt,
}

enum State {
    Member,
    Data {
        data: DataState,
        left: u64,
        pad: u64,
        pad_literal: bool,
    },
    Trailer,
    Verify,
    Done,
}

/// The new tar, as a reader; see the module docs.
pub struct PatchReader<R> {
    path: PathBuf,
    header: PatchHeader,
    ctrl: RecordReader<SectionReader>,
    diff: ZeroRunReader<SectionReader>,
    extra: SectionReader,
    old: OldStream<R>,
    plan: Vec<Keep>,
    n_new: u32,
    /// Index of the new member being produced (or next to be).
    cur_new: u32,
    state: State,
    out: Option<BackgroundHasher>,
    /// Bytes produced so far.
    produced: u64,
    /// Output handed out (from `buf_pos`), and hashed; while something is
    /// held, also where output is produced into between steps.
    buf: Vec<u8>,
    buf_pos: usize,
    /// Output held behind a member deflating on a deflate thread.
    held: Held,
    /// Produced after the last held piece, while something is held: not
    /// hashed or handed out yet. Swapped with `buf` during a step, so the
    /// producing code always appends to `buf`.
    tail: Vec<u8>,
    /// The current step produces into `tail` (swapped into `buf`).
    holding: bool,
    /// Where in `buf` this step's output starts.
    step_start: usize,
    failed: Option<String>,
    report: Option<ApplyReport>,
}

fn record_err(path: &Path, what: &str, e: RecordError) -> Error {
    match e {
        RecordError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => Error::Patch {
            path: path.to_path_buf(),
            reason: format!("the controls section ends inside {what}"),
        },
        RecordError::Io(e) => match e.into_inner().map(|b| b.downcast::<Error>()) {
            Some(Ok(e)) => *e,
            Some(Err(e)) => corrupt(path, format!("the controls section cannot be read: {e}")),
            None => corrupt(path, "the controls section cannot be read".into()),
        },
        RecordError::Malformed(m) => Error::Patch {
            path: path.to_path_buf(),
            reason: format!("malformed {what}: {m}"),
        },
    }
}

impl<R: Read> PatchReader<R> {
    /// Open the patch at `path` over the old tar `old`: checks the header and
    /// every section digest, and loads the retention plan. Nothing is read
    /// from `old` yet.
    pub fn open(path: &Path, old: R) -> Result<PatchReader<R>> {
        let header = PatchHeader::read_file(path)?;
        section::verify(path, &header)?;
        let open = |kind| {
            SectionReader::open(
                path,
                header.section(kind),
                header.compression,
                header.window_log,
            )
        };
        let ctrl = open(SectionKind::Controls)?;
        let diff = open(SectionKind::Diff)?;
        let extra = open(SectionKind::Extra)?;
        let mut ctrl = RecordReader::new(ctrl);
        if header.version < 2 {
            ctrl = ctrl.without_regz();
        }
        let bad = |reason: String| Error::Patch {
            path: path.to_path_buf(),
            reason,
        };
        let from_size = header.from.tar.size;
        let to_size = header.to.tar.size;

        let n_old = ctrl.varint().map_err(|e| record_err(path, "the plan", e))?;
        if n_old != u64::from(header.old_members) || n_old > MAX_MEMBERS || n_old > from_size / 512
        {
            return Err(bad(format!(
                "the plan lists {n_old} old members; the header says {} in a {from_size}-byte tar",
                header.old_members
            )));
        }
        let n_new = u64::from(header.new_members);
        if n_new > MAX_MEMBERS || n_new > to_size / 512 {
            return Err(bad(format!(
                "{n_new} new members cannot fit a {to_size}-byte tar"
            )));
        }
        let mut plan = Vec::new();
        for j in 0..n_old {
            let k = ctrl.keep().map_err(|e| record_err(path, "the plan", e))?;
            if u64::from(k.hdr_last.max(k.data_last)) > n_new {
                return Err(bad(format!(
                    "old member {j} is kept past the last new member"
                )));
            }
            plan.push(k);
        }
        let got_new = ctrl
            .varint()
            .map_err(|e| record_err(path, "the member count", e))?;
        if got_new != n_new {
            return Err(bad(format!(
                "the controls list {got_new} new members; the header says {n_new}"
            )));
        }
        let tap = Tap {
            inner: old,
            hash: Some(BackgroundHasher::cheaper()),
            pos: 0,
            head: [0; 2],
            head_len: 0,
        };
        Ok(PatchReader {
            path: path.to_path_buf(),
            old: OldStream {
                seg: Segmenter::new(tap, format!("old tar for {}", header.from.id))
                    .with_limit(from_size),
                seen: Vec::new(),
                cur: None,
                cur_header: Vec::new(),
                store: Store::new(),
            },
            header,
            ctrl,
            diff: ZeroRunReader::new(diff),
            extra,
            plan,
            n_new: n_new as u32,
            cur_new: 0,
            state: State::Member,
            out: Some(BackgroundHasher::sha256_only()),
            produced: 0,
            buf: Vec::with_capacity(CHUNK),
            buf_pos: 0,
            held: Held::default(),
            tail: Vec::new(),
            holding: false,
            step_start: 0,
            failed: None,
            report: None,
        })
    }

    /// The old tar comes from a reader that vouches for it (another
    /// [`PatchReader`], whose EOF means its output was checked; a host's
    /// recorded base, whose id and digests the caller matched against the
    /// header and whose gzip CRC-32 catches damage on disk): count its bytes
    /// but do not hash them. The output is verified all the same, so a wrong
    /// input can never pass for the result. Call before reading.
    pub fn trusting_input(mut self) -> Self {
        self.old.seg.get_mut().hash = None;
        self
    }

    /// Keep at most `item` bytes of one old member, and `total` bytes in all,
    /// in memory (the rest spills to a temporary file); call before reading.
    pub fn with_memory_limits(mut self, item: u64, total: u64) -> Self {
        self.old.store = Store::with_limits(item, total);
        self
    }

    /// The patch's header.
    pub fn header(&self) -> &PatchHeader {
        &self.header
    }

    /// After EOF: what was read and written (both verified). Errors if the
    /// reader failed or was not read to the end.
    pub fn finish(self) -> Result<ApplyReport> {
        if let Some(r) = self.report {
            return Ok(r);
        }
        Err(Error::Patch {
            path: self.path,
            reason: match self.failed {
                Some(m) => format!("applying failed: {m}"),
                None => "the new tar was not read to its end".into(),
            },
        })
    }

    fn bad(&self, reason: String) -> Error {
        Error::Patch {
            path: self.path.clone(),
            reason,
        }
    }

    fn wrong_base(&self, mut reason: String) -> Error {
        let tap = self.old.seg.get_ref();
        if tap.head_len == 2 && tap.head == [0x1f, 0x8b] {
            reason.push_str(" (the input starts like gzip: gunzip the dist first)");
        }
        Error::WrongBase {
            patch: self.path.clone(),
            reason,
        }
    }

    // ---- the old stream -------------------------------------------------

    /// An error met while reading the old tar: a framing error or an early
    /// end means the input is not the base; an upstream patch's error passes
    /// through as it is.
    fn old_error(&self, e: Error) -> Error {
        match e {
            Error::Tar { reason, .. } => self.wrong_base(format!(
                "{reason}; the patch was made from {} ({} bytes)",
                self.header.from.id, self.header.from.tar.size
            )),
            // the segmenter's own read error; a library error from the
            // base's reader (gunzip) comes up as itself and stays
            Error::Io { action, source, .. } if action == segment::READ_TAR => {
                self.old_io_error(source)
            }
            e => e,
        }
    }

    fn old_io_error(&self, e: io::Error) -> Error {
        if e.kind() == io::ErrorKind::UnexpectedEof && e.get_ref().is_none_or(|i| !i.is::<Error>())
        {
            return self.wrong_base(format!(
                "the old tar ends at byte {}; the patch was made from a {}-byte tar",
                self.old.seg.get_ref().position(),
                self.header.from.tar.size
            ));
        }
        Error::from_io(e, "read old tar for", &self.path)
    }

    /// The next old member's framing from the segmenter.
    fn old_next_member(&mut self) -> Result<crate::format::archive::segment::Member> {
        let k = self.old.next();
        match self.old.seg.next_item() {
            Ok(Some(Item::Member(m))) => {
                self.old.seen.push((m.header.len() as u64, m.size));
                Ok(m)
            }
            Ok(_) => Err(self.wrong_base(format!(
                "the old tar ends after {k} members; the patch was made from one of {}",
                self.plan.len()
            ))),
            Err(e) => Err(self.old_error(e)),
        }
    }

    /// Consume old member `k` (the next one), keeping what the plan says
    /// member `cur_new` or a later one needs.
    fn old_pass(&mut self) -> Result<()> {
        let k = self.old.next();
        let m = self.old_next_member()?;
        let e = self.plan[k as usize];
        let need_h = e.hdr_last > self.cur_new;
        let need_d = e.data_last > self.cur_new;
        if need_h || need_d {
            let expires = e.hdr_last.max(e.data_last);
            let data_len = if need_d { m.size } else { 0 };
            let OldStream { seg, store, .. } = &mut self.old;
            let res = store.insert(
                k,
                need_h.then_some(&m.header[..]),
                &mut seg.data(),
                data_len,
                expires,
            );
            if let Err(e) = res {
                return Err(self.old_io_error(e));
            }
        }
        Ok(())
    }

    /// Make old member `j` available for member `cur_new`: pass members up
    /// to it; `stream` leaves `j`'s data unread in the stream for a copy.
    fn old_reach(&mut self, j: u32, stream: bool) -> Result<()> {
        while self.old.next() < j {
            self.old_pass()?;
        }
        if self.old.next() == j {
            if stream {
                let m = self.old_next_member()?;
                let e = self.plan[j as usize];
                if e.hdr_last > self.cur_new + 1 {
                    self.old
                        .store
                        .insert(j, Some(&m.header), &mut io::empty(), 0, e.hdr_last)
                        .map_err(|e| Error::from_io(e, "keep old data for", &self.path))?;
                }
                self.old.cur_header = m.header;
                self.old.cur = Some(j);
            } else {
                self.old_pass()?;
            }
        }
        Ok(())
    }

    fn old_header(&mut self, j: u32) -> Result<Vec<u8>> {
        if self.old.cur == Some(j) {
            return Ok(std::mem::take(&mut self.old.cur_header));
        }
        match self.old.store.header(j) {
            Ok(Some(h)) => Ok(h),
            Ok(None) => Err(self.bad(format!(
                "new member {} uses the header of old member {j}, which the plan did not keep",
                self.cur_new
            ))),
            Err(e) => Err(Error::from_io(e, "read kept old data for", &self.path)),
        }
    }

    fn check_kept_data(&self, j: u32) -> Result<()> {
        match self.old.store.has(j) {
            Some((_, n)) if n == self.old.seen[j as usize].1 => Ok(()),
            _ => Err(self.bad(format!(
                "new member {} uses the data of old member {j}, which the plan did not keep",
                self.cur_new
            ))),
        }
    }

    // ---- producing the new tar --------------------------------------------

    /// Append `n` diff bytes to the output buffer.
    fn diff_bytes(&mut self, n: usize) -> Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        let r = self.diff_bytes_into(&mut buf, n);
        self.buf = buf;
        r
    }

    /// Append `n` diff bytes to `out`.
    fn diff_bytes_into(&mut self, out: &mut Vec<u8>, n: usize) -> Result<()> {
        match self.diff.read_into(out, n) {
            Ok(()) => Ok(()),
            Err(ZeroRunError::Malformed(m)) => {
                Err(self.bad(format!("malformed diff section: {m}")))
            }
            Err(ZeroRunError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(self.bad("the diff section ends before the records that use it".into()))
            }
            Err(ZeroRunError::Io(e)) => Err(corrupt(
                &self.path,
                format!("the diff section cannot be read: {e}"),
            )),
        }
    }

    /// Rebuild new member `cur_new`, a re-gzipped file of `data_len` bytes
    /// made from old member `old` ([`regz`]): inflate the old data, run the
    /// member's bsdiff controls over it, and hand the result with the gzip
    /// header from the extra section to the deflate threads ([`Held`]).
    fn regz_member(&mut self, old: u32, data_len: u64, recipe: Recipe) -> Result<()> {
        let i = self.cur_new;
        let old_len = self.old.seen[old as usize].1;
        if recipe.raw_len > regz::MAX_RAW
            || old_len > regz::MAX_RAW
            || recipe.header_len as usize > regz::MAX_HEADER
            || data_len > regz::MAX_RAW * 2
        {
            return Err(self.bad(format!(
                "new member {i} is a re-gzipped file with impossible sizes"
            )));
        }
        let mut old_gz = vec![0u8; old_len as usize];
        self.old
            .store
            .read_data(old, 0, &mut old_gz)
            .map_err(|e| Error::from_io(e, "read kept old data for", &self.path))?;
        let Some(old_raw) = regz::raw_of(&old_gz) else {
            return Err(self.wrong_base(format!(
                "old member {old}, which new member {i} is rebuilt from, is not the gzip file the patch was made from"
            )));
        };
        drop(old_gz);
        let mut header = Vec::with_capacity(recipe.header_len as usize);
        self.extra
            .read_into(&mut header, recipe.header_len as usize)?;
        let mut raw = Vec::with_capacity(recipe.raw_len as usize);
        while (raw.len() as u64) < recipe.raw_len {
            let c = self.next_ctrl(old_raw.len() as u64, recipe.raw_len - raw.len() as u64)?;
            let start = raw.len();
            self.diff_bytes_into(&mut raw, c.add as usize)?;
            let from = &old_raw[c.old_pos as usize..(c.old_pos + c.add) as usize];
            for (o, b) in raw[start..].iter_mut().zip(from) {
                *o = o.wrapping_add(*b);
            }
            self.extra.read_into(&mut raw, c.extra as usize)?;
        }
        // What this step made so far comes before the member: counted, and
        // held too if something already is.
        self.made()?;
        if self.holding {
            self.held.push_bytes(std::mem::take(&mut self.buf));
            self.step_start = 0;
        }
        self.held
            .push_rebuild(i, data_len, header, raw, recipe.level)
            .map_err(|e| Error::from_io(e, "start a deflate thread for", &self.path))?;
        // Counted as produced now (`start_member` checked that it fits); its
        // length is checked when it comes out of `held`.
        self.produced += data_len;
        Ok(())
    }

    /// The next bsdiff control of new member `cur_new`, checked against the
    /// `old_len` bytes its adds read from and the `left` bytes still to make.
    fn next_ctrl(&mut self, old_len: u64, left: u64) -> Result<Ctrl> {
        let c = self
            .ctrl
            .ctrl()
            .map_err(|e| record_err(&self.path, "a bsdiff control", e))?;
        if c.add == 0 && c.extra == 0 {
            return Err(self.bad(format!(
                "an empty bsdiff control in new member {}",
                self.cur_new
            )));
        }
        let fits_old = c.old_pos.checked_add(c.add).is_some_and(|e| e <= old_len);
        let fits_new = c.add.checked_add(c.extra).is_some_and(|n| n <= left);
        if !fits_old || !fits_new {
            return Err(self.bad(format!(
                "a bsdiff control of new member {} reaches outside its old or new data",
                self.cur_new
            )));
        }
        Ok(c)
    }

    /// Produce the next piece of output: appended to `self.buf`, or, while
    /// something is held, to `self.tail`.
    fn step(&mut self) -> Result<()> {
        self.holding = !self.held.is_empty();
        if self.holding {
            if self.tail.len() >= CHUNK {
                self.held.push_bytes(std::mem::take(&mut self.tail));
            }
            std::mem::swap(&mut self.buf, &mut self.tail);
        }
        let res = self.produce();
        if self.holding {
            std::mem::swap(&mut self.buf, &mut self.tail);
        }
        res
    }

    fn produce(&mut self) -> Result<()> {
        self.step_start = self.buf.len();
        match std::mem::replace(&mut self.state, State::Done) {
            State::Member => self.start_member()?,
            State::Data {
                data,
                left,
                pad,
                pad_literal,
            } => self.continue_data(data, left, pad, pad_literal)?,
            State::Trailer => {
                let n = self
                    .ctrl
                    .varint()
                    .map_err(|e| record_err(&self.path, "the trailer", e))?;
                let room = self.header.to.tar.size - self.produced;
                if n > room {
                    return Err(self.bad(format!("a {n}-byte trailer overruns the new tar")));
                }
                self.state = State::Data {
                    data: DataState::Trailer,
                    left: n,
                    pad: 0,
                    pad_literal: false,
                };
            }
            State::Verify => self.verify()?,
            State::Done => {}
        }
        self.made()
    }

    /// Count what this step appended to `buf` since `step_start` (and,
    /// unless it is held, hash it: it is handed out).
    fn made(&mut self) -> Result<()> {
        let made = &self.buf[self.step_start..];
        if !made.is_empty() {
            let room = self.header.to.tar.size - self.produced;
            if made.len() as u64 > room {
                return Err(self.bad(format!(
                    "the patch makes more than the {} bytes of the new tar",
                    self.header.to.tar.size
                )));
            }
            self.produced += made.len() as u64;
            if !self.holding {
                if let Some(h) = &mut self.out {
                    h.update(made);
                }
            }
        }
        self.step_start = self.buf.len();
        Ok(())
    }

    /// Move held pieces whose bytes are known to `buf`, hashing them; with
    /// `wait`, wait for the first. Once nothing is held, `tail` follows.
    fn release(&mut self, mut wait: bool) -> Result<()> {
        while let Some(p) = self.held.pop(wait) {
            wait = false;
            let bytes = match p {
                Popped::Bytes(b) => b,
                Popped::Rebuilt { member, len, bytes } => {
                    let bytes = bytes.map_err(|e| {
                        self.bad(format!("new member {member} cannot be deflated again: {e}"))
                    })?;
                    if bytes.len() as u64 != len {
                        return Err(self.bad(format!(
                            "re-gzipped new member {member} came out {} bytes, not {len}: this sysup's zlib ({}) does not deflate as the one that made the patch did, or the patch is damaged; apply a full dist instead",
                            bytes.len(),
                            regz::zlib_version()
                        )));
                    }
                    bytes
                }
            };
            self.hand_out(bytes);
        }
        if self.held.is_empty() && !self.tail.is_empty() {
            let tail = std::mem::take(&mut self.tail);
            self.hand_out(tail);
        }
        Ok(())
    }

    /// Append `bytes` to what is handed out, hashed.
    fn hand_out(&mut self, bytes: Vec<u8>) {
        if let Some(h) = &mut self.out {
            h.update(&bytes);
        }
        if self.buf_pos >= self.buf.len() {
            self.buf = bytes;
            self.buf_pos = 0;
        } else {
            self.buf.extend_from_slice(&bytes);
        }
    }

    fn start_member(&mut self) -> Result<()> {
        if self.cur_new == self.n_new {
            self.state = State::Trailer;
            return Ok(());
        }
        let i = self.cur_new;
        let rec = self
            .ctrl
            .member()
            .map_err(|e| record_err(&self.path, "a member record", e))?;
        let n_old = self.plan.len() as u32;
        let h_ref = match rec.header {
            HeaderOp::Diff { old } => Some(old),
            HeaderOp::Literal { .. } => None,
        };
        let d_ref = match rec.data {
            DataOp::Copy { old } | DataOp::Bsdiff { old, .. } | DataOp::Regz { old, .. } => {
                Some(old)
            }
            DataOp::Literal { .. } => None,
        };
        for r in [h_ref, d_ref].into_iter().flatten() {
            if r >= n_old {
                return Err(self.bad(format!(
                    "new member {i} refers to old member {r} of {n_old}"
                )));
            }
        }
        if let Some(h) = h_ref {
            if self.plan[h as usize].hdr_last <= i {
                return Err(self.bad(format!(
                    "new member {i} uses old member {h}'s header past its planned last use"
                )));
            }
        }
        if let Some(d) = d_ref {
            if self.plan[d as usize].data_last <= i {
                return Err(self.bad(format!(
                    "new member {i} uses old member {d}'s data past its planned last use"
                )));
            }
        }
        // A copy of an old member ahead in the stream that nobody needs later
        // streams straight through.
        let stream = match rec.data {
            DataOp::Copy { old } => {
                old >= self.old.next() && self.plan[old as usize].data_last == i + 1
            }
            _ => false,
        };
        let target = [h_ref, d_ref]
            .into_iter()
            .flatten()
            .filter(|&r| r >= self.old.next())
            .max();
        if let Some(t) = target {
            self.old_reach(t, stream && Some(t) == d_ref)?;
        }
        let streaming = stream && self.old.cur == d_ref;

        // Lengths, now that every referenced old member has been seen.
        let header_len = match rec.header {
            HeaderOp::Literal { len } => len,
            HeaderOp::Diff { old } => self.old.seen[old as usize].0,
        };
        let data_len = match rec.data {
            DataOp::Literal { len } => Some(len),
            DataOp::Copy { old } => Some(self.old.seen[old as usize].1),
            DataOp::Bsdiff { old, len_delta } | DataOp::Regz { old, len_delta, .. } => {
                self.old.seen[old as usize].1.checked_add_signed(len_delta)
            }
        };
        let room = self.header.to.tar.size - self.produced;
        let need = data_len
            .and_then(|d| header_len.checked_add(d))
            .and_then(|x| x.checked_add(pad_len(data_len.unwrap_or(0))));
        let (Some(data_len), true) = (data_len, header_len <= MAX_HEADER as u64) else {
            return Err(self.bad(format!("new member {i} has impossible lengths")));
        };
        if need.is_none_or(|n| n > room) {
            return Err(self.bad(format!("new member {i} overruns the new tar")));
        }

        // Header blocks.
        let hl = header_len as usize;
        match rec.header {
            HeaderOp::Literal { .. } => self.extra.read_into(&mut self.buf, hl)?,
            HeaderOp::Diff { old } => {
                let base = self.old_header(old)?;
                let start = self.buf.len();
                self.diff_bytes(hl)?;
                for (o, b) in self.buf[start..].iter_mut().zip(&base) {
                    *o = o.wrapping_add(*b);
                }
            }
        }
        let data = match rec.data {
            DataOp::Literal { .. } => DataState::Literal,
            DataOp::Copy { .. } if streaming => DataState::CopyStream,
            DataOp::Copy { old } => {
                self.check_kept_data(old)?;
                DataState::CopyStored { old, pos: 0 }
            }
            DataOp::Bsdiff { old, .. } => {
                self.check_kept_data(old)?;
                DataState::Bsdiff {
                    old,
                    add_pos: 0,
                    add_left: 0,
                    extra_left: 0,
                }
            }
            DataOp::Regz { old, recipe, .. } => {
                self.check_kept_data(old)?;
                self.regz_member(old, data_len, recipe)?;
                DataState::Rebuilt
            }
        };
        // A rebuilt member's data comes out of `held`: nothing is left here.
        let left = if matches!(data, DataState::Rebuilt) {
            0
        } else {
            data_len
        };
        self.state = State::Data {
            data,
            left,
            pad: pad_len(data_len),
            pad_literal: rec.pad_literal,
        };
        Ok(())
    }

    fn continue_data(
        &mut self,
        mut data: DataState,
        mut left: u64,
        pad: u64,
        pad_literal: bool,
    ) -> Result<()> {
        while left > 0 && self.buf.len() < CHUNK {
            let room = (CHUNK - self.buf.len()) as u64;
            match &mut data {
                DataState::Literal | DataState::Trailer => {
                    let n = left.min(room) as usize;
                    self.extra.read_into(&mut self.buf, n)?;
                    left -= n as u64;
                }
                DataState::CopyStream => {
                    let n = left.min(room) as usize;
                    let start = self.buf.len();
                    self.buf.resize(start + n, 0);
                    let r = self.old.seg.data().read_exact(&mut self.buf[start..]);
                    if let Err(e) = r {
                        return Err(self.old_io_error(e));
                    }
                    left -= n as u64;
                }
                DataState::Rebuilt => unreachable!("a rebuilt member has nothing left"),
                DataState::CopyStored { old, pos } => {
                    let n = left.min(room) as usize;
                    let start = self.buf.len();
                    self.buf.resize(start + n, 0);
                    self.old
                        .store
                        .read_data(*old, *pos, &mut self.buf[start..])
                        .map_err(|e| Error::from_io(e, "read kept old data for", &self.path))?;
                    *pos += n as u64;
                    left -= n as u64;
                }
                DataState::Bsdiff {
                    old,
                    add_pos,
                    add_left,
                    extra_left,
                } => {
                    if *add_left > 0 {
                        let n = (*add_left).min(room) as usize;
                        let start = self.buf.len();
                        self.diff_bytes(n)?;
                        let out = &mut self.buf[start..];
                        match self.old.store.data_slice(*old) {
                            Some(src) => {
                                let p = *add_pos as usize;
                                for (o, b) in out.iter_mut().zip(&src[p..p + n]) {
                                    *o = o.wrapping_add(*b);
                                }
                            }
                            None => {
                                let mut tmp = vec![0u8; n];
                                self.old.store.read_data(*old, *add_pos, &mut tmp).map_err(
                                    |e| Error::from_io(e, "read kept old data for", &self.path),
                                )?;
                                for (o, b) in out.iter_mut().zip(&tmp) {
                                    *o = o.wrapping_add(*b);
                                }
                            }
                        }
                        *add_pos += n as u64;
                        *add_left -= n as u64;
                        left -= n as u64;
                    } else if *extra_left > 0 {
                        let n = (*extra_left).min(room) as usize;
                        self.extra.read_into(&mut self.buf, n)?;
                        *extra_left -= n as u64;
                        left -= n as u64;
                    } else {
                        let c = self.next_ctrl(self.old.seen[*old as usize].1, left)?;
                        *add_pos = c.old_pos;
                        *add_left = c.add;
                        *extra_left = c.extra;
                    }
                }
            }
        }
        if left > 0 {
            self.state = State::Data {
                data,
                left,
                pad,
                pad_literal,
            };
            return Ok(());
        }
        if let DataState::Trailer = data {
            self.state = State::Verify;
            return Ok(());
        }
        // Padding, then the member is done.
        if pad_literal {
            self.extra.read_into(&mut self.buf, pad as usize)?;
        } else {
            self.buf.resize(self.buf.len() + pad as usize, 0);
        }
        self.old.cur = None;
        self.cur_new += 1;
        self.old.store.expire(self.cur_new);
        self.state = State::Member;
        Ok(())
    }

    fn verify(&mut self) -> Result<()> {
        self.ctrl.get_mut().finish()?;
        if !self.diff.at_pair_end() {
            return Err(self.bad("the diff section's last zero run is never used".into()));
        }
        self.diff.get_mut().finish()?;
        self.extra.finish()?;
        // The old tar must hold exactly the planned members, then its
        // trailer; every input byte is hashed, to EOF.
        while (self.old.next() as usize) < self.plan.len() {
            self.old_next_member()?;
        }
        match self.old.seg.next_item() {
            Ok(Some(Item::Trailer(_))) => {}
            Ok(_) => {
                return Err(self.wrong_base(format!(
                    "the old tar has more than the {} members the patch was made from",
                    self.plan.len()
                )))
            }
            Err(e) => return Err(self.old_error(e)),
        }
        let tap = self.old.seg.get_mut();
        let input_size = tap.pos;
        let input = tap.hash.take().map(BackgroundHasher::finish);
        let from = self.header.from.tar;
        if input_size != from.size || input.is_some_and(|h| !h.matches(&from)) {
            return Err(self.wrong_base(self.not_the_base(input_size, input, false)));
        }
        let made = self.out.take().expect("verified once").finish();
        let to = self.header.to.tar;
        if !made.matches(&to) && input.is_none() {
            // The input was vouched for, not hashed: with the sections'
            // digests verified, the input is what most likely differs.
            return Err(self.wrong_base(format!(
                "the result is not {} (expected {} bytes with sha256 {}, made {} bytes with sha256 {}); the old tar was not hashed (its reader vouched for it), so it is most likely not {}",
                self.header.to.id,
                to.size,
                to.sha256_hex(),
                made.size,
                made.sha256.map_or_else(|| "not computed".into(), hex::encode),
                self.header.from.id
            )));
        }
        if !made.matches(&to) {
            return Err(corrupt(
                &self.path,
                format!(
                    "the base matched but the result is not {} (expected {} bytes with sha256 {}, made {} bytes with sha256 {})",
                    self.header.to.id,
                    to.size,
                    to.sha256_hex(),
                    made.size,
                    made.sha256.map_or_else(|| "not computed".into(), hex::encode)
                ),
            ));
        }
        let output = to;
        self.report = Some(ApplyReport {
            input_size,
            input,
            output,
            spilled: self.old.store.spilled_total,
        });
        self.state = State::Done;
        Ok(())
    }

    /// Who is at fault for `e`. The sections' digests held when the patch
    /// was opened, so a patch that contradicts itself midway (a control
    /// past a member's end, a plan broken) was most likely steered off its
    /// course by an old tar whose members differ from the one it was made
    /// from. When the input is hashed, read the rest of it (never more than
    /// one byte past the from-size) and let its size and digest decide; an
    /// input that is the base leaves the patch at fault.
    fn blame(&mut self, e: Error) -> Error {
        let reason = match &e {
            Error::Patch { reason, .. } | Error::CorruptPatch { reason, .. } => reason.clone(),
            _ => return e,
        };
        let from = self.header.from.tar;
        let tap = self.old.seg.get_mut();
        if tap.hash.is_none() {
            return e;
        }
        let rest = (from.size + 1).saturating_sub(tap.pos);
        if io::copy(&mut tap.by_ref().take(rest), &mut io::sink()).is_err() {
            return e;
        }
        let (size, input) = (tap.pos, tap.hash.take().map(BackgroundHasher::finish));
        if size == from.size && input.is_some_and(|h| h.matches(&from)) {
            return e;
        }
        let not_base = self.not_the_base(size, input, size > from.size);
        self.wrong_base(format!(
            "{not_base}, and the patch cannot be followed over it: {reason}"
        ))
    }

    /// "the old tar is not <from id> (expected …; got …)" for an input of
    /// `size` bytes hashed as `input`; `stopped`: reading stopped one byte
    /// past the from-size, so only that much is known.
    fn not_the_base(&self, size: u64, input: Option<Hashed>, stopped: bool) -> String {
        let from = self.header.from.tar;
        // Expected and got in the digest that was computed.
        let (algo, want, got) = match input {
            Some(Hashed {
                sha256: Some(s), ..
            }) => ("sha256", from.sha256_hex(), hex::encode(s)),
            Some(Hashed { md5: Some(m), .. }) => ("md5", from.md5_hex(), hex::encode(m)),
            _ => ("md5", from.md5_hex(), "not computed".into()),
        };
        let got = if stopped {
            format!("more than {} bytes", from.size)
        } else {
            format!("{size} bytes, {algo} {got}")
        };
        format!(
            "the old tar is not {} (expected {} bytes, {algo} {want}; got {got})",
            self.header.from.id, from.size
        )
    }

    /// Produce output until `buf` holds at least `want` unread bytes or the
    /// stream is verified. Read bytes are dropped first; pieces accumulate,
    /// so a caller that asks for [`CHUNK`] gets few, large writes. While a
    /// member deflates on a deflate thread, production goes on behind it
    /// until [`Held::full`]; the stream is verified only once nothing is
    /// held.
    fn fill(&mut self, want: usize) -> Result<()> {
        if self.buf_pos >= self.buf.len() {
            self.buf.clear();
            self.buf_pos = 0;
        }
        loop {
            let wait =
                !self.held.is_empty() && (self.held.full() || matches!(self.state, State::Verify));
            if let Err(e) = self.release(wait) {
                return Err(self.blame(e));
            }
            if self.buf.len() - self.buf_pos >= want || self.report.is_some() {
                return Ok(());
            }
            if wait {
                continue;
            }
            self.step().map_err(|e| self.blame(e))?;
        }
    }
}

impl<R: Read> Read for PatchReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(m) = &self.failed {
            return Err(io::Error::other(m.clone()));
        }
        if out.is_empty() {
            return Ok(0);
        }
        if let Err(e) = self.fill(1) {
            self.failed = Some(e.to_string());
            return Err(io::Error::other(e));
        }
        let n = out.len().min(self.buf.len() - self.buf_pos);
        out[..n].copy_from_slice(&self.buf[self.buf_pos..self.buf_pos + n]);
        self.buf_pos += n;
        Ok(n)
    }
}

/// Apply the patch at `path` to the old tar `old`, writing the new tar to
/// `new`; verified as [`PatchReader`] is. `new_name` names `new` in errors.
pub fn apply(
    path: &Path,
    old: impl Read,
    new: &mut impl Write,
    new_name: &Path,
) -> Result<ApplyReport> {
    let mut r = PatchReader::open(path, old)?;
    loop {
        r.fill(CHUNK)?;
        if r.buf_pos < r.buf.len() {
            new.write_all(&r.buf[r.buf_pos..])
                .map_err(|e| Error::io("write new tar to", new_name, e))?;
            r.buf_pos = r.buf.len();
        } else {
            break;
        }
    }
    new.flush()
        .map_err(|e| Error::io("write new tar to", new_name, e))?;
    r.finish()
}
