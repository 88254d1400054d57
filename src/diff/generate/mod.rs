//! `sysup diff` as a library call: make the patch between two gzipped dists.
//!
//! Steps, in order:
//! 1. [`scan`] both dists at once (gunzip to unlinked temporary files,
//!    segment, hash), leaving out the data of files both MANIFESTs list
//!    identical;
//! 2. [`pairing`](crate::diff::pairing) pairs every new member with an old one (a member whose
//!    data was left out can only be a copy);
//! 3. the retention plan is derived (last new member using each old header
//!    and data) and written first in the controls section;
//! 4. changed pairs are cut into diff tasks — whole members, or windows of
//!    [`DiffOptions::window`] new bytes against 1.5× as many old bytes around
//!    the proportional position for big members, so a suffix array never
//!    covers more than 1.5 windows — and run on worker threads under a memory
//!    budget ([`schedule`](crate::diff::schedule)); each task `pread`s its own bytes;
//! 5. the writer walks the new members in order, writing each member's
//!    record and bytes to three raw section files (controls, diff, extra),
//!    taking diff results as they come;
//! 6. the sections are compressed into the patch, written under a temporary
//!    name in the output directory and renamed into place (a failed diff
//!    leaves nothing behind).
//!
//! Invariant: memory is bounded by the budget plus the member tables, never
//! by the size of a tar; the patch reproduces the new tar byte for byte (the
//! applier verifies the to-digests recorded here, computed over the new
//! tar's every byte).

mod body;
mod plan;
mod recode;
mod tasks;

use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::diff::scan;
use crate::error::{IoContext, Result};
use crate::format::name::{DistId, PatchName};
use crate::format::patch::header::{
    BodyFormat, Compression, PatchHeader, Section, SectionKind, Side, VERSION,
};
use crate::format::patch::section::{self, Compressed};
use crate::util::digest::Digests;
use crate::util::fsutil::AtomicFile;
use crate::util::progress::{Progress, Unit};
use body::Sections;
use plan::Plan;

/// Default new bytes per diff window of a big member.
pub const WINDOW: u64 = 10 << 20;

/// Knobs of [`diff_dists`].
#[derive(Clone, Debug)]
pub struct DiffOptions {
    /// Worker threads for diff tasks (each section is compressed on a
    /// thread of its own besides).
    pub threads: usize,
    /// Memory the diff tasks may hold at once.
    pub budget: u64,
    /// How the sections are compressed.
    pub codec: Compression,
    /// xz preset (0-9) or zstd level (1-22).
    pub level: i32,
    /// New bytes per diff window; a window is diffed against 1.5× as many
    /// old bytes, and members up to that size on both sides are diffed whole.
    pub window: u64,
    /// Steps reported as they run: scan, new bytes encoded, compression tail.
    pub progress: Progress,
    /// Code x86-64 and aarch64 executables' reference operands against
    /// their prediction where that is smaller (patch formats 3 and 4). On by default;
    /// the environment variable `SYSUP_DIFF_NO_XREF` turns it off, for the
    /// benchmarks' ablation (BENCHMARKS.md).
    pub xref: bool,
    /// Diff xz and zstd members through their uncompressed bytes where
    /// this build rebuilds them exactly and that is smaller (patch format
    /// 4). On by default; the environment variable `SYSUP_DIFF_NO_RECODE`
    /// turns it off, for the benchmarks' ablation.
    pub recode: bool,
    /// Of those, zip-family archives (patch format 5): their deflate
    /// entries zlib rebuilds exactly are diffed inflated. On by default
    /// (with `recode`); `SYSUP_DIFF_NO_REZIP` turns it off alone.
    pub rezip: bool,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            budget: 224 << 20,
            codec: Compression::Zstd,
            level: section::ZSTD_LEVEL,
            window: WINDOW,
            progress: Progress::disabled(),
            xref: std::env::var_os("SYSUP_DIFF_NO_XREF").is_none(),
            recode: std::env::var_os("SYSUP_DIFF_NO_RECODE").is_none(),
            rezip: std::env::var_os("SYSUP_DIFF_NO_REZIP").is_none(),
        }
    }
}

/// What [`diff_dists`] made, for `sysup diff` to print.
#[derive(Clone, Debug, Serialize)]
pub struct DiffReport {
    pub patch: PathBuf,
    pub size: u64,
    pub header: PatchHeader,
    pub stats: Stats,
}

/// How the new members were encoded, and where the time went.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub copied: u64,
    pub diffed: u64,
    pub literal: u64,
    pub copied_bytes: u64,
    pub diffed_bytes: u64,
    pub literal_bytes: u64,
    /// Of the diffed: gzip files diffed through their uncompressed bytes.
    pub regzipped: u64,
    pub regzipped_bytes: u64,
    /// Of the diffed: xz and zstd files diffed through their uncompressed
    /// bytes (patch format 4), and zip archives through their expanded
    /// form (format 5).
    pub recoded: u64,
    pub recoded_bytes: u64,
    /// Of the recoded: zip archives.
    pub rezipped: u64,
    pub rezipped_bytes: u64,
    /// Of the diffed: x86-64 and aarch64 executables whose reference
    /// operands were coded against their prediction (patch formats 3, 4).
    pub xref: u64,
    pub xref_bytes: u64,
    pub diff_tasks: u64,
    /// Data bytes of files identical in both dists that the scan did not
    /// write to its temporary files (both sides).
    pub unspooled_bytes: u64,
    pub scan_seconds: f64,
    /// Pairing and diffing (compression runs alongside).
    pub diff_seconds: f64,
    /// Compression left to do after the last member was written, and assembly.
    pub compress_seconds: f64,
}

