//! The deterministic tar writer of a dist (docs/design.md §2): POSIX ustar headers,
//! with PAX extended headers (`x`) only where ustar cannot hold a value —
//! long or non-UTF-8-over-100-byte paths and link targets, big sizes, ids and
//! times — and for extended attributes (`SCHILY.xattr.<name>`, as GNU tar
//! `--xattrs` writes them). GNU tar and bsdtar read it.
//!
//! Invariants:
//! - the bytes depend only on the members given (no clock, no user names:
//!   uname/gname stay empty so owners are numeric everywhere);
//! - a member's data is exactly its declared size (a source that grows or
//!   shrinks while being read is an error, never a silently bad archive);
//! - the archive ends with two zero blocks, padded to a 10240-byte record
//!   as GNU tar does.

use std::io::{self, Read, Write};

use crate::format::archive::member::MemberMeta;
use crate::format::manifest::Kind;

/// Tar block size.
pub const BLOCK: usize = 512;
/// GNU tar's default record size (blocking factor 20).
pub const RECORD: u64 = 10240;

/// Largest value a 7-digit octal field (mode/uid/gid/devs) holds.
const MAX_OCTAL7: u64 = 0o7777777;
/// Largest value an 11-digit octal field (size/mtime) holds.
const MAX_OCTAL11: u64 = 0o77777777777;

/// Streams members into a tar.
pub struct TarWriter<W: Write> {
    out: W,
    written: u64,
}

/// Append one PAX record (`"<len> key=value\n"`, the length counting itself).
fn pax_record(buf: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    buf.extend_from_slice(len.to_string().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(key);
    buf.push(b'=');
    buf.extend_from_slice(value);
    buf.push(b'\n');
}

/// Write `v` as zero-padded octal into `field`, NUL-terminated.
fn octal(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

fn checksum(h: &mut [u8; BLOCK]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    octal(&mut h[148..155], u64::from(sum));
    h[155] = b' ';
}

/// Fill a ustar header block.
#[allow(clippy::too_many_arguments)]
fn ustar_block(
    name: &[u8],
    typeflag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    link: &[u8],
    dev: (u32, u32),
) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    // name (100) and prefix (155): split at a '/' when the whole name does not fit.
    if name.len() <= 100 {
        h[..name.len()].copy_from_slice(name);
    } else if let Some(split) = (0..name.len())
        .rev()
        .find(|&i| name[i] == b'/' && i <= 155 && name.len() - i - 1 <= 100 && i > 0)
    {
        h[345..345 + split].copy_from_slice(&name[..split]);
        h[..name.len() - split - 1].copy_from_slice(&name[split + 1..]);
    } else {
        // Only reached when a PAX 'path' record carries the real name.
        h[..100].copy_from_slice(&name[..100]);
    }
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], uid.min(MAX_OCTAL7));
    octal(&mut h[116..124], gid.min(MAX_OCTAL7));
    octal(&mut h[124..136], size.min(MAX_OCTAL11));
    octal(&mut h[136..148], mtime.min(MAX_OCTAL11));
    h[156] = typeflag;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], u64::from(dev.0).min(MAX_OCTAL7));
    octal(&mut h[337..345], u64::from(dev.1).min(MAX_OCTAL7));
    checksum(&mut h);
    h
}

