//! The crash soak's quick mode (bench/crash-soak with the fixture pair), run
//! by `cargo test`: about two dozen SIGKILLs at random instants over
//! `sysup apply`, `rollback`, and — when nginx and minisign are installed, as
//! in CI — `sysup update` against a local mirror; after each, the same
//! command runs again until one finishes, and the root must then be the
//! target tree byte for byte with nothing temporary left.
//!
//! The seed is random per run and printed; `SYSUP_SOAK_SEED=<n>` replays one
//! (`SYSUP_SOAK_KILLS` changes the count).

#[path = "../../bench/crash_soak/soak/mod.rs"]
mod soak;

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn sysup_converges_after_kills_at_random_instants() {
    let mirror = soak::mirror_tools();
    if !mirror {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs nginx and minisign (.ci/install-deps)"
        );
        eprintln!("SKIPPED (partly): nginx or minisign missing, `sysup update` is not soaked");
    }
    let seed = env_num("SYSUP_SOAK_SEED").unwrap_or_else(soak::clock_seed);
    let kills = env_num("SYSUP_SOAK_KILLS").unwrap_or(24) as usize;
    eprintln!("crash soak quick mode: seed {seed} (SYSUP_SOAK_SEED={seed} replays it)");
    let work = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("crash-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let sysup = std::path::PathBuf::from(env!("CARGO_BIN_EXE_sysup"));
    let pair = soak::prepare(&sysup, &work, soak::PairKind::Fixtures, &work).unwrap();
    let cfg = soak::Config {
        sysup,
        work: work.clone(),
        kills,
        seed,
        mirror,
        max_kills_per_op: 3,
        rekill_chance: 0.5,
        reinstall_every: 4,
        pause_file: None,
        max_time: Some(std::time::Duration::from_secs(60)),
        verbose: false,
    };
    let report = soak::Soak::new(&cfg, &pair).unwrap().run().unwrap();
    eprint!("{}", report.summary());
    assert!(report.failures.is_empty(), "{}", report.summary());
    assert!(report.kills >= kills.min(12), "{}", report.summary());
    assert_eq!(report.convergences, report.ops, "{}", report.summary());
    let _ = std::fs::remove_dir_all(&work);
}
