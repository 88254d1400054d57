//! First step of `sysup diff`: gunzip both dists into unlinked temporary
//! files while segmenting them, so later steps can `pread` any member's
//! bytes without holding a tar in memory.
//!
//! For every member it records the framing (offset, header length, data
//! size, whether the padding is zeros), its path and typeflag, and a fast
//! 128-bit content hash used only to *propose* identical-content pairs (a
//! proposal is confirmed with [`Scanned::same_data`] before a patch relies
//! on it). The whole stream's size, MD5 and SHA-256 become the patch
//! header's from/to digests: taken from the dist's tar record when `sysup
//! build` left one (the build hashed those very bytes), computed on the way
//! otherwise.
//!
//! The two scans swap MANIFESTs (the second member of a dist) before any
//! file data streams by ([`scan_pair`]). A file both MANIFESTs list under
//! the same member name with the same size and SHA-256 is a copy in the
//! patch, so its data need not be written to the temporary file: the new
//! dist's copy never is, the old one's only when no new member could be
//! paired with it by version-stripped name (then it may be a diff base).
//! Every such file is SHA-256-hashed as it streams by and must match its
//! MANIFEST entry, or the scan fails naming the dist and the member; the
//! hash then stands in for the bytes when a copy is confirmed. Why, and what
//! it saves on the bench pair: docs/decisions.md, "Identical files stay out
//! of the diff's temporary files".
//!
//! Invariant: the temporary file holds the uncompressed stream whose
//! digests are reported, except the data of members marked not
//! [`spooled`](MemberInfo::spooled) (a hole, never read), and every member
//! range lies inside it. A recorded size that differs from the stream's is
//! an error naming the dist; gzip's CRC-32 and length, checked at the end of
//! every read, vouch that the bytes are the ones the build compressed.

mod fast_hash;
mod swap;
mod tee;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::format::archive::segment::{Item, Member, Segmenter};
use crate::format::dist::{DIST_MEMBER, MANIFEST_MEMBER};
use crate::format::manifest::Manifest;
use crate::util::digest::{Digests, Sha256};
use crate::util::readahead::ReadAhead;
use fast_hash::FastHash;
use swap::{identical_files, Expected, Meeting, Turn};
use tee::{Digesting, Tee};

/// One member of a scanned tar.
#[derive(Clone, Debug)]
pub struct MemberInfo {
    pub offset: u64,
    pub header_len: u32,
    pub size: u64,
    /// The padding after the data is all zeros.
    pub pad_zero: bool,
    pub path: Vec<u8>,
    pub typeflag: u8,
    /// Fast content hash of the data (proposes identical pairs only).
    pub hash: u128,
    /// The data is in the temporary file. When not, the member is a file
    /// both dists hold identical and `sha256` is set.
    pub spooled: bool,
    /// SHA-256 of the data, for the members the other dist's MANIFEST lists
    /// identical (checked against this dist's MANIFEST as it was read).
    pub sha256: Option<[u8; 32]>,
}

impl MemberInfo {
    pub fn data_offset(&self) -> u64 {
        self.offset + u64::from(self.header_len)
    }
}

/// A dist's uncompressed tar on disk, with its member table.
pub struct Scanned {
    /// The dist file it came from (for messages).
    pub source: PathBuf,
    /// The uncompressed tar (unlinked; gone when dropped).
    pub file: File,
    pub members: Vec<MemberInfo>,
    /// Offset and length of the trailer.
    pub trailer: (u64, u64),
    pub digests: Digests,
    /// Data bytes not written to `file` (members not spooled).
    pub unspooled: u64,
}