fn typeflag(kind: Kind) -> u8 {
    match kind {
        Kind::File => b'0',
        Kind::Hardlink => b'1',
        Kind::Symlink => b'2',
        Kind::Char => b'3',
        Kind::Block => b'4',
        Kind::Dir => b'5',
        Kind::Fifo => b'6',
    }
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        TarWriter { out, written: 0 }
    }

    /// Bytes of tar written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.put(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    /// Append a member, reading exactly `m.size` bytes of data from `data`.
    /// The member is described as [`member::parse`](super::member::parse)
    /// reads it back: its path without a trailing `/` (a directory gets one
    /// added), a size of 0 for everything but regular files, a hard link's
    /// target as the member name it points to.
    pub fn append(&mut self, m: &MemberMeta, data: impl Read) -> io::Result<()> {
        let mut name = m.path.clone();
        if m.kind == Kind::Dir {
            name.push(b'/');
        }
        let link = m.link.as_deref().unwrap_or_default();
        let mut pax = Vec::new();
        let binary = std::str::from_utf8(&name).is_err() || std::str::from_utf8(link).is_err();
        let path_fits = name.len() <= 100
            || (name.len() <= 256
                && (0..name.len())
                    .any(|i| name[i] == b'/' && i > 0 && i <= 155 && name.len() - i - 1 <= 100));
        if binary && (!path_fits || link.len() > 100) {
            pax_record(&mut pax, b"hdrcharset", b"BINARY");
        }
        if !path_fits {
            pax_record(&mut pax, b"path", &name);
        }
        if link.len() > 100 {
            pax_record(&mut pax, b"linkpath", link);
        }
        if m.size > MAX_OCTAL11 {
            pax_record(&mut pax, b"size", m.size.to_string().as_bytes());
        }
        if m.uid > MAX_OCTAL7 {
            pax_record(&mut pax, b"uid", m.uid.to_string().as_bytes());
        }
        if m.gid > MAX_OCTAL7 {
            pax_record(&mut pax, b"gid", m.gid.to_string().as_bytes());
        }
        let mtime = u64::try_from(m.mtime).unwrap_or(0);
        if m.mtime < 0 || mtime > MAX_OCTAL11 {
            pax_record(&mut pax, b"mtime", m.mtime.to_string().as_bytes());
        }
        for (k, v) in &m.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k.as_bytes());
            pax_record(&mut pax, &key, v);
        }
        if !pax.is_empty() {
            let base = name
                .split(|&c| c == b'/')
                .rfind(|c| !c.is_empty())
                .unwrap_or(b"x");
            let mut pname = b"PaxHeaders/".to_vec();
            pname.extend_from_slice(&base[..base.len().min(88)]);
            let h = ustar_block(&pname, b'x', 0o644, 0, 0, pax.len() as u64, 0, b"", (0, 0));
            self.put(&h)?;
            self.put(&pax)?;
            self.pad(pax.len() as u64)?;
        }
        let dev = m.dev.unwrap_or((0, 0));
        let h = ustar_block(
            &name,
            typeflag(m.kind),
            m.mode & 0o7777,
            m.uid,
            m.gid,
            m.size,
            mtime,
            link,
            dev,
        );
        self.put(&h)?;
        if m.size > 0 {
            let n = io::copy(&mut data.take(m.size), &mut self.out)?;
            self.written += n;
            if n != m.size {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("expected {} bytes of data, got {n}", m.size),
                ));
            }
            self.pad(m.size)?;
        }
        Ok(())
    }

    /// Write the end-of-archive blocks and record padding; return the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.put(&[0u8; 2 * BLOCK])?;
        let rem = self.written % RECORD;
        if rem != 0 {
            let zeros = vec![0u8; (RECORD - rem) as usize];
            self.put(&zeros)?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn pax_record_lengths_count_themselves() {
        for n in [0usize, 1, 5, 90, 95, 96, 97, 98, 990, 995, 9990] {
            let mut b = Vec::new();
            pax_record(&mut b, b"path", &vec![b'a'; n]);
            let (len, _) = std::str::from_utf8(&b).unwrap().split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), b.len(), "value {n}");
        }
    }

    #[test]
    fn tar_crate_reads_what_we_write() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(120));
        let mut x = BTreeMap::new();
        // The tar crate splits PAX records on newlines, so no \n here; GNU tar
        // reads binary values in the integration tests.
        x.insert("user.k".to_string(), b"v\0w".to_vec());
        let mut w = TarWriter::new(Vec::new());
        let m = MemberMeta {
            path: long.as_bytes().to_vec(),
            kind: Kind::File,
            mode: 0o4755,
            uid: 3_000_000,
            gid: 7,
            mtime: 1_700_000_000,
            size: 5,
            link: None,
            dev: None,
            xattrs: x.clone(),
        };
        w.append(&m, &b"hello"[..]).unwrap();
        let out = w.finish().unwrap();
        assert_eq!(out.len() as u64 % RECORD, 0);
        let mut ar = tar::Archive::new(&out[..]);
        let mut e = ar.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(e.path_bytes().as_ref(), long.as_bytes());
        assert_eq!(e.header().mode().unwrap(), 0o4755);
        let pax: Vec<(String, Vec<u8>)> = e
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                (r.key().unwrap().to_string(), r.value_bytes().to_vec())
            })
            .collect();
        assert!(pax.contains(&("uid".into(), b"3000000".to_vec())));
        assert!(pax.contains(&("SCHILY.xattr.user.k".into(), b"v\0w".to_vec())));
        let mut s = String::new();
        e.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
    }

    #[test]
    fn short_data_is_an_error() {
        let mut w = TarWriter::new(Vec::new());
        let m = MemberMeta {
            path: b"f".to_vec(),
            kind: Kind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: 10,
            link: None,
            dev: None,
            xattrs: BTreeMap::new(),
        };
        assert!(w.append(&m, &b"short"[..]).is_err());
    }
}
