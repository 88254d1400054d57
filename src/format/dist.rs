//! Dists as files (docs/design.md §2): the `.sysup/` metadata members every dist
//! starts with — `DIST` (what this dist is), `MANIFEST`, optional `OBSOLETE`
//! and `upgrade` — and reading them back from the head of a `.tar.gz`
//! without decompressing the rest; and the *tar record*, the size, MD5 and
//! SHA-256 of the uncompressed tar that `sysup build` stores in the gzip
//! header (an extra subfield, [`TAR_RECORD_ID`]) so `sysup diff` need not
//! hash a dist again (docs/decisions.md, "Tar digests in the dist").
//!
//! Invariants: `.sysup/DIST` is the first member and `MANIFEST` the second;
//! metadata members are size-capped before they are read into memory, and
//! tar extension headers are capped by the segmenter, so a hostile dist
//! cannot make a reader allocate without bound; each metadata member
//! appears once; the id in DIST must match the file name when a file name
//! is given; a kernel's `[kernel]` directories pass the spec's own rules
//! ([`KernelDirs::checked`]) and are kept normalised; a tar record is only taken when its version and CRC-32 hold,
//! and a reader that takes it still checks the stream's length against it.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::format::archive::segment::{Item, Segmenter};
use crate::format::gz;
use crate::format::manifest::Manifest;
use crate::format::name::DistId;
use crate::format::spec::KernelDirs;
use crate::util::digest::Digests;
use crate::util::progress::Progress;

/// Member names of the metadata, in the order they are stored.
pub const META_DIR: &str = ".sysup/";
pub const DIST_MEMBER: &str = ".sysup/DIST";
pub const MANIFEST_MEMBER: &str = ".sysup/MANIFEST";
pub const OBSOLETE_MEMBER: &str = ".sysup/OBSOLETE";
pub const UPGRADE_MEMBER: &str = ".sysup/upgrade";

/// Version of the DIST format written by this sysup.
pub const DIST_FORMAT: u32 = 1;

/// The gzip extra subfield of a dist holding its tar record ("SU", sysup).
pub const TAR_RECORD_ID: [u8; 2] = *b"SU";
/// The record's length: version, size (u64 LE), MD5, SHA-256, then the
/// CRC-32 (LE) of those 57 bytes.
pub const TAR_RECORD_LEN: u16 = 1 + 8 + 16 + 32 + 4;
/// Version of the record written by this sysup; 0 is the unfilled placeholder.
const TAR_RECORD_VERSION: u8 = 1;

/// The tar record for `tar`'s digests.
pub fn encode_tar_record(tar: &Digests) -> Vec<u8> {
    let mut b = Vec::with_capacity(usize::from(TAR_RECORD_LEN));
    b.push(TAR_RECORD_VERSION);
    b.extend_from_slice(&tar.size.to_le_bytes());
    b.extend_from_slice(&tar.md5);
    b.extend_from_slice(&tar.sha256);
    let mut crc = flate2::Crc::new();
    crc.update(&b);
    b.extend_from_slice(&crc.sum().to_le_bytes());
    b
}

/// The digests in a tar record, if it is one this sysup reads and intact.
fn decode_tar_record(b: &[u8]) -> Option<Digests> {
    if b.len() != usize::from(TAR_RECORD_LEN) || b[0] != TAR_RECORD_VERSION {
        return None;
    }
    let (body, sum) = b.split_at(b.len() - 4);
    let mut crc = flate2::Crc::new();
    crc.update(body);
    if crc.sum().to_le_bytes() != sum {
        return None;
    }
    Some(Digests {
        size: u64::from_le_bytes(body[1..9].try_into().ok()?),
        md5: body[9..25].try_into().ok()?,
        sha256: body[25..57].try_into().ok()?,
    })
}

/// The tar record in the gzip header of the dist at `path`: `None` for a
/// dist made without one (another tool, an older sysup) or whose record is
/// damaged. Only the header is read.
pub fn read_tar_record(path: &Path) -> Result<Option<Digests>> {
    let f = File::open(path).ctx("open", path)?;
    let payload = crate::format::gz::extra::find(BufReader::with_capacity(512, f), TAR_RECORD_ID)
        .ctx("read", path)?;
    Ok(payload.as_deref().and_then(decode_tar_record))
}

/// Caps on metadata member sizes (bytes).
const MAX_DIST: u64 = 64 * 1024;
const MAX_MANIFEST: u64 = 512 * 1024 * 1024;
const MAX_OBSOLETE: u64 = 64 * 1024 * 1024;
const MAX_UPGRADE: u64 = 16 * 1024 * 1024;

/// The contents of `.sysup/DIST`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistMeta {
    pub format: u32,
    pub id: DistId,
    pub arch: String,
    /// Number of MANIFEST entries.
    pub entries: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kernel: Option<KernelDirs>,
}

impl DistMeta {
    /// The DIST text (TOML).
    pub fn render(&self) -> String {
        toml::to_string(self).expect("DistMeta always serializes")
    }

