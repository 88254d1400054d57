//! `bench/crash-soak`: kill sysup at random instants, over and over, and
//! check it always converges (see soak.rs for what is run and checked, and
//! bench/README.md for how to run it).
//!
//! Invariant: it only ever touches its work directory (default
//! `bench/work/scratch/soak`); every sysup it starts gets `--root` there.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// The demo's fixture trees (the binary's own module, shared here).
#[path = "../../src/cli/fixtures.rs"]
#[allow(dead_code)] // the kernel trees are not soaked
mod fixtures;
#[path = "soak/mod.rs"]
mod soak;

#[derive(Parser, Debug)]
#[command(about = "Crash soak: SIGKILL sysup at random instants and check it converges")]
struct Args {
    /// Pair of trees: fixtures, small (bench corpus small-A/B) or big (tree-A/B).
    #[arg(long, default_value = "fixtures")]
    pair: String,
    /// Stop after this many kills (the op in progress still converges).
    #[arg(long, default_value_t = 24)]
    kills: usize,
    /// Seed of every random choice (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// The sysup binary to soak.
    #[arg(long)]
    sysup: PathBuf,
    /// Work directory (roots, cached dists, mirror, failure records).
    #[arg(long, default_value = "bench/work/scratch/soak")]
    work: PathBuf,
    /// The benchmark corpus (for the small and big pairs).
    #[arg(long, default_value = "bench/work/corpus")]
    corpus: PathBuf,
    /// Do not kill `sysup update` (no nginx).
    #[arg(long)]
    no_mirror: bool,
    /// Most kills in one op before a run is let finish.
    #[arg(long, default_value_t = 3)]
    max_kills_per_op: usize,
    /// Chance that a re-run after a kill is killed again (raise it to spend
    /// more of a long soak killing and less converging).
    #[arg(long, default_value_t = 0.5)]
    rekill_chance: f64,
    /// Wipe the root and kill a fresh install every N cycles (0: never).
    #[arg(long, default_value_t = 6)]
    reinstall_every: usize,
    /// Stop (after converging) after this many minutes.
    #[arg(long)]
    max_minutes: Option<u64>,
    /// Stop sysup and wait while this file exists (a quiet benchmark runs).
    #[arg(long)]
    pause_file: Option<PathBuf>,
    /// Replay one op with fixed kills: OP:K,K,... where K is ms from the
    /// start, or cMS from the commit point (from a failure's report).
    #[arg(long)]
    replay: Option<String>,
    /// Write the report as JSON here (default: WORK/report-PAIR-SEED.json).
    #[arg(long)]
    report: Option<PathBuf>,
}

fn main() -> ExitCode {
    let a = Args::parse();
    let Some(kind) = soak::PairKind::parse(&a.pair) else {
        eprintln!("error: --pair is fixtures, small or big");
        return ExitCode::from(2);
    };
    let seed = a.seed.unwrap_or_else(soak::clock_seed);
    let sysup = match std::fs::canonicalize(&a.sysup) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {}: {e}", a.sysup.display());
            return ExitCode::from(2);
        }
    };
    let work = a.work.join(kind.label());
    if let Err(e) = std::fs::create_dir_all(&work) {
        eprintln!("error: {}: {e}", work.display());
        return ExitCode::from(2);
    }
    let mirror = !a.no_mirror && soak::mirror_tools();
    if !a.no_mirror && !mirror {
        eprintln!("soak: nginx or minisign missing: `sysup update` is not soaked");
    }
    eprintln!(
        "soak: pair {}, seed {seed}, {} kills, sysup {}, work {}",
        kind.label(),
        a.kills,
        sysup.display(),
        work.display()
    );
    let pair = match soak::prepare(&sysup, &work, kind, &a.corpus) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let cfg = soak::Config {
        sysup,
        work: work.clone(),
        kills: a.kills,
        seed,
        mirror,
        max_kills_per_op: a.max_kills_per_op,
        rekill_chance: a.rekill_chance.clamp(0.0, 1.0),
        reinstall_every: a.reinstall_every,
        pause_file: a.pause_file,
        max_time: a.max_minutes.map(|m| Duration::from_secs(m * 60)),
        verbose: true,
    };
    let s = match soak::Soak::new(&cfg, &pair) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let report = match &a.replay {
        Some(r) => {
            let (op, delays) = r.split_once(':').unwrap_or((r.as_str(), ""));
            let Some(op) = soak::Op::parse(op) else {
                eprintln!("error: --replay OP:MS,...; OP is one of install, apply-patch, update, rollback, apply-dist, update-back");
                return ExitCode::from(2);
            };
            let kills: Option<Vec<soak::Kill>> = delays
                .split(',')
                .filter(|d| !d.is_empty())
                .map(soak::Kill::parse)
                .collect();
            let Some(kills) = kills else {
                eprintln!("error: --replay OP:K,K,...; K is ms from the start, or cMS from the commit point");
                return ExitCode::from(2);
            };
            s.replay(op, kills)
        }
        None => s.run(),
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    print!("{}", report.summary());
    let path = a
        .report
        .unwrap_or_else(|| work.join(format!("report-{}-{seed}.json", kind.label())));
    if let Err(e) = soak::write_report(&path, &report) {
        eprintln!("error: {}: {e}", path.display());
    } else {
        println!("report: {}", path.display());
    }
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