/// Make the patch from dist `old_gz` to dist `new_gz` in `out_dir`.
pub fn diff_dists(
    old_gz: &Path,
    new_gz: &Path,
    out_dir: &Path,
    opts: &DiffOptions,
) -> Result<DiffReport> {
    let file_name = |p: &Path| {
        p.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let from = DistId::from_file_name(&file_name(old_gz))?;
    let to = DistId::from_file_name(&file_name(new_gz))?;
    let name = PatchName::new(from, to)?;
    // Like `sysup build --out`: the directory is made if missing, before
    // the long part, so a path that cannot be made fails at once.
    std::fs::create_dir_all(out_dir).ctx("create output directory", out_dir)?;
    let dest = out_dir.join(name.file_name());
    let mut stats = Stats::default();

    let progress = &opts.progress;
    progress.step(format!("scan {name}"), None, Unit::Items);
    let t0 = Instant::now();
    let (old, new) = scan::scan_pair(old_gz, new_gz)?;
    stats.scan_seconds = t0.elapsed().as_secs_f64();
    stats.unspooled_bytes = old.unspooled + new.unspooled;

    let t1 = Instant::now();
    let how = plan::Recoding {
        recode: opts.recode,
        zip: opts.rezip,
    };
    let plan = Plan::make(&old, &new, opts.window, how)?;
    stats.diff_tasks = plan.tasks.len() as u64;
    let params = section::Params {
        codec: opts.codec,
        level: opts.level,
    };
    let mut sections = Sections::spawn(params)?;
    sections.write_plan(&plan.keep, new.members.len())?;
    progress.step(
        format!("diff {name}"),
        Some(new.members.iter().map(|m| m.size).sum()),
        Unit::Bytes,
    );
    body::write_members(&mut sections, &old, &new, &plan, opts, &mut stats)?;
    let sides = Sides {
        old: old.digests,
        new: new.digests,
        old_members: old.members.len() as u32,
        new_members: new.members.len() as u32,
    };
    // The uncompressed tars go away before the last compression finishes.
    drop((old, new, plan));
    stats.diff_seconds = t1.elapsed().as_secs_f64();

    progress.step(format!("compress {name}"), None, Unit::Items);
    let t2 = Instant::now();
    let compressed = sections.finish()?;
    let header_len = PatchHeader::encoded_len(&name);
    let (patch, size, header) =
        write_patch(&dest, header_len, compressed, |sections| PatchHeader {
            version: VERSION,
            from: Side {
                id: name.from.clone(),
                tar: sides.old,
            },
            to: Side {
                id: name.to.clone(),
                tar: sides.new,
            },
            name,
            body_format: BodyFormat::MemberBsdiff,
            compression: opts.codec,
            window_log: params.window_log(),
            old_members: sides.old_members,
            new_members: sides.new_members,
            sections,
            header_len,
        })?;
    progress.done();
    stats.compress_seconds = t2.elapsed().as_secs_f64();
    Ok(DiffReport {
        patch,
        size,
        header,
        stats,
    })
}

/// What the header says of the two tars.
struct Sides {
    old: Digests,
    new: Digests,
    old_members: u32,
    new_members: u32,
}

/// Write the patch at `dest` under a temporary name: room for the
/// `header_len`-byte header, the compressed sections, then the header
/// `header` makes of their places; renamed into place once whole.
fn write_patch(
    dest: &Path,
    header_len: u32,
    compressed: [Compressed; 3],
    header: impl FnOnce([Section; 3]) -> PatchHeader,
) -> Result<(PathBuf, u64, PatchHeader)> {
    let mut out = AtomicFile::create(dest)?;
    let tmp_path = out.temp_path().to_path_buf();
    let mut sections = Vec::with_capacity(3);
    {
        let f = out.file();
        f.write_all(&vec![0u8; header_len as usize])
            .ctx("write", &tmp_path)?;
        let mut at = u64::from(header_len);
        for (kind, mut c) in SectionKind::ALL.into_iter().zip(compressed) {
            c.file
                .seek(SeekFrom::Start(0))
                .ctx("rewind", std::env::temp_dir())?;
            io::copy(&mut c.file, f).ctx("write", &tmp_path)?;
            sections.push(Section {
                kind,
                offset: at,
                len: c.len,
                raw_len: c.raw_len,
                sha256: c.sha256,
            });
            at += c.len;
        }
    }
    let header = header(sections.try_into().expect("three sections"));
    let f = out.file();
    f.seek(SeekFrom::Start(0)).ctx("seek in", &tmp_path)?;
    f.write_all(&header.encode()).ctx("write", &tmp_path)?;
    let size = f.seek(SeekFrom::End(0)).ctx("seek in", &tmp_path)?;
    let patch = out.commit()?;
    Ok((patch, size, header))
}
