//! `sysup diff OLD.tar.gz NEW.tar.gz [--out DIR] [--json]`: make the patch
//! between two dists of the same name (build host).
//!
//! Invariants: the patch is named from the two dist file names
//! (`<name>-<fromrev>-<fromdate>_<torev>-<todate>.patch`), dists of different
//! names are refused, and the file appears in DIR only complete (temporary
//! name, then rename): a failed diff leaves nothing.

use std::path::PathBuf;

use sysup::diff::{self, DiffOptions};
use sysup::format::patch::header::Compression;
use sysup::format::patch::section;

use super::args::JsonArg;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The old dist (`<id>.tar.gz`).
    pub old: PathBuf,
    /// The new dist, of the same name.
    pub new: PathBuf,
    /// Output directory (made if missing).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Worker threads (default: one per CPU).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Memory the diff workers may use, in MiB.
    #[arg(long, default_value_t = 224)]
    pub memory: u64,
    /// Section compression: zstd (the default, fastest to apply) or xz (about
    /// 8% smaller patches, slower to apply).
    #[arg(long, value_enum, default_value_t = Codec::Zstd)]
    pub compression: Codec,
    /// Compression level: xz preset 0-9 (default 6) or zstd level 1-22 (default 17).
    #[arg(long)]
    pub level: Option<i32>,
    #[command(flatten)]
    pub format: JsonArg,
}

/// `--compression` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Codec {
    Xz,
    Zstd,
}

pub fn run(a: Args, ui: &super::progress::Ui) -> sysup::Result<()> {
    let (codec, default_level, range) = match a.compression {
        Codec::Xz => (Compression::Xz, section::XZ_LEVEL as i32, 0..=9),
        Codec::Zstd => (Compression::Zstd, section::ZSTD_LEVEL, 1..=22),
    };
    let level = a.level.unwrap_or(default_level);
    if !range.contains(&level) {
        return Err(sysup::Error::Refused(format!(
            "--level {level} is outside {}..={} for {:?}",
            range.start(),
            range.end(),
            a.compression
        )));
    }
    let mut opts = DiffOptions {
        budget: a.memory << 20,
        codec,
        level,
        ..DiffOptions::default()
    };
    if let Some(t) = a.threads {
        opts.threads = t.max(1);
    }
    let r = ui.with_progress(|progress| {
        opts.progress = progress.clone();
        diff::diff_dists(&a.old, &a.new, &a.out, &opts)
    })?;
    if a.format.json {
        return super::print_json(&r);
    }
    let h = &r.header;
    let s = &r.stats;
    outln!("wrote {}", r.patch.display());
    if ui.quiet {
        return Ok(());
    }
    outln!("  size     {} bytes", r.size);
    for (label, end) in [("from", &h.from), ("to", &h.to)] {
        outln!(
            "  {label:<9}{} ({} bytes, md5 {})",
            end.id,
            end.tar.size,
            end.tar.md5_hex()
        );
        outln!("           sha256 {}", end.tar.sha256_hex());
    }
    outln!(
        "  members  {} copied ({} bytes), {} diffed ({} bytes), {} literal ({} bytes)",
        s.copied,
        s.copied_bytes,
        s.diffed,
        s.diffed_bytes,
        s.literal,
        s.literal_bytes
    );
    outln!(
        "  time     scan {:.1}s, diff {:.1}s (compressing alongside), compression tail {:.1}s",
        s.scan_seconds,
        s.diff_seconds,
        s.compress_seconds
    );
    Ok(())
}
