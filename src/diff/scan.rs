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
//! hash then stands in for the bytes when a copy is confirmed. On the bench
//! pair this keeps 786 MB of identical files out of the temporary files.
//!
//! Invariant: the temporary file holds the uncompressed stream whose
//! digests are reported, except the data of members marked not
//! [`spooled`](MemberInfo::spooled) (a hole, never read), and every member
//! range lies inside it. A recorded size that differs from the stream's is
//! an error naming the dist; gzip's CRC-32 and length, checked at the end of
//! every read, vouch that the bytes are the ones the build compressed.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::diff::version_key::version_key;
use crate::error::{Error, IoContext, Result};
use crate::format::archive::segment::{Item, Segmenter};
use crate::format::dist::{DIST_MEMBER, MANIFEST_MEMBER};
use crate::format::manifest::{Kind, Manifest};
use crate::util::digest::{Digests, Hasher, Sha256};
use crate::util::readahead::ReadAhead;

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
        // bench pair's 11,682 identical pairs (perf, session 8).
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

/// Where the two scans of a diff swap MANIFESTs: each leaves its own (or
/// `None`: no MANIFEST, or it failed) and then waits for the other's.
#[derive(Default)]
struct Meeting {
    /// Old's and new's, once left.
    slots: Mutex<[Option<Option<Arc<Manifest>>>; 2]>,
    left: Condvar,
}

impl Meeting {
    fn slot(role: Role) -> usize {
        match role {
            Role::Old => 0,
            Role::New => 1,
        }
    }

    fn leave(&self, role: Role, mine: Option<Arc<Manifest>>) {
        let mut s = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        s[Self::slot(role)].get_or_insert(mine);
        self.left.notify_all();
    }

    fn wait_for_other(&self, role: Role) -> Option<Arc<Manifest>> {
        let other = 1 - Self::slot(role);
        let mut s = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        while s[other].is_none() {
            s = self.left.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        s[other].clone().flatten()
    }
}

/// One scan's side of the [`Meeting`]; leaves `None` if dropped before it
/// swapped, so the other scan never waits for a failed one.
struct Turn<'a> {
    meeting: &'a Meeting,
    role: Role,
    swapped: bool,
}

impl Turn<'_> {
    fn swap(&mut self, mine: Option<Arc<Manifest>>) -> Option<Arc<Manifest>> {
        self.swapped = true;
        self.meeting.leave(self.role, mine);
        self.meeting.wait_for_other(self.role)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if !self.swapped {
            self.meeting.leave(self.role, None);
        }
    }
}

/// A file both MANIFESTs list identical, as one scan must find it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Expected {
    size: u64,
    sha256: [u8; 32],
    /// Write its data to the temporary file anyway (old side: it may be
    /// the diff base of a new member paired by version-stripped name).
    spool: bool,
}

/// The files `old` and `new` both list under the same member name with the
/// same size and SHA-256, by member name, as the scan of `role` treats them.
///
/// Pairing ([`crate::diff::pairing`]) takes the old member of the same
/// name for a new member that has one, so the old copy of an identical file
/// is only ever a diff base for a new member whose name the old dist lacks
/// and whose version-stripped name is the same: those old copies are spooled.
fn identical_files(old: &Manifest, new: &Manifest, role: Role) -> HashMap<Vec<u8>, Expected> {
    // Tar names of directories may end in '/': both spellings count.
    let names = |m: &Manifest| -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        for e in m.entries() {
            let name = e.member_name();
            if e.kind == Kind::Dir {
                let mut slash = name.clone();
                slash.push(b'/');
                v.push(slash);
            }
            v.push(name);
        }
        v
    };
    let old_names: HashSet<Vec<u8>> = names(old).into_iter().collect();
    let new_only_keys: HashSet<Vec<u8>> = match role {
        Role::Old => names(new)
            .iter()
            .filter(|n| !old_names.contains(*n))
            .map(|n| version_key(n))
            .collect(),
        Role::New => HashSet::new(),
    };
    let mut out = HashMap::new();
    for e in new.entries() {
        let (Some(o), Some(sha256)) = (old.get(&e.path), e.sha256) else {
            continue;
        };
        let same = e.kind == Kind::File
            && o.kind == Kind::File
            && e.size > 0
            && o.size == e.size
            && o.sha256 == e.sha256
            && o.critical == e.critical;
        if !same {
            continue;
        }
        let name = e.member_name();
        let spool = role == Role::Old && new_only_keys.contains(&version_key(&name));
        out.insert(
            name,
            Expected {
                size: e.size,
                sha256,
                spool,
            },
        );
    }
    out
}