impl Scanned {
    /// Read `buf.len()` bytes at `offset` of the uncompressed tar.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.file
            .read_exact_at(buf, offset)
            .ctx("read back the uncompressed tar of", &self.source)
    }

    /// A member's raw header bytes.
    pub fn header(&self, m: &MemberInfo) -> Result<Vec<u8>> {
        let mut h = vec![0u8; m.header_len as usize];
        self.read_at(m.offset, &mut h)?;
        Ok(h)
    }

    /// `len` bytes of a member's data from `pos`.
    pub fn data(&self, m: &MemberInfo, pos: u64, len: usize) -> Result<Vec<u8>> {
        self.check_spooled(m)?;
        let mut v = vec![0u8; len];
        self.read_at(m.data_offset() + pos, &mut v)?;
        Ok(v)
    }

    /// An error unless `m`'s data is in the temporary file. (Generation
    /// only ever copies members that are not: reaching this is a bug.)
    pub fn check_spooled(&self, m: &MemberInfo) -> Result<()> {
        if m.spooled {
            return Ok(());
        }
        Err(Error::Tar {
            path: self.source.clone(),
            reason: format!(
                "internal error: the data of '{}' was not kept, yet it is needed",
                String::from_utf8_lossy(&m.path)
            ),
        })
    }

    /// Whether member `a` here and member `b` of `other` hold identical data:
    /// byte for byte, or by SHA-256 where the scan hashed a member.
    pub fn same_data(&self, a: &MemberInfo, other: &Scanned, b: &MemberInfo) -> Result<bool> {
        if a.size != b.size || a.hash != b.hash {
            return Ok(false);
        }
        if a.sha256.is_some() || b.sha256.is_some() {
            return Ok(self.sha256(a)? == other.sha256(b)?);
        }
        // Buffers no bigger than the member: most are a few KiB, and zeroing
        // two 1 MiB buffers per pair was most of the CPU of confirming the
        // bench pair's 11,682 identical pairs (by `perf`).
        let cap = a.size.min(1 << 20) as usize;
        let (mut x, mut y) = (vec![0u8; cap], vec![0u8; cap]);
        let mut pos = 0;
        while pos < a.size {
            let n = (a.size - pos).min(x.len() as u64) as usize;
            self.read_at(a.data_offset() + pos, &mut x[..n])?;
            other.read_at(b.data_offset() + pos, &mut y[..n])?;
            if x[..n] != y[..n] {
                return Ok(false);
            }
            pos += n as u64;
        }
        Ok(true)
    }

    /// A member's SHA-256: the one taken as it streamed by, or hashed now.
    fn sha256(&self, m: &MemberInfo) -> Result<[u8; 32]> {
        if let Some(s) = m.sha256 {
            return Ok(s);
        }
        let mut h = Sha256::new();
        self.each_chunk(m, |c| h.update(c))?;
        Ok(h.finalize())
    }

    /// Hand a member's data to `f` in order, in chunks of at most 1 MiB.
    pub fn each_chunk(&self, m: &MemberInfo, mut f: impl FnMut(&[u8])) -> Result<()> {
        self.check_spooled(m)?;
        let mut buf = vec![0u8; m.size.min(1 << 20) as usize];
        let mut pos = 0;
        while pos < m.size {
            let n = (m.size - pos).min(buf.len() as u64) as usize;
            self.read_at(m.data_offset() + pos, &mut buf[..n])?;
            f(&buf[..n]);
            pos += n as u64;
        }
        Ok(())
    }
}

/// Which dist of a diff a scan reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Old,
    New,
}

/// Scan the two dists of a diff at once, each on a thread of its own
/// (plus one gunzip thread each), swapping MANIFESTs to leave identical
/// files out of the temporary files.
pub fn scan_pair(old: &Path, new: &Path) -> Result<(Scanned, Scanned)> {
    let meeting = Meeting::default();
    let (o, n) = std::thread::scope(|s| {
        let o = s.spawn(|| scan(old, Role::Old, &meeting));
        let n = scan(new, Role::New, &meeting);
        (o.join().expect("scan thread panicked"), n)
    });
    Ok((o?, n?))
}

/// MANIFESTs longer than this are not read for identical files (the scan
/// then keeps every member's data).
const MAX_MANIFEST_SWAP: u64 = 64 << 20;

/// Gunzip and segment the dist at `path`, the `role` side of a diff.
fn scan(path: &Path, role: Role, meeting: &Meeting) -> Result<Scanned> {
    let mut scan = Scan::start(path, role, meeting)?;
    let trailer = loop {
        let item = scan.seg.next_item().map_err(|e| gunzip_error(e, path))?;
        match item {
            Some(Item::Member(m)) => scan.member(m)?,
            Some(Item::Trailer(t)) => {
                break (scan.seg.position() - t.len() as u64, t.len() as u64);
            }
            None => unreachable!("the segmenter ends with a trailer"),
        }
    };
    scan.finish(trailer)
}

