//! `sysup build` (docs/design.md §2): a staged tree + a spec + a rev and date → a
//! reproducible `<id>.tar.gz`.
//!
//! Order of the tar: `.sysup/DIST`, `.sysup/MANIFEST`, then `.sysup/OBSOLETE`
//! and `.sysup/upgrade` when the spec has them, then every entry sorted by
//! member name (byte order); critical files are stored as `<path>.new`.
//!
//! Invariants:
//! - the output depends only on (tree contents and metadata, spec, rev,
//!   date): no clock, user name or readdir order leaks in, and the gzip
//!   header has mtime 0 and no file name;
//! - the gzip header's tar record (`dist::encode_tar_record`) holds the
//!   digests of exactly the tar bytes that were compressed: it is filled in
//!   after the last byte went through the hasher;
//! - the dist is written to a temporary name in the output directory and
//!   renamed only once complete and fsynced: a failed build leaves nothing.
//! - the tree must fit a MANIFEST (its entry cap, path length and depth);
//!   a `critical` pattern naming a file the tree holds only through a
//!   symlink is refused, and each unmatched `critical` or `config` pattern, and the files not
//!   readable by others, are reported as [`Report::warnings`].

pub mod scan;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::format::archive::member::MemberMeta;
use crate::format::archive::write::TarWriter;
use crate::format::dist::{
    encode_tar_record, DistMeta, DIST_FORMAT, DIST_MEMBER, MANIFEST_MEMBER, OBSOLETE_MEMBER,
    TAR_RECORD_ID, TAR_RECORD_LEN, UPGRADE_MEMBER,
};
use crate::format::gz;
use crate::format::manifest::{Entry, Kind, Manifest};
use crate::format::name::{Date, DistId, Rev};
use crate::format::spec::Spec;
use crate::util::digest::{Digests, HashingWriter};
use crate::util::fsutil::AtomicFile;
use crate::util::progress::{Progress, Unit};

pub use scan::{scan, Scanned};

/// What to build.
#[derive(Debug, Clone)]
pub struct Options {
    pub rev: Rev,
    pub date: Date,
    pub out_dir: PathBuf,
    /// gzip level (1–9).
    pub level: u32,
    /// Steps reported as they run: the scan, then file bytes copied into the dist.
    pub progress: Progress,
}

/// What a build produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub id: DistId,
    pub path: PathBuf,
    /// Size of the `.tar.gz`.
    pub compressed_size: u64,
    /// Size and digests of the uncompressed tar.
    pub tar: Digests,
    pub entries: usize,
    pub files: usize,
    pub critical: usize,
    pub config: usize,
    /// What the builder should look at: spec patterns that matched no
    /// file, files not readable by others (docs/json.md).
    pub warnings: Vec<String>,
}

/// Build a dist from `tree` as `spec` says.
pub fn build(spec: &Spec, tree: &Path, opts: &Options) -> Result<Report> {
    if !(1..=9).contains(&opts.level) {
        return Err(Error::Refused(format!(
            "gzip level {} is not in 1..=9",
            opts.level
        )));
    }
    let id = DistId {
        name: spec.name.clone(),
        rev: opts.rev.clone(),
        date: opts.date,
    };
    opts.progress
        .step(format!("scan {}", tree.display()), None, Unit::Items);
    let scanned = scan(spec, tree)?;
    let manifest = Manifest::new(scanned.iter().map(|s| s.entry.clone()).collect())?;
    check_shapes(&manifest, &scanned)?;
    let warnings = check_spec_use(spec, tree, &manifest)?;
    let meta = DistMeta {
        format: DIST_FORMAT,
        id: id.clone(),
        arch: spec.arch.clone(),
        entries: manifest.entries().len() as u64,
        kernel: spec.kernel.clone(),
    };
    fs::create_dir_all(&opts.out_dir).ctx("create output directory", &opts.out_dir)?;
    let dest = opts.out_dir.join(id.file_name());
    let mut out = AtomicFile::create(&dest)?;
    let tmp = out.temp_path().to_path_buf();
    let content: u64 = scanned
        .iter()
        .filter(|s| s.entry.kind == Kind::File)
        .map(|s| s.entry.size)
        .sum();
    opts.progress
        .step(format!("build {id}"), Some(content), Unit::Bytes);
    let digests = write_dist(
        out.file(),
        &meta,
        &manifest,
        spec,
        &scanned,
        opts.level,
        &opts.progress,
    )
    .map_err(|e| match e {
        Error::Io {
            action: "write",
            source,
            ..
        } => Error::io("write", &tmp, source),
        other => other,
    })?;
    let path = out.commit()?;
    opts.progress.done();
    let compressed_size = fs::metadata(&path).ctx("stat", &path)?.len();
    let count = |f: fn(&Entry) -> bool| manifest.entries().iter().filter(|e| f(e)).count();
    Ok(Report {
        id,
        path,
        compressed_size,
        tar: digests,
        entries: manifest.entries().len(),
        files: count(|e| e.kind == Kind::File),
        critical: count(|e| e.critical),
        config: count(|e| e.config),
        warnings,
    })
}

