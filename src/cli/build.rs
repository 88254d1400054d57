//! `sysup build SPEC --tree DIR --rev REV [--date YYYYMMDD] [--out DIR] [--json]`:
//! turn a staged tree into a revision-named dist and say what came out.

use std::io::Write as _;
use std::path::PathBuf;

use sysup::build::{self, Options};
use sysup::format::name::{Date, Rev};
use sysup::format::spec::Spec;

use super::args::JsonArg;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The spec (TOML): binarydist/world.toml or kernels/<CONF>.toml.
    pub spec: PathBuf,
    /// The staged tree (a DESTDIR).
    #[arg(long)]
    pub tree: PathBuf,
    /// Revision: letters, digits, '.', '+', '~'.
    // Validated by sysup, not clap: a bad rev is bad input (exit 1), not a
    // usage error (exit 2).
    #[arg(long)]
    pub rev: String,
    /// Date in the dist name, YYYYMMDD (default: today, UTC).
    #[arg(long)]
    pub date: Option<String>,
    /// Output directory (made if missing).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// gzip level, 1-9.
    #[arg(long, default_value_t = 6)]
    pub level: u32,
    #[command(flatten)]
    pub format: JsonArg,
}

pub fn run(a: Args, ui: &super::progress::Ui) -> sysup::Result<()> {
    let rev: Rev = a.rev.parse()?;
    let date = match a.date {
        Some(d) => d.parse()?,
        None => Date::today(),
    };
    let spec = Spec::load(&a.spec)?;
    let r = ui.with_progress(|progress| {
        let opts = Options {
            rev,
            date,
            out_dir: a.out,
            level: a.level,
            progress: progress.clone(),
        };
        build::build(&spec, &a.tree, &opts)
    })?;
    // On stderr before the output; a closed stderr loses them, never the build.
    for w in &r.warnings {
        let _ = writeln!(std::io::stderr(), "warning: {w}");
    }
    if a.format.json {
        return super::print_json(&r);
    }
    outln!("built {}", r.path.display());
    if ui.quiet {
        return Ok(());
    }
    outln!(
        "  entries  {} ({} files, {} critical, {} config)",
        r.entries,
        r.files,
        r.critical,
        r.config
    );
    outln!("  tar      {} bytes", r.tar.size);
    outln!("  gzip     {} bytes", r.compressed_size);
    outln!("  md5      {}", r.tar.md5_hex());
    outln!("  sha256   {}", r.tar.sha256_hex());
    Ok(())
}