/// One dist's scan under way.
struct Scan<'a> {
    path: &'a Path,
    role: Role,
    turn: Turn<'a>,
    /// The temporary file (the tee writes to a clone of it).
    tmp: File,
    seg: Segmenter<Tee<ReadAhead>>,
    members: Vec<MemberInfo>,
    /// Read buffer for member data.
    buf: Vec<u8>,
    /// This dist's MANIFEST, until it is swapped.
    own_manifest: Option<Manifest>,
    /// Files both dists list identical, by member name, not met yet.
    expected: HashMap<Vec<u8>, Expected>,
    unspooled: u64,
}

/// What streamed by of one member's data.
struct DataSeen {
    hash: u128,
    sha256: Option<[u8; 32]>,
    /// The member's bytes, when it is the MANIFEST to swap.
    text: Option<Vec<u8>>,
}

impl<'a> Scan<'a> {
    /// Open the dist and the temporary file, and start gunzipping.
    fn start(path: &'a Path, role: Role, meeting: &'a Meeting) -> Result<Scan<'a>> {
        let turn = Turn::new(meeting, role);
        let digesting = match crate::format::dist::read_tar_record(path)? {
            Some(d) => Digesting::Recorded(d),
            None => Digesting::Hashing(Box::default()),
        };
        // Inflating on a thread of its own: the two dists are scanned at once,
        // and with four threads on the cores, the one that finishes first no
        // longer leaves a core idle while the other inflates alone.
        let gz = ReadAhead::spawn("sysup-gunzip", crate::format::dist::open_gz(path)?)
            .ctx("start a gunzip thread for", path)?;
        let tmp = tempfile::tempfile().ctx("create a temporary file for", path)?;
        let tee = Tee {
            r: gz,
            w: BufWriter::with_capacity(
                1 << 20,
                tmp.try_clone().ctx("open a temporary file for", path)?,
            ),
            read: 0,
            digesting,
            skipping: false,
            hole: 0,
        };
        Ok(Scan {
            path,
            role,
            turn,
            tmp,
            seg: Segmenter::new(tee, path),
            members: Vec::new(),
            buf: vec![0u8; 256 * 1024],
            own_manifest: None,
            expected: HashMap::new(),
            unspooled: 0,
        })
    }

    /// Record one member, reading its data through.
    fn member(&mut self, m: Member) -> Result<()> {
        // DIST and MANIFEST come first; past them, swap MANIFESTs.
        let k = self.members.len();
        let head = (k == 0 && m.path == DIST_MEMBER.as_bytes())
            || (k == 1 && m.path == MANIFEST_MEMBER.as_bytes());
        if !head && !self.turn.swapped {
            self.swap_manifests();
        }
        let expect = self.expect(&m)?;
        let keep_text = k == 1 && head && m.size <= MAX_MANIFEST_SWAP;
        let seen = self.read_data(expect.is_some(), keep_text)?;
        self.seg.get_mut().skipping = false;
        if let (Some(e), Some(got)) = (&expect, seen.sha256) {
            if got != e.sha256 {
                return Err(not_as_listed(
                    self.path,
                    &m.path,
                    "its SHA-256 is not the one MANIFEST lists",
                ));
            }
        }
        if let Some(t) = seen.text {
            // A MANIFEST that does not parse only means no files are left out.
            self.own_manifest = Manifest::parse(self.path, &t).ok();
        }
        let spooled = expect.is_none_or(|e| e.spool);
        if !spooled {
            self.unspooled += m.size;
        }
        let pad = self
            .seg
            .finish_member()
            .map_err(|e| gunzip_error(e, self.path))?;
        let header_len = u32::try_from(m.header.len()).expect("segmenter caps headers");
        self.members.push(MemberInfo {
            offset: m.offset,
            header_len,
            size: m.size,
            pad_zero: pad.iter().all(|&b| b == 0),
            path: m.path,
            typeflag: m.typeflag,
            hash: seen.hash,
            spooled,
            sha256: seen.sha256,
        });
        Ok(())
    }

    /// Leave this dist's MANIFEST for the other scan, take the other's, and
    /// work out which files both hold identical.
    fn swap_manifests(&mut self) {
        let mine = self.own_manifest.take().map(Arc::new);
        let theirs = self.turn.swap(mine.clone());
        self.expected = match (self.role, mine.as_deref(), theirs.as_deref()) {
            (Role::Old, Some(o), Some(n)) | (Role::New, Some(n), Some(o)) => {
                identical_files(o, n, self.role)
            }
            _ => HashMap::new(),
        };
    }

    /// What both MANIFESTs say of `m`, if they list it identical: then it
    /// must be a file of the listed size, and its data is skipped unless
    /// it is to be spooled anyway.
    fn expect(&mut self, m: &Member) -> Result<Option<Expected>> {
        let expect = self.expected.remove(&m.path);
        if let Some(e) = &expect {
            if !m.is_file() || m.size != e.size {
                return Err(not_as_listed(
                    self.path,
                    &m.path,
                    &format!(
                        "the tar holds {} bytes of type '{}', MANIFEST lists a {}-byte file",
                        m.size,
                        std::ascii::escape_default(m.typeflag),
                        e.size
                    ),
                ));
            }
            self.seg.get_mut().skipping = !e.spool;
        }
        Ok(expect)
    }

    /// Read the current member's data through: its fast hash, its SHA-256
    /// when `sha256`, and its bytes when `keep_text`.
    fn read_data(&mut self, sha256: bool, keep_text: bool) -> Result<DataSeen> {
        let mut sha = sha256.then(Sha256::new);
        let mut text = keep_text.then(Vec::new);
        let mut h = FastHash::new();
        let mut data = self.seg.data();
        loop {
            let n = data
                .read(&mut self.buf)
                .map_err(|e| gunzip_error(Error::io("read", self.path, e), self.path))?;
            if n == 0 {
                break;
            }
            h.update(&self.buf[..n]);
            if let Some(s) = &mut sha {
                s.update(&self.buf[..n]);
            }
            if let Some(t) = &mut text {
                t.extend_from_slice(&self.buf[..n]);
            }
        }
        Ok(DataSeen {
            hash: h.finish(),
            sha256: sha.map(Sha256::finalize),
            text,
        })
    }

    /// After the trailer: check every identical file was met, flush the
    /// temporary file and settle the stream's digests.
    fn finish(self, trailer: (u64, u64)) -> Result<Scanned> {
        let path = self.path;
        if let Some(name) = self.expected.keys().min() {
            return Err(not_as_listed(
                path,
                name,
                "MANIFEST lists it, but the tar holds no member of that name",
            ));
        }
        // The trailer was read to the end of the stream, where the gzip reader
        // checked its CRC-32 and length.
        let mut tee = self.seg.into_inner();
        tee.close_hole()
            .and_then(|()| tee.w.flush())
            .ctx("write a temporary file for", path)?;
        let Tee {
            read, digesting, ..
        } = tee;
        let digests = match digesting {
            Digesting::Recorded(r) if r.size == read => r,
            Digesting::Recorded(r) => {
                return Err(Error::Tar {
                    path: path.to_path_buf(),
                    reason: format!(
                        "its gzip header records a {}-byte tar, but it holds {read} bytes",
                        r.size
                    ),
                })
            }
            Digesting::Hashing(h) => h.finish(),
        };
        Ok(Scanned {
            source: path.to_path_buf(),
            file: self.tmp,
            members: self.members,
            trailer,
            digests,
            unspooled: self.unspooled,
        })
    }
}

/// A member of a dist that is not what the dist's own MANIFEST says.
fn not_as_listed(path: &Path, member: &[u8], what: &str) -> Error {
    Error::Tar {
        path: path.to_path_buf(),
        reason: format!(
            "member '{}' does not match its MANIFEST entry: {what}",
            String::from_utf8_lossy(member)
        ),
    }
}

/// A gzip error surfaces as an I/O error from the segmenter; say which.
fn gunzip_error(e: Error, path: &Path) -> Error {
    match e {
        Error::Io { source, .. }
            if source.kind() == io::ErrorKind::InvalidInput
                || source.kind() == io::ErrorKind::InvalidData
                || source.kind() == io::ErrorKind::UnexpectedEof =>
        {
            Error::Tar {
                path: path.to_path_buf(),
                reason: format!("not a readable gzip stream: {source}"),
            }
        }
        e => e,
    }
}