    /// Parse DIST text; `path` names the dist in errors.
    pub fn parse(path: &Path, text: &[u8]) -> Result<DistMeta> {
        let err = |reason: String| Error::Metadata {
            what: "DIST",
            path: path.to_path_buf(),
            reason,
        };
        let text = std::str::from_utf8(text).map_err(|_| err("not UTF-8".into()))?;
        let mut m: DistMeta = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if m.format != DIST_FORMAT {
            return Err(err(format!(
                "format {} is not supported (this sysup reads {DIST_FORMAT})",
                m.format
            )));
        }
        if m.kernel.is_some() != m.id.name.is_kernel() {
            return Err(err("kernel settings do not match the dist name".into()));
        }
        if let Some(k) = &m.kernel {
            // the build host's rules, again: a DIST is not trusted
            let k = KernelDirs::checked(&k.install_dir, &k.keep_old)
                .map_err(|(_, why)| err(format!("{}: [kernel] {why}", m.id)))?;
            m.kernel = Some(k);
        }
        Ok(m)
    }
}

/// Everything under `.sysup/` of a dist.
#[derive(Clone, Debug)]
pub struct Metadata {
    pub meta: DistMeta,
    pub manifest: Manifest,
    /// Paths older releases shipped that must go.
    pub obsolete: Vec<String>,
    /// The dist's own cleanup step.
    pub upgrade: Option<Vec<u8>>,
}

/// Read the `.sysup/` members from the head of an uncompressed tar stream.
/// `path` names the source in errors. Stops at the first member outside
/// `.sysup/`; the stream is left positioned somewhere after it.
///
/// The tar is framed by [`Segmenter`], whose caps hold here too: a PAX or
/// GNU long-name header claiming terabytes is refused before anything is
/// buffered, and each metadata member before it is read; MANIFEST is parsed
/// as it streams ([`Manifest::read`]), never held as text.
pub fn read_metadata(tar: impl Read, path: &Path) -> Result<Metadata> {
    let not_dist = |reason: &str| Error::Tar {
        path: path.to_path_buf(),
        reason: format!("not a sysup dist: {reason}"),
    };
    let mut seg = Segmenter::new(tar, path);
    // The next member's name and data size, or None past the last one.
    let next = |seg: &mut Segmenter<_>| -> Result<Option<(String, u64)>> {
        match seg.next_item()? {
            Some(Item::Member(m)) => Ok(Some((
                String::from_utf8_lossy(&m.path).into_owned(),
                m.size,
            ))),
            Some(Item::Trailer(_)) | None => Ok(None),
        }
    };
    let cap_of = |name: &str, size: u64| -> Result<u64> {
        let cap = match name {
            DIST_MEMBER => MAX_DIST,
            MANIFEST_MEMBER => MAX_MANIFEST,
            OBSOLETE_MEMBER => MAX_OBSOLETE,
            UPGRADE_MEMBER => MAX_UPGRADE,
            _ => return Err(not_dist(&format!("unknown metadata member '{name}'"))),
        };
        if size > cap {
            return Err(Error::Tar {
                path: path.to_path_buf(),
                reason: format!("{name} claims {size} bytes, more than the {cap} allowed"),
            });
        }
        Ok(size)
    };
    let read_all = |seg: &mut Segmenter<_>, size: u64| -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(size as usize);
        seg.data()
            .read_to_end(&mut buf)
            .map_err(|e| Error::from_io(e, "read", path))?;
        Ok(buf)
    };
    let dist = match next(&mut seg)? {
        Some((n, size)) if n == DIST_MEMBER => {
            let size = cap_of(&n, size)?;
            read_all(&mut seg, size)?
        }
        _ => return Err(not_dist("the first member is not .sysup/DIST")),
    };
    let meta = DistMeta::parse(path, &dist)?;
    let manifest = match next(&mut seg)? {
        Some((n, size)) if n == MANIFEST_MEMBER => {
            cap_of(&n, size)?;
            Manifest::read(path, BufReader::new(seg.data()), meta.entries)?
        }
        _ => return Err(not_dist("the second member is not .sysup/MANIFEST")),
    };
    let mut obsolete = None;
    let mut upgrade = None;
    while let Some((name, size)) = next(&mut seg)? {
        if !name.starts_with(META_DIR) {
            break;
        }
        let size = cap_of(&name, size)?;
        match name.as_str() {
            OBSOLETE_MEMBER if obsolete.is_none() && upgrade.is_none() => {
                let text = String::from_utf8(read_all(&mut seg, size)?)
                    .map_err(|_| not_dist("OBSOLETE is not UTF-8"))?;
                obsolete = Some(text.lines().map(str::to_string).collect());
            }
            UPGRADE_MEMBER if upgrade.is_none() => upgrade = Some(read_all(&mut seg, size)?),
            n => return Err(not_dist(&format!("metadata member '{n}' out of order"))),
        }
    }
    if manifest.entries().len() as u64 != meta.entries {
        return Err(not_dist("DIST and MANIFEST disagree on the entry count"));
    }
    Ok(Metadata {
        meta,
        manifest,
        obsolete: obsolete.unwrap_or_default(),
        upgrade,
    })
}