/// Where a scanned stream's digests come from.
enum Digesting {
    /// The dist's tar record; the stream is only counted.
    Recorded(Digests),
    /// No record: every byte is hashed.
    Hashing(Box<Hasher>),
}

/// Copies everything read through it into the temporary file, counting it
/// and, when there is no recorded digest to use, hashing it. While
/// `skipping`, bytes are counted and hashed but not written: the file gets a
/// hole there.
struct Tee<R> {
    r: R,
    w: BufWriter<File>,
    read: u64,
    digesting: Digesting,
    skipping: bool,
    /// Bytes skipped since the last write.
    hole: u64,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.r.read(buf)?;
        if self.skipping {
            self.hole += n as u64;
        } else if n > 0 {
            self.close_hole()?;
            self.w.write_all(&buf[..n])?;
        }
        self.read += n as u64;
        if let Digesting::Hashing(h) = &mut self.digesting {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

impl<R> Tee<R> {
    /// Move the write position past the bytes skipped.
    fn close_hole(&mut self) -> io::Result<()> {
        if self.hole > 0 {
            let by = i64::try_from(self.hole).map_err(io::Error::other)?;
            self.w.seek(SeekFrom::Current(by))?;
            self.hole = 0;
        }
        Ok(())
    }
}

/// MANIFESTs longer than this are not read for identical files (the scan
/// then keeps every member's data).
const MAX_MANIFEST_SWAP: u64 = 64 << 20;

/// Gunzip and segment the dist at `path`, the `role` side of a diff.
fn scan(path: &Path, role: Role, meeting: &Meeting) -> Result<Scanned> {
    let mut turn = Turn {
        meeting,
        role,
        swapped: false,
    };
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
    let mut seg = Segmenter::new(tee, path);
    let mut members: Vec<MemberInfo> = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut own_manifest = None;
    let mut expected = HashMap::new();
    let mut unspooled = 0;
    let trailer;
    loop {
        let item = seg.next_item().map_err(|e| gunzip_error(e, path))?;
        let m = match item {
            Some(Item::Member(m)) => m,
            Some(Item::Trailer(t)) => {
                trailer = (seg.position() - t.len() as u64, t.len() as u64);
                break;
            }
            None => unreachable!("the segmenter ends with a trailer"),
        };
        // DIST and MANIFEST come first; past them, swap MANIFESTs.
        let k = members.len();
        let head = (k == 0 && m.path == DIST_MEMBER.as_bytes())
            || (k == 1 && m.path == MANIFEST_MEMBER.as_bytes());
        if !head && !turn.swapped {
            let mine = own_manifest.take().map(Arc::new);
            let theirs = turn.swap(mine.clone());
            expected = match (role, mine.as_deref(), theirs.as_deref()) {
                (Role::Old, Some(o), Some(n)) | (Role::New, Some(n), Some(o)) => {
                    identical_files(o, n, role)
                }
                _ => HashMap::new(),
            };
        }
        let expect = expected.remove(&m.path);
        if let Some(e) = &expect {
            if !m.is_file() || m.size != e.size {
                return Err(not_as_listed(
                    path,
                    &m.path,
                    &format!(
                        "the tar holds {} bytes of type '{}', MANIFEST lists a {}-byte file",
                        m.size,
                        std::ascii::escape_default(m.typeflag),
                        e.size
                    ),
                ));
            }
            seg.get_mut().skipping = !e.spool;
        }
        let mut sha = expect.map(|_| Sha256::new());
        let mut text = (k == 1 && head && m.size <= MAX_MANIFEST_SWAP).then(Vec::new);
        let mut h = FastHash::new();
        let mut data = seg.data();
        loop {
            let n = data
                .read(&mut buf)
                .map_err(|e| gunzip_error(Error::io("read", path, e), path))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            if let Some(s) = &mut sha {
                s.update(&buf[..n]);
            }
            if let Some(t) = &mut text {
                t.extend_from_slice(&buf[..n]);
            }
        }
        seg.get_mut().skipping = false;
        let sha256 = sha.map(Sha256::finalize);
        if let (Some(e), Some(got)) = (&expect, sha256) {
            if got != e.sha256 {
                return Err(not_as_listed(
                    path,
                    &m.path,
                    "its SHA-256 is not the one MANIFEST lists",
                ));
            }
        }
        if let Some(t) = text {
            // A MANIFEST that does not parse only means no files are left out.
            own_manifest = Manifest::parse(path, &t).ok();
        }
        let spooled = expect.is_none_or(|e| e.spool);
        if !spooled {
            unspooled += m.size;
        }
        let pad = seg.finish_member().map_err(|e| gunzip_error(e, path))?;
        let header_len = u32::try_from(m.header.len()).expect("segmenter caps headers");
        members.push(MemberInfo {
            offset: m.offset,
            header_len,
            size: m.size,
            pad_zero: pad.iter().all(|&b| b == 0),
            path: m.path,
            typeflag: m.typeflag,
            hash: h.finish(),
            spooled,
            sha256,
        });
    }
    if let Some(name) = expected.keys().min() {
        return Err(not_as_listed(
            path,
            name,
            "MANIFEST lists it, but the tar holds no member of that name",
        ));
    }
    // The trailer was read to the end of the stream, where the gzip reader
    // checked its CRC-32 and length.
    let mut tee = seg.into_inner();
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
        file: tmp,
        members,
        trailer,
        digests,
        unspooled,
    })
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

/// A fast, streaming, chunking-independent 128-bit hash (two multiply-rotate
/// lanes over 16-byte blocks). Not cryptographic: it only proposes pairs.
struct FastHash {
    a: u64,
    b: u64,
    len: u64,
    carry: [u8; 16],
    carried: usize,
}

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;

impl FastHash {
    fn new() -> Self {
        FastHash {
            a: K1,
            b: K2,
            len: 0,
            carry: [0; 16],
            carried: 0,
        }
    }

