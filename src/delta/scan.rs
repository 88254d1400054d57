//! First step of `sysup diff`: gunzip a dist into an unlinked temporary file
//! while segmenting it, so later steps can `pread` any member's bytes without
//! holding the tar in memory.
//!
//! For every member it records the framing (offset, header length, data
//! size, whether the padding is zeros), its path and typeflag, and a fast
//! 128-bit content hash used only to *propose* identical-content pairs (a
//! proposal is confirmed byte for byte with [`Scanned::same_data`] before a
//! patch relies on it). The whole stream's size, MD5 and SHA-256 become the
//! patch header's from/to digests: taken from the dist's tar record when
//! `sysup build` left one (the build hashed those very bytes), computed on
//! the way otherwise.
//!
//! Invariant: the temporary file holds exactly the uncompressed stream whose
//! digests are reported, and every member range lies inside it. A recorded
//! size that differs from the stream's is an error naming the dist; gzip's
//! CRC-32 and length, checked at the end of every read, vouch that the
//! bytes are the ones the build compressed.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::archive::segment::{Item, Segmenter};
use crate::digest::{Digests, Hasher};
use crate::error::{Error, IoContext, Result};
use crate::readahead::ReadAhead;

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
        let mut v = vec![0u8; len];
        self.read_at(m.data_offset() + pos, &mut v)?;
        Ok(v)
    }

    /// Whether member `a` here and member `b` of `other` hold identical data.
    pub fn same_data(&self, a: &MemberInfo, other: &Scanned, b: &MemberInfo) -> Result<bool> {
        if a.size != b.size || a.hash != b.hash {
            return Ok(false);
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
}

/// Where a scanned stream's digests come from.
enum Digesting {
    /// The dist's tar record; the stream is only counted.
    Recorded(Digests),
    /// No record: every byte is hashed.
    Hashing(Box<Hasher>),
}

/// Copies everything read through it into a writer, counting it and, when
/// there is no recorded digest to use, hashing it.
struct Tee<R, W> {
    r: R,
    w: W,
    read: u64,
    digesting: Digesting,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.r.read(buf)?;
        self.w.write_all(&buf[..n])?;
        self.read += n as u64;
        if let Digesting::Hashing(h) = &mut self.digesting {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Gunzip and segment the dist at `path`.
pub fn scan(path: &Path) -> Result<Scanned> {
    let digesting = match crate::dist::read_tar_record(path)? {
        Some(d) => Digesting::Recorded(d),
        None => Digesting::Hashing(Box::default()),
    };
    // Inflating on a thread of its own: the two dists are scanned at once,
    // and with four threads on the cores, the one that finishes first no
    // longer leaves a core idle while the other inflates alone.
    let gz = ReadAhead::spawn("sysup-gunzip", crate::dist::open_gz(path)?)
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
    };
    let mut seg = Segmenter::new(tee, path);
    let mut members = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let trailer;
    loop {
        let item = seg.next_item().map_err(|e| gunzip_error(e, path))?;
        match item {
            Some(Item::Member(m)) => {
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
                });
            }
            Some(Item::Trailer(t)) => {
                trailer = (seg.position() - t.len() as u64, t.len() as u64);
                break;
            }
            None => unreachable!("the segmenter ends with a trailer"),
        }
    }
    // The trailer was read to the end of the stream, where the gzip reader
    // checked its CRC-32 and length.
    let Tee {
        mut w,
        read,
        digesting,
        ..
    } = seg.into_inner();
    w.flush().ctx("write a temporary file for", path)?;
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
    })
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