/// Open a `.tar.gz` for reading its uncompressed stream.
pub fn open_gz(path: &Path) -> Result<impl Read> {
    open_gz_counted(path, &Progress::disabled())
}

/// [`open_gz`], advancing `progress` by the compressed bytes read.
pub fn open_gz_counted(path: &Path, progress: &Progress) -> Result<impl Read> {
    let f = File::open(path).ctx("open", path)?;
    Ok(open_gz_file(f, progress))
}

/// A `.tar.gz` already open (say, through a directory descriptor, so no
/// link on its way was followed), advancing `progress` by the compressed
/// bytes read.
/// Every gzip member is read (a host's base is many: `gz::members`).
pub fn open_gz_file(f: File, progress: &Progress) -> impl Read {
    // the reader buffers (a window of whole members)
    gz::read::Reader::new(progress.reader(f))
}

/// [`open_gz_file_named`] that also records the members it reads in
/// `index`, for the writer of the next base to copy from.
pub fn open_gz_file_indexed(
    f: File,
    shown: &Path,
    progress: &Progress,
    index: gz::read::Index,
) -> impl Read {
    Named {
        inner: gz::read::Reader::new(progress.reader(f)).with_index(index),
        path: shown.to_path_buf(),
    }
}

/// [`open_gz_file`] whose read errors name `shown`, the file's path (an
/// [`Error::Io`] carried inside the `io::Error`): for a stream consumed far
/// from where it was opened, such as a host's base read through a chain of
/// patches.
pub fn open_gz_file_named(f: File, shown: &Path, progress: &Progress) -> impl Read {
    Named {
        inner: open_gz_file(f, progress),
        path: shown.to_path_buf(),
    }
}

struct Named<R> {
    inner: R,
    path: PathBuf,
}

impl<R: Read> Read for Named<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner
            .read(buf)
            .map_err(|e| io::Error::other(Error::io("gunzip", &self.path, e)))
    }
}

/// Read the metadata of a dist file, checking its id against its file name.
pub fn read_dist_metadata(path: &Path) -> Result<Metadata> {
    let m = read_metadata(open_gz(path)?, path)?;
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned());
    if let Some(file) = file {
        let named = DistId::from_file_name(&file)?;
        if named != m.meta.id {
            return Err(Error::Mismatch(format!(
                "'{}' is named for {named} but holds {}",
                path.display(),
                m.meta.id
            )));
        }
    }
    Ok(m)
}

/// What `sysup info` shows of a dist.
#[derive(Clone, Debug, Serialize)]
pub struct DistInfo {
    pub kind: &'static str,
    pub file: PathBuf,
    /// Size of the `.tar.gz`.
    pub compressed_size: u64,
    #[serde(flatten)]
    pub meta: DistMeta,
    pub obsolete: usize,
    pub has_upgrade: bool,
    /// The uncompressed tar's size and digests, from the tar record (absent
    /// when the dist has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tar: Option<Digests>,
}

impl DistInfo {
    /// Read a dist's header (its `.sysup/` members) without the rest.
    pub fn read(path: &Path) -> Result<DistInfo> {
        let m = read_dist_metadata(path)?;
        let compressed_size = std::fs::metadata(path).ctx("stat", path)?.len();
        Ok(DistInfo {
            kind: "dist",
            file: path.to_path_buf(),
            compressed_size,
            meta: m.meta,
            obsolete: m.obsolete.len(),
            has_upgrade: m.upgrade.is_some(),
            tar: read_tar_record(path)?,
        })
    }
}

impl fmt::Display for DistInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "dist       {}", self.meta.id)?;
        writeln!(f, "file       {}", self.file.display())?;
        writeln!(f, "size       {} bytes (gzip)", self.compressed_size)?;
        match &self.tar {
            Some(t) => writeln!(f, "tar        {t}")?,
            None => writeln!(f, "tar        (no digest record)")?,
        }
        writeln!(f, "arch       {}", self.meta.arch)?;
        writeln!(f, "entries    {}", self.meta.entries)?;
        writeln!(f, "obsolete   {}", self.obsolete)?;
        write!(
            f,
            "upgrade    {}",
            if self.has_upgrade { "yes" } else { "no" }
        )?;
        if let Some(k) = &self.meta.kernel {
            write!(
                f,
                "\nkernel     {} (previous kept in {})",
                k.install_dir, k.keep_old
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tar_record_round_trips_and_damage_or_a_placeholder_reads_as_none() {
        let d = Digests::of(b"some tar bytes");
        let rec = encode_tar_record(&d);
        assert_eq!(rec.len(), usize::from(TAR_RECORD_LEN));
        assert_eq!(decode_tar_record(&rec), Some(d));
        for i in 0..rec.len() {
            let mut bad = rec.clone();
            bad[i] ^= 0x10;
            assert_eq!(decode_tar_record(&bad), None, "flip at {i}");
        }
        assert_eq!(decode_tar_record(&rec[1..]), None);
        assert_eq!(decode_tar_record(&vec![0; rec.len()]), None);
    }
}
