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
//!    computes faster, the output's by SHA-256). An input that can be read
//!    again from its file is hashed only when the output does not match
//!    or something failed: the verdict needs its digest then, and only
//!    then.
//!
//! Its parts: this file holds the reader's state, opening (header, section
//! digests, plan) and the `Read` side; `old` reads the old tar, `member` is
//! the member-by-member engine, `output` runs the steps and hands out the
//! bytes in order, `verify` ends the stream and says who is at fault.
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

mod member;
mod old;
mod out_hash;
mod output;
mod recode;
mod verify;

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::archive::segment::Segmenter;
use crate::format::patch::header::{corrupt, PatchHeader, SectionKind};
use crate::format::patch::record::{Keep, RecordError, RecordReader};
use crate::format::patch::section::{self, SectionReader};
use crate::format::patch::zeros::ZeroRunReader;
use crate::patch::held::Held;
use crate::patch::retain::Store;
use crate::util::digest::Digests;
use crate::util::hashing::{BackgroundHasher, Hashed};
use out_hash::OutHash;

/// Output produced per step (and the granularity of reads from sections).
const CHUNK: usize = 256 * 1024;
/// Output gathered for each write of [`apply_reader`]'s writer thread.
const WRITE_CHUNK: usize = CHUNK;
/// Most members a patch may describe on either side (bounds the plan's memory).
pub const MAX_MEMBERS: u64 = 1 << 22;

/// What a successful application read and wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApplyReport {
    /// Bytes of the old tar read: the header's from-size.
    pub input_size: u64,
    /// Size and digest of the old tar (MD5 or SHA-256: see
    /// [`BackgroundHasher::cheaper`]), equal to the header's from-digests; none
    /// when the input was trusted ([`PatchReader::trusting_input`]) or not
    /// hashed because it can be read again
    /// ([`PatchReader::rereadable_input`]).
    pub input: Option<Hashed>,
    /// The header's to-digests, which the new tar matched by size and
    /// SHA-256 (the strong one; its MD5 is the header's).
    pub output: Digests,
    /// Old bytes that had to be spilled to a temporary file.
    pub spilled: u64,
}