/// Files not readable by others named in a warning; the rest are counted.
const UNREADABLE_NAMED: usize = 10;

/// What the spec's flags and the tree's modes say about the dist: a
/// warning for each `critical` or `config` pattern that matched no regular
/// file (the spec's default `config` aside) and one naming the files not
/// readable by others (a dist is published for anyone to read). Refuses a
/// critical pattern naming a file the tree holds only through a symlink
/// (libc through merged /usr's `lib`): certainly meant, never matched, its
/// dist would replace the C library like any file, mid-commit. A critical
/// pattern that finds nothing at all is only a warning: a spec may name
/// alternatives (`lib64` or not), and a partial tree may have no libc.
fn check_spec_use(spec: &Spec, tree: &Path, manifest: &Manifest) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let files = || {
        manifest
            .entries()
            .iter()
            .filter(|e| matches!(e.kind, Kind::File | Kind::Hardlink))
    };
    let unmatched = |globs: &crate::format::spec::Globs| -> Vec<String> {
        let mut hit = vec![false; globs.patterns().len()];
        for e in files() {
            for i in globs.which(&e.path) {
                hit[i] = true;
            }
        }
        globs
            .patterns()
            .iter()
            .zip(hit)
            .filter(|(_, h)| !h)
            .map(|(p, _)| p.clone())
            .collect()
    };
    // A literal path found by following the tree's links: named through a
    // link (merged /usr's `lib`), which the walk records and never enters.
    let hint = |p: &str| {
        let literal = !p.contains(['*', '?', '[', '{', '\\']);
        let rel = p.trim_start_matches('/');
        if literal && fs::metadata(tree.join(rel)).is_ok_and(|m| m.is_file()) {
            " (the tree has it only through a symlink: name the path without links)"
        } else {
            ""
        }
    };
    let critical = unmatched(&spec.critical);
    let through_links: Vec<String> = critical
        .iter()
        .filter(|p| !hint(p).is_empty())
        .map(|p| format!("'{p}'"))
        .collect();
    if !through_links.is_empty() {
        return Err(Error::Refused(format!(
            "critical pattern {} names a file {} holds only through a symlink, so it matched no \
             regular file: name the path without links, or the dist would replace that file \
             like any other",
            through_links.join(", "),
            tree.display(),
        )));
    }
    for p in &critical {
        warnings.push(format!(
            "critical pattern '{p}' matched no regular file{}",
            hint(p)
        ));
    }
    if spec.config_given {
        for p in unmatched(&spec.config) {
            warnings.push(format!(
                "config pattern '{p}' matched no regular file{}",
                hint(&p)
            ));
        }
    }
    let unreadable: Vec<String> = manifest
        .entries()
        .iter()
        .filter(|e| e.kind == Kind::File && e.mode & 0o004 == 0)
        .map(Entry::display)
        .collect();
    if !unreadable.is_empty() {
        let mut names = unreadable[..unreadable.len().min(UNREADABLE_NAMED)].join(", ");
        if unreadable.len() > UNREADABLE_NAMED {
            names.push_str(&format!(
                " and {} more",
                unreadable.len() - UNREADABLE_NAMED
            ));
        }
        warnings.push(format!(
            "{} file{} not readable by others go{} into the dist, which is published for \
             anyone to read: {names}",
            unreadable.len(),
            if unreadable.len() == 1 { "" } else { "s" },
            if unreadable.len() == 1 { "es" } else { "" },
        ));
    }
    Ok(warnings)
}

/// Refuse a tree no host would read: more entries than a MANIFEST holds, or
/// a path or link target past the MANIFEST's caps.
fn check_shapes(manifest: &Manifest, scanned: &[Scanned]) -> Result<()> {
    let n = manifest.entries().len() as u64;
    if n > crate::format::manifest::MAX_ENTRIES {
        return Err(Error::Refused(format!(
            "the tree holds {n} entries, more than the {} a MANIFEST may hold",
            crate::format::manifest::MAX_ENTRIES
        )));
    }
    for s in scanned {
        let e = &s.entry;
        let why = crate::format::manifest::shape_error("path", &e.path).or_else(|| {
            (e.kind == Kind::Symlink)
                .then(|| {
                    crate::format::manifest::shape_error(
                        "link",
                        e.link.as_deref().unwrap_or_default(),
                    )
                })
                .flatten()
        });
        if let Some(reason) = why {
            return Err(Error::Tree {
                path: s.source.clone(),
                reason,
            });
        }
    }
    Ok(())
}

