//! Dists as files (DESIGN §2): the `.sysup/` metadata members every dist
//! starts with — `DIST` (what this dist is), `MANIFEST`, optional `OBSOLETE`
//! and `upgrade` — and reading them back from the head of a `.tar.gz`
//! without decompressing the rest.
//!
//! Invariants: `.sysup/DIST` is the first member and `MANIFEST` the second;
//! metadata members are size-capped before they are read into memory, so a
//! hostile dist cannot make a reader allocate without bound; the id in DIST
//! must match the file name when a file name is given.

use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::manifest::Manifest;
use crate::name::DistId;
use crate::spec::KernelDirs;

/// Member names of the metadata, in the order they are stored.
pub const META_DIR: &str = ".sysup/";
pub const DIST_MEMBER: &str = ".sysup/DIST";
pub const MANIFEST_MEMBER: &str = ".sysup/MANIFEST";
pub const OBSOLETE_MEMBER: &str = ".sysup/OBSOLETE";
pub const UPGRADE_MEMBER: &str = ".sysup/upgrade";

/// Version of the DIST format written by this sysup.
pub const DIST_FORMAT: u32 = 1;

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
        let m: DistMeta = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if m.format != DIST_FORMAT {
            return Err(err(format!(
                "format {} is not supported (this sysup reads {DIST_FORMAT})",
                m.format
            )));
        }
        if m.kernel.is_some() != m.id.name.is_kernel() {
            return Err(err("kernel settings do not match the dist name".into()));
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

fn read_capped(
    entry: &mut impl Read,
    size: u64,
    cap: u64,
    path: &Path,
    what: &str,
) -> Result<Vec<u8>> {
    if size > cap {
        return Err(Error::Tar {
            path: path.to_path_buf(),
            reason: format!("{what} claims {size} bytes, more than the {cap} allowed"),
        });
    }
    let mut buf = Vec::with_capacity(size as usize);
    entry
        .take(cap + 1)
        .read_to_end(&mut buf)
        .ctx("read", path)?;
    Ok(buf)
}

/// Read the `.sysup/` members from the head of an uncompressed tar stream.
/// `path` names the source in errors. Stops at the first member outside
/// `.sysup/`; the stream is left positioned somewhere after it.
pub fn read_metadata(tar: impl Read, path: &Path) -> Result<Metadata> {
    let not_dist = |reason: &str| Error::Tar {
        path: path.to_path_buf(),
        reason: format!("not a sysup dist: {reason}"),
    };
    let mut ar = tar::Archive::new(tar);
    let mut entries = ar.entries().ctx("read", path)?;
    let mut next = |want: &str| -> Result<Option<(String, Vec<u8>)>> {
        let Some(e) = entries.next() else {
            return Ok(None);
        };
        let mut e = e.map_err(|err| Error::Tar {
            path: path.to_path_buf(),
            reason: err.to_string(),
        })?;
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        if !name.starts_with(META_DIR) {
            return Ok(Some((name, Vec::new())));
        }
        let cap = match name.as_str() {
            DIST_MEMBER => MAX_DIST,
            MANIFEST_MEMBER => MAX_MANIFEST,
            OBSOLETE_MEMBER => MAX_OBSOLETE,
            UPGRADE_MEMBER => MAX_UPGRADE,
            _ => return Err(not_dist(&format!("unknown metadata member '{name}'"))),
        };
        let size = e.header().size().unwrap_or(u64::MAX);
        let data = read_capped(&mut e, size, cap, path, want)?;
        Ok(Some((name, data)))
    };
    let dist = match next("DIST")? {
        Some((n, d)) if n == DIST_MEMBER => d,
        _ => return Err(not_dist("the first member is not .sysup/DIST")),
    };
    let meta = DistMeta::parse(path, &dist)?;
    let manifest = match next("MANIFEST")? {
        Some((n, d)) if n == MANIFEST_MEMBER => Manifest::parse(path, &d)?,
        _ => return Err(not_dist("the second member is not .sysup/MANIFEST")),
    };
    let mut obsolete = Vec::new();
    let mut upgrade = None;
    while let Some((name, data)) = next("metadata")? {
        match name.as_str() {
            OBSOLETE_MEMBER if obsolete.is_empty() && upgrade.is_none() => {
                let text =
                    String::from_utf8(data).map_err(|_| not_dist("OBSOLETE is not UTF-8"))?;
                obsolete = text.lines().map(str::to_string).collect();
            }
            UPGRADE_MEMBER if upgrade.is_none() => upgrade = Some(data),
            n if n.starts_with(META_DIR) => {
                return Err(not_dist(&format!("metadata member '{n}' out of order")))
            }
            _ => break,
        }
    }
    if manifest.entries().len() as u64 != meta.entries {
        return Err(not_dist("DIST and MANIFEST disagree on the entry count"));
    }
    Ok(Metadata {
        meta,
        manifest,
        obsolete,
        upgrade,
    })
}

/// Open a `.tar.gz` for reading its uncompressed stream.
pub fn open_gz(path: &Path) -> Result<impl Read> {
    open_gz_counted(path, &crate::progress::Progress::disabled())
}

/// [`open_gz`], advancing `progress` by the compressed bytes read.
pub fn open_gz_counted(path: &Path, progress: &crate::progress::Progress) -> Result<impl Read> {
    let f = File::open(path).ctx("open", path)?;
    Ok(flate2::read::GzDecoder::new(BufReader::with_capacity(
        256 * 1024,
        progress.reader(f),
    )))
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
        })
    }
}

impl fmt::Display for DistInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "dist       {}", self.meta.id)?;
        writeln!(f, "file       {}", self.file.display())?;
        writeln!(f, "size       {} bytes (gzip)", self.compressed_size)?;
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