/// The old tar as read: counted and (unless trusted or readable again)
/// hashed, with its first bytes kept for messages.
struct Tap<R> {
    inner: R,
    /// Digest of the input; taken when the digests are read (at the end), or
    /// dropped when the input is trusted or can be read again.
    hash: Option<BackgroundHasher>,
    /// Where the input can be read again for a verdict, instead of hashing
    /// it as it streams ([`PatchReader::rereadable_input`]).
    reread: Option<Reread>,
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

/// The old tar's bytes in a file, from `start` on.
struct Reread {
    file: File,
    start: u64,
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
        /// Reference prediction: the member's controls, read up front.
        xref: Option<Box<member::Xref>>,
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
    /// The output's SHA-256, fed `buf` once read ([`out_hash`]).
    out: Option<OutHash>,
    /// Bytes of `buf` before this are hashed; those after are not yet.
    hash_from: usize,
    /// Bytes produced so far.
    produced: u64,
    /// Output handed out (from `buf_pos`), hashed from `hash_from` on once
    /// read; while something is held, also where output is produced into
    /// between steps.
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

/// Read the retention plan (one entry per old member) and the count of new
/// members from the head of the controls section, each checked against the
/// header and against what tars of the header's sizes can hold.
fn read_plan(
    ctrl: &mut RecordReader<SectionReader>,
    header: &PatchHeader,
    path: &Path,
) -> Result<(Vec<Keep>, u32)> {
    let bad = |reason: String| Error::Patch {
        path: path.to_path_buf(),
        reason,
    };
    let from_size = header.from.tar.size;
    let to_size = header.to.tar.size;

    let n_old = ctrl.varint().map_err(|e| record_err(path, "the plan", e))?;
    if n_old != u64::from(header.old_members) || n_old > MAX_MEMBERS || n_old > from_size / 512 {
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
    Ok((plan, n_new as u32))
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
        if header.version < 3 {
            ctrl = ctrl.without_xref();
        }
        if header.version < 4 {
            ctrl = ctrl.without_recode();
        }
        if header.version < 5 {
            ctrl = ctrl.without_rezip();
        }
        let (plan, n_new) = read_plan(&mut ctrl, &header, path)?;
        let tap = Tap {
            inner: old,
            hash: Some(BackgroundHasher::cheaper()),
            reread: None,
            pos: 0,
            head: [0; 2],
            head_len: 0,
        };
        Ok(PatchReader {
            path: path.to_path_buf(),
            old: OldStream {
                seg: Segmenter::new(tap, format!("old tar for {}", header.from.id))
                    .with_limit(header.from.tar.size),
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
            n_new,
            cur_new: 0,
            state: State::Member,
            out: Some(
                OutHash::spawn().map_err(|e| Error::io("start a hashing thread for", path, e))?,
            ),
            hash_from: 0,
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

    /// The old tar can also be read again from `file`, from byte `start`
    /// (a stdin redirected from a file): it is counted but not hashed as it
    /// streams. A result that matches the header's to-size and SHA-256 is
    /// the new tar whatever was read, so the input's digest adds nothing
    /// then; when something fails, the verdict (wrong base or corrupt patch)
    /// hashes the input from `file`, up to one byte past the from-size.
    /// Call before reading.
    pub fn rereadable_input(mut self, file: File, start: u64) -> Self {
        let tap = self.old.seg.get_mut();
        tap.hash = None;
        tap.reread = Some(Reread { file, start });
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

    /// Produce output until `buf` holds at least `want` unread bytes or the
    /// stream is verified. Read bytes are dropped first; pieces accumulate,
    /// so a caller that asks for [`CHUNK`] gets few, large writes. While a
    /// member deflates on a deflate thread, production goes on behind it
    /// until [`Held::full`]; the stream is verified only once nothing is
    /// held.
    fn fill(&mut self, want: usize) -> Result<()> {
        if self.buf_pos >= self.buf.len() {
            self.retire_buf();
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
    new: &mut (impl Write + Send),
    new_name: &Path,
) -> Result<ApplyReport> {
    apply_reader(PatchReader::open(path, old)?, new, new_name)
}

/// [`apply`] with a reader already opened (and configured: see
/// [`PatchReader::rereadable_input`]). The new tar is written on a thread
/// of its own, from the buffers the output's SHA-256 thread is given
/// ([`out_hash`]): the applier's thread only produces.
pub fn apply_reader(
    mut r: PatchReader<impl Read>,
    new: &mut (impl Write + Send),
    new_name: &Path,
) -> Result<ApplyReport> {
    let write_err = |e| Error::io("write new tar to", new_name, e);
    let Some(out) = r.out.as_mut() else {
        return r.finish();
    };
    let feed = out.writer();
    std::thread::scope(|s| {
        let writer = std::thread::Builder::new()
            .name("sysup-write".into())
            .spawn_scoped(s, move || feed.run(new))
            .map_err(write_err)?;
        let produced = r.produce_all();
        // Ends the writer's input if producing stopped early.
        r.out = None;
        let written = writer.join().expect("the writer thread panicked");
        match (produced, written) {
            (Err(e), _) => Err(e),
            // Also when production stopped because the writer failed.
            (Ok(()), Err(e)) => Err(write_err(e)),
            (Ok(()), Ok(())) => r.finish(),
        }
    })
}

impl<R: Read> PatchReader<R> {
    /// Produce the whole new tar, handing every buffer out (to the writer
    /// that [`apply_reader`] attached), until it is verified, production
    /// failed, or the writer did (then its own result says why).
    fn produce_all(&mut self) -> Result<()> {
        loop {
            self.fill(WRITE_CHUNK)?;
            if self.out.as_ref().is_some_and(OutHash::write_failed)
                || self.buf_pos == self.buf.len()
            {
                return Ok(());
            }
            self.buf_pos = self.buf.len();
        }
    }
}