/// Stream the whole dist into `file`; returns the uncompressed digests.
fn write_dist(
    file: &mut fs::File,
    meta: &DistMeta,
    manifest: &Manifest,
    spec: &Spec,
    scanned: &[Scanned],
    level: u32,
    progress: &Progress,
) -> Result<Digests> {
    let gz = gz::Writer::new(BufWriter::with_capacity(1 << 20, &mut *file), level)
        .with_subfield(TAR_RECORD_ID, TAR_RECORD_LEN);
    let hashing = HashingWriter::new(gz);
    let mut tar = TarWriter::new(BufWriter::with_capacity(1 << 20, hashing));
    write_meta_members(&mut tar, meta, manifest, spec)?;
    for s in scanned {
        write_entry(&mut tar, s, manifest, progress)?;
    }
    let hashing = tar
        .finish()
        .map_err(werr)?
        .into_inner()
        .map_err(|e| werr(e.into_error()))?;
    let (digests, gz) = hashing.finish();
    let mut buf = gz.finish().map_err(werr)?;
    buf.flush().map_err(werr)?;
    drop(buf);
    file.write_all_at(&encode_tar_record(&digests), gz::extra::PAYLOAD_OFFSET)
        .map_err(werr)?;
    Ok(digests)
}

/// A failed write of the dist.
fn werr(e: std::io::Error) -> Error {
    Error::io("write", "<dist>", e)
}

/// The dist's own members, first: DIST, MANIFEST, then OBSOLETE and
/// UPGRADE when the spec has them.
fn write_meta_members<W: Write>(
    tar: &mut TarWriter<W>,
    meta: &DistMeta,
    manifest: &Manifest,
    spec: &Spec,
) -> Result<()> {
    let mtime = meta.id.date.unix_midnight();
    let mut meta_member = |name: &str, mode: u32, data: &[u8]| {
        let m = MemberMeta {
            path: name.as_bytes().to_vec(),
            kind: Kind::File,
            mode,
            uid: 0,
            gid: 0,
            mtime,
            size: data.len() as u64,
            link: None,
            dev: None,
            xattrs: BTreeMap::new(),
        };
        tar.append(&m, data).map_err(werr)
    };
    meta_member(DIST_MEMBER, 0o644, meta.render().as_bytes())?;
    meta_member(MANIFEST_MEMBER, 0o644, manifest.render().as_bytes())?;
    if !spec.obsolete.is_empty() {
        let mut text = spec.obsolete.join("\n");
        text.push('\n');
        meta_member(OBSOLETE_MEMBER, 0o644, text.as_bytes())?;
    }
    if let Some(up) = &spec.upgrade {
        meta_member(UPGRADE_MEMBER, 0o755, up)?;
    }
    Ok(())
}

/// One entry of the tree as its member, a file's data read from its source.
fn write_entry<W: Write>(
    tar: &mut TarWriter<W>,
    s: &Scanned,
    manifest: &Manifest,
    progress: &Progress,
) -> Result<()> {
    let e = &s.entry;
    // A hard link names the *member* holding the data (maybe `x.new`).
    let link_member;
    let link = match e.kind {
        Kind::Hardlink => {
            let target = e.link.as_deref().unwrap_or_default();
            let holder = manifest.get(target).ok_or_else(|| Error::Tree {
                path: s.source.clone(),
                reason: "hard link target vanished from the manifest".into(),
            })?;
            link_member = holder.member_name();
            Some(link_member.as_slice())
        }
        _ => e.link.as_deref(),
    };
    let name = e.member_name();
    let size = if e.kind == Kind::File { e.size } else { 0 };
    let m = MemberMeta::of_entry(e, name, size, link.map(<[u8]>::to_vec));
    if e.kind != Kind::File {
        return tar.append(&m, std::io::empty()).map_err(werr);
    }
    let f = fs::File::open(&s.source).map_err(|err| Error::Tree {
        path: s.source.clone(),
        reason: format!("cannot read: {err}"),
    })?;
    tar.append(&m, progress.reader(f))
        .map_err(|err| Error::Tree {
            path: s.source.clone(),
            reason: format!("cannot copy into the dist: {err}"),
        })
}