    #[inline]
    fn block(&mut self, blk: &[u8]) {
        let x = u64::from_le_bytes(blk[..8].try_into().unwrap());
        let y = u64::from_le_bytes(blk[8..16].try_into().unwrap());
        self.a = (self.a ^ x).wrapping_mul(K1).rotate_left(29);
        self.b = (self.b ^ y).wrapping_mul(K2).rotate_left(31);
    }

    fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.carried > 0 {
            let n = (16 - self.carried).min(data.len());
            self.carry[self.carried..self.carried + n].copy_from_slice(&data[..n]);
            self.carried += n;
            data = &data[n..];
            if self.carried < 16 {
                return;
            }
            let c = self.carry;
            self.block(&c);
            self.carried = 0;
        }
        let mut blocks = data.chunks_exact(16);
        for blk in &mut blocks {
            self.block(blk);
        }
        let rest = blocks.remainder();
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carried = rest.len();
    }

    fn finish(mut self) -> u128 {
        let mut last = [0u8; 16];
        last[..self.carried].copy_from_slice(&self.carry[..self.carried]);
        self.block(&last);
        let fin = |v: u64, l: u64| {
            let mut z = v ^ l;
            z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
            z = (z ^ (z >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
            z ^ (z >> 33)
        };
        (u128::from(fin(self.a, self.len)) << 64) | u128::from(fin(self.b ^ self.a, self.len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::Entry;

    fn file(path: &str, size: u64, sha: u8, critical: bool) -> Entry {
        let mut e = Entry::new(path.as_bytes().to_vec(), Kind::File);
        e.size = size;
        e.sha256 = Some([sha; 32]);
        e.critical = critical;
        e
    }

    fn dir(path: &str) -> Entry {
        Entry::new(path.as_bytes().to_vec(), Kind::Dir)
    }

    #[test]
    fn identical_files_are_left_out_unless_a_new_name_may_pair_with_them() {
        let old = Manifest::new(vec![
            dir("lib"),
            file("lib/libc.so.6", 10, 1, true),
            file("lib/libfoo.so.1", 20, 2, false),
            file("lib/libbar.so.1", 30, 3, false),
            file("bin/same", 40, 4, false),
            file("bin/changed", 50, 5, false),
            file("bin/resized", 60, 6, false),
            file("bin/now-critical", 70, 7, false),
            file("bin/empty", 0, 0, false),
            file("usr/python3.11", 80, 8, false),
        ])
        .unwrap();
        let new = Manifest::new(vec![
            dir("lib"),
            file("lib/libc.so.6", 10, 1, true),
            file("lib/libfoo.so.1", 20, 2, false),
            // New beside an identical libfoo.so.1: may pair with it.
            file("lib/libfoo.so.2", 21, 9, false),
            // Replaces libbar.so.1, whose old copy is still a candidate base
            // but has no identical twin.
            file("lib/libbar.so.2", 31, 3, false),
            file("bin/same", 40, 4, false),
            file("bin/changed", 50, 15, false),
            file("bin/resized", 61, 6, false),
            file("bin/now-critical", 70, 7, true),
            file("bin/empty", 0, 0, false),
            file("usr/python3.11", 80, 8, false),
            // A new directory whose version-stripped name is the file's.
            dir("usr/python3.12"),
        ])
        .unwrap();
        let found = |role| {
            let mut v: Vec<(String, bool)> = identical_files(&old, &new, role)
                .into_iter()
                .map(|(k, e)| (String::from_utf8(k).unwrap(), e.spool))
                .collect();
            v.sort();
            v
        };
        let s = |p: &str, spool| (p.to_string(), spool);
        assert_eq!(
            found(Role::New),
            vec![
                s("bin/same", false),
                s("lib/libc.so.6.new", false),
                s("lib/libfoo.so.1", false),
                s("usr/python3.11", false),
            ]
        );
        assert_eq!(
            found(Role::Old),
            vec![
                s("bin/same", false),
                s("lib/libc.so.6.new", false),
                s("lib/libfoo.so.1", true),
                s("usr/python3.11", true),
            ]
        );
        let e = identical_files(&old, &new, Role::Old)[&b"bin/same"[..]];
        assert_eq!((e.size, e.sha256), (40, [4; 32]));
    }

    #[test]
    fn fast_hash_ignores_chunking() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 13 % 251) as u8).collect();
        let mut one = FastHash::new();
        one.update(&data);
        let one = one.finish();
        for step in [1, 7, 15, 16, 17, 1000] {
            let mut h = FastHash::new();
            for c in data.chunks(step) {
                h.update(c);
            }
            assert_eq!(h.finish(), one, "step {step}");
        }
        let mut other = FastHash::new();
        other.update(&data[..9_999]);
        assert_ne!(other.finish(), one);
        let mut z1 = FastHash::new();
        z1.update(&[0; 15]);
        let mut z2 = FastHash::new();
        z2.update(&[0; 16]);
        assert_ne!(z1.finish(), z2.finish());
    }
}
