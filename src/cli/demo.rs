//! `sysup demo`: the whole story on built-in fixture trees, in a temporary
//! directory, in a few seconds. Nothing outside that directory is touched:
//! every host-side step runs with `--root` inside it.
//!
//! Today the demo covers the build host: three revisions of a tiny world and
//! two of a named kernel become reproducible dists.

use std::path::{Path, PathBuf};

use crate::build::{self, Options};
use crate::error::{IoContext, Result};
use crate::fixtures;
use crate::name::Date;
use crate::spec::Spec;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Work in DIR (created if missing) instead of a temporary directory, and keep it.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

fn step(n: &mut u32, what: &str) {
    *n += 1;
    println!("\n[{n}] {what}");
}

pub fn run(a: Args) -> Result<()> {
    let tmp;
    let dir: &Path = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d).ctx("create directory", d)?;
            d
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("sysup-demo.")
                .tempdir()
                .ctx("create a temporary directory in", std::env::temp_dir())?;
            tmp.path()
        }
    };
    println!("sysup demo in {}", dir.display());
    let privileged = fixtures::privileged();
    let mut n = 0;

    step(
        &mut n,
        "build host: stage three revisions of a tiny world and two of kernel GENERIC",
    );
    let specs = dir.join("specs");
    std::fs::create_dir_all(&specs).ctx("create directory", &specs)?;
    let world_spec = specs.join("world.toml");
    std::fs::write(&world_spec, fixtures::WORLD_SPEC).ctx("write", &world_spec)?;
    let kernel_spec = specs.join("GENERIC.toml");
    std::fs::write(&kernel_spec, fixtures::kernel_spec("GENERIC")).ctx("write", &kernel_spec)?;
    let world = Spec::load(&world_spec)?;
    let kernel = Spec::load(&kernel_spec)?;
    let dists = dir.join("dists");
    let mut built = Vec::new();
    for rev in 1..=3u32 {
        let tree = dir.join(format!("stage/world-{rev}"));
        if !tree.exists() {
            fixtures::make_world(&tree, rev, privileged)?;
        }
        built.push((world.clone(), tree, rev));
    }
    for rev in 1..=2u32 {
        let tree = dir.join(format!("stage/kernel-GENERIC-{rev}"));
        if !tree.exists() {
            fixtures::make_kernel(&tree, "GENERIC", rev)?;
        }
        built.push((kernel.clone(), tree, rev));
    }

    step(
        &mut n,
        "build host: sysup build → revision-named, reproducible dists",
    );
    for (spec, tree, rev) in &built {
        let opts = Options {
            rev: rev.to_string().parse()?,
            date: Date::new(2026, 11, 20 + *rev as u8).expect("valid demo date"),
            out_dir: dists.clone(),
            level: 6,
        };
        let r = build::build(spec, tree, &opts)?;
        println!(
            "  {:<38} {:>4} entries  tar {:>8}  gz {:>7}  md5 {}",
            r.id.file_name(),
            r.entries,
            r.tar.size,
            r.compressed_size,
            r.tar.md5_hex()
        );
    }
    println!("\nEverything is in {}", dir.display());
    if a.dir.is_none() {
        println!("(temporary: removed on exit; use --dir DIR to keep it)");
    }
    Ok(())
}
