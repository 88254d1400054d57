//! The crash soak's engine, shared by `bench/crash-soak` (the long runs on
//! the benchmark corpus) and `tests/suite/crash_soak.rs` (the quick mode CI runs):
//! start `sysup apply`, `sysup rollback` or `sysup update` on a temporary
//! root, SIGKILL it at a random instant, run the same command again (and
//! sometimes kill that too), let a run finish, then check that the root is
//! the target tree byte for byte with nothing temporary left; go back to the
//! first tree the same way, and repeat.
//!
//! Invariants:
//! - every root is a directory under the work directory, never `/`;
//! - the target is checked against a snapshot of the *source tree* the dist
//!   was built from (content, type, mode, owner, mtime, link target, device
//!   numbers, xattrs, hardlink groups), walked here with std and libc — not
//!   against anything sysup wrote or computed;
//! - every random choice comes from one seeded generator, so a seed replays
//!   the same sequence of operations and kill delays. Where a delay lands
//!   still depends on the machine's speed, so each failure also records the
//!   delays it used and the phase each kill hit, and `--replay` runs exactly
//!   those delays again from a fresh root.

#![allow(dead_code)] // the test uses a subset

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// A private nginx for the mirror operations, started as the mirror tests
/// start theirs (loaded twice in the test binary, as `tree` is).
#[path = "../../../tests/suite/common/nginx.rs"]
#[allow(clippy::duplicate_mod)]
mod nginx;
/// The tree snapshot, shared with the integration tests. Their binary also
/// holds this harness (the soak's quick mode), so it loads the file twice:
/// once for `common`, once here, as the `crash-soak` example needs it.
#[path = "../../../tests/suite/common/tree.rs"]
#[allow(clippy::duplicate_mod)]
mod tree;
pub use tree::Tree;

mod check;
mod kill;
mod mirror;
mod ops;
mod pair;
mod report;
mod rng;

pub use kill::*;
pub use mirror::*;
pub use ops::*;
pub use pair::*;
pub use report::*;
pub use rng::*;

/// Knobs of a soak.
pub struct Config {
    pub sysup: PathBuf,
    /// Scratch directory (roots, mirror, failure records).
    pub work: PathBuf,
    /// Stop after this many kills (the op in progress still converges).
    pub kills: usize,
    pub seed: u64,
    /// Also kill `sysup update` against a local nginx.
    pub mirror: bool,
    /// Most kills in one op before a run is let finish.
    pub max_kills_per_op: usize,
    /// Chance that a re-run after a kill is killed again.
    pub rekill_chance: f64,
    /// Wipe the root and kill a fresh install every this many cycles (0: never).
    pub reinstall_every: usize,
    /// While this file exists, running sysup processes are stopped
    /// (SIGSTOP) and nothing new starts: a quiet benchmark is running.
    pub pause_file: Option<PathBuf>,
    /// Stop (after converging) once this much time has passed.
    pub max_time: Option<Duration>,
    /// Print a line per op.
    pub verbose: bool,
}

enum Ran {
    Killed,
    Exited(i32, String),
}

/// The soak's state.
pub struct Soak<'a> {
    cfg: &'a Config,
    pair: &'a Pair,
    mirror: Option<Mirror>,
    root: PathBuf,
    rng: Rng,
    calib: HashMap<Op, Calibration>,
    /// `result: ok` history records expected in the root.
    history_ok: usize,
    /// Where the root is: `None` (empty), Some(false) = A, Some(true) = B.
    at_b: Option<bool>,
    pub report: Report,
    started: Instant,
    cycle: usize,
}

impl<'a> Soak<'a> {
    pub fn new(cfg: &'a Config, pair: &'a Pair) -> Result<Soak<'a>, String> {
        let mirror = if cfg.mirror {
            Some(start_mirror(&cfg.sysup, &cfg.work, pair)?)
        } else {
            None
        };
        let root = cfg.work.join("root");
        Ok(Soak {
            cfg,
            pair,
            mirror,
            root,
            rng: Rng::new(cfg.seed),
            calib: HashMap::new(),
            history_ok: 0,
            at_b: None,
            report: Report {
                pair: pair.kind.label().into(),
                seed: cfg.seed,
                target_kills: cfg.kills,
                ..Report::default()
            },
            started: Instant::now(),
            cycle: 0,
        })
    }

    fn wait_while_paused(&self) {
        if let Some(p) = &self.cfg.pause_file {
            let mut said = false;
            while p.exists() {
                if !said && self.cfg.verbose {
                    eprintln!("soak: paused while {} exists", p.display());
                    said = true;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }

    fn wipe_root(&mut self) -> Result<(), String> {
        if self.root.exists() {
            fs::remove_dir_all(&self.root)
                .map_err(|e| format!("remove {}: {e}", self.root.display()))?;
        }
        fs::create_dir_all(&self.root).map_err(|e| e.to_string())?;
        self.history_ok = 0;
        self.at_b = None;
        Ok(())
    }

    fn command(&self, op: Op) -> Command {
        let mut c = Command::new(&self.cfg.sysup);
        let root = self.root.as_os_str();
        match op {
            Op::Install | Op::ApplyDistA => {
                c.arg("apply")
                    .arg("--root")
                    .arg(root)
                    .arg(&self.pair.a.dist);
            }
            Op::ApplyPatch => {
                c.arg("apply").arg("--root").arg(root).arg(&self.pair.patch);
            }
            Op::Rollback => {
                c.arg("rollback").arg("--root").arg(root);
            }
            Op::UpdateForward | Op::UpdateBack => {
                let m = self.mirror.as_ref().expect("ops needing a mirror have one");
                c.arg("update")
                    .arg("--root")
                    .arg(root)
                    .args(["--mirror", &m.url])
                    .arg("--pubkey")
                    .arg(&m.pubkey);
                if op == Op::UpdateBack {
                    c.args(["--to", &self.pair.a.id]);
                }
                for v in [
                    "http_proxy",
                    "https_proxy",
                    "all_proxy",
                    "HTTP_PROXY",
                    "HTTPS_PROXY",
                    "ALL_PROXY",
                ] {
                    c.env_remove(v);
                }
            }
        }
        c.env_remove("SYSUP_CRASH_AT").env_remove("FAILPOINTS");
        c
    }

    /// Run `op` once; SIGKILL it as `kill` says, counting running time only
    /// (pauses for a quiet benchmark excluded). With `timeline`, note when
    /// each journal record first appears.
    fn run_once(
        &self,
        op: Op,
        kill: Option<Kill>,
        mut timeline: Option<&mut Calibration>,
    ) -> Result<(Ran, Duration), String> {
        self.wait_while_paused();
        let errf = self.cfg.work.join("last-stderr");
        let err = fs::File::create(&errf).map_err(|e| e.to_string())?;
        let mut child = self
            .command(op)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn sysup: {e}"))?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let mut ran = Duration::ZERO;
        let mut last = Instant::now();
        let mut watch = JournalWatch::default();
        let mut staged_at: Option<Duration> = None;
        let status = loop {
            if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
                ran += last.elapsed();
                break st;
            }
            let now = Instant::now();
            ran += now - last;
            last = now;
            if let Some(p) = &self.cfg.pause_file {
                if p.exists() {
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP);
                    while p.exists() {
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
                    last = Instant::now();
                }
            }
            let watching = timeline.is_some()
                || (matches!(kill, Some(Kill::FromCommitPoint(_))) && staged_at.is_none());
            if watching {
                let ms = ran.as_millis() as u64;
                let seen = watch.poll(&self.root);
                if staged_at.is_none() && watch.seen.iter().any(|o| o == "staged") {
                    staged_at = Some(ran);
                }
                if let Some(t) = timeline.as_deref_mut() {
                    match seen {
                        Some(ops) => {
                            for o in ops {
                                t.phases_ms.entry(o).or_insert(ms);
                            }
                        }
                        None => {
                            t.phases_ms.entry("dropped".into()).or_insert(ms);
                        }
                    }
                }
            }
            let deadline = match kill {
                Some(Kill::FromStart(d)) => Some(d),
                Some(Kill::FromCommitPoint(d)) => staged_at.map(|s| s + d),
                None => None,
            };
            if deadline.is_some_and(|d| ran >= d) {
                let _ = child.kill(); // SIGKILL
                let st = child.wait().map_err(|e| e.to_string())?;
                ran += last.elapsed();
                break st;
            }
            let step = match (deadline, watching) {
                (_, true) => Duration::from_millis(2),
                (Some(d), false) => (d - ran).min(Duration::from_millis(20)),
                (None, false) => Duration::from_millis(20),
            };
            std::thread::sleep(step.max(Duration::from_micros(200)));
        };
        if status.signal() == Some(libc::SIGKILL) {
            return Ok((Ran::Killed, ran));
        }
        let stderr = fs::read_to_string(&errf).unwrap_or_default();
        Ok((Ran::Exited(status.code().unwrap_or(-1), stderr), ran))
    }

    /// When to kill the next run of `op`, given the phase the last kill hit
    /// (`None` for the first run). Half of the runs that start from scratch
    /// are killed anywhere in the measured duration, half after the commit
    /// point, so the roll-forward phases — short, but where most of the logic
    /// is — get their share; a re-run after the commit point only rolls
    /// forward, and is killed within that.
    fn draw_kill(&mut self, op: Op, last_phase: Option<&str>) -> Kill {
        let c = &self.calib[&op];
        let total = Duration::from_millis(c.total_ms.max(1));
        let staged = c
            .phases_ms
            .get("staged")
            .map(|&m| Duration::from_millis(m))
            .unwrap_or(Duration::ZERO);
        let end = total.mul_f64(1.02);
        let after = (end - staged.min(end)).max(Duration::from_millis(5));
        match last_phase {
            None | Some("check") | Some("download") | Some("staging") => {
                if self.rng.chance(0.5) {
                    Kill::FromCommitPoint(self.rng.between(Duration::ZERO, after))
                } else {
                    Kill::FromStart(self.rng.between(Duration::ZERO, end))
                }
            }
            Some(_) => Kill::FromStart(self.rng.between(Duration::ZERO, after)),
        }
    }

    /// Run `op` with kills until a run finishes, then check the root.
    /// `kills` (replay) fixes the kills instead of drawing them.
    pub fn op(&mut self, op: Op, kills_given: Option<Vec<Kill>>) -> Result<(), Failure> {
        let target = if op.to_b() {
            &self.pair.b
        } else {
            &self.pair.a
        };
        let mut attempts: Vec<Attempt> = Vec::new();
        let fail = |attempts: &[Attempt], reason: String, s: &Self| Failure {
            seed: s.cfg.seed,
            cycle: s.cycle,
            op: op.name().into(),
            attempts: attempts.to_vec(),
            reason,
            replay: format!(
                "--pair {} --replay {}:{}",
                s.pair.kind.label(),
                op.name(),
                attempts
                    .iter()
                    .filter_map(|a| a.kill.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        };
        let calibrating = !self.calib.contains_key(&op) && kills_given.is_none();
        let mut kills = 0;
        let mut last_phase: Option<String> = None;
        let mut replay = kills_given.map(|d| d.into_iter());
        loop {
            let kill = if calibrating {
                None
            } else if let Some(r) = replay.as_mut() {
                r.next()
            } else if kills < self.cfg.max_kills_per_op
                && (attempts.is_empty() || self.rng.chance(self.cfg.rekill_chance))
            {
                Some(self.draw_kill(op, last_phase.as_deref()))
            } else {
                None
            };
            let mut cal = Calibration::default();
            let (ran, took) = self
                .run_once(op, kill, calibrating.then_some(&mut cal))
                .map_err(|e| fail(&attempts, e, self))?;
            let mut a = Attempt {
                kill: kill.map(|k| k.label()),
                outcome: String::new(),
                elapsed_ms: took.as_millis() as u64,
            };
            match ran {
                Ran::Killed => {
                    let ph = phase(&self.root, &target.id);
                    a.outcome = format!("killed in {ph}");
                    attempts.push(a);
                    kills += 1;
                    self.report.kills += 1;
                    *self.report.kills_by_phase.entry(ph.clone()).or_default() += 1;
                    *self.report.kills_by_op.entry(op.name().into()).or_default() += 1;
                    last_phase = Some(ph);
                }
                Ran::Exited(0, _) => {
                    if kill.is_some() {
                        self.report.finished_before_kill += 1;
                    }
                    a.outcome = "exit 0".into();
                    attempts.push(a);
                    if calibrating {
                        cal.total_ms = took.as_millis() as u64;
                        self.report
                            .calibration
                            .insert(op.name().into(), cal.clone());
                        self.calib.insert(op, cal);
                    }
                    break;
                }
                // A plain `rollback` killed after it finished (its journal
                // dropped) means "one more step back" when run again, which
                // the default two kept bases refuse, saying the last rollback
                // finished (docs/crash-safety.md): the tree is checked below.
                Ran::Exited(1, stderr)
                    if op == Op::Rollback
                        && last_phase.as_deref() == Some("done")
                        && stderr.contains("the last rollback finished") =>
                {
                    a.outcome = "exit 1: already rolled back".into();
                    attempts.push(a);
                    self.report.rollbacks_already_done += 1;
                    break;
                }
                Ran::Exited(code, stderr) => {
                    a.outcome = format!("exit {code}");
                    attempts.push(a);
                    let reason = format!(
                        "a run that was not killed failed (exit {code}): {}",
                        stderr.trim()
                    );
                    return Err(fail(&attempts, reason, self));
                }
            }
        }
        self.report.ops += 1;
        *self.report.ops_by_op.entry(op.name().into()).or_default() += 1;
        self.history_ok += 1;
        self.at_b = Some(op.to_b());
        self.wait_while_paused();
        match self.check(target) {
            Ok(()) => {
                self.report.convergences += 1;
                if self.cfg.verbose {
                    eprintln!(
                        "soak: [{:>6.0}s] cycle {:>3} {:<11} converged after {:?}  (kills {}/{})",
                        self.started.elapsed().as_secs_f64(),
                        self.cycle,
                        op.name(),
                        attempts.iter().map(|a| &a.outcome).collect::<Vec<_>>(),
                        self.report.kills,
                        self.cfg.kills
                    );
                }
                Ok(())
            }
            Err(e) => Err(fail(&attempts, e, self)),
        }
    }

    fn record_failure(&mut self, f: Failure) {
        eprintln!(
            "soak: FAILURE cycle {} op {}: {}\n  attempts {:?}\n  replay: {}",
            f.cycle, f.op, f.reason, f.attempts, f.replay
        );
        let dir = self.cfg.work.join(format!(
            "failures/{}-{}",
            self.cfg.seed,
            self.report.failures.len()
        ));
        if fs::create_dir_all(&dir).is_ok() {
            let _ = fs::copy(self.cfg.work.join("last-stderr"), dir.join("stderr"));
            let _ = fs::copy(self.root.join("var/db/sysup/journal"), dir.join("journal"));
            let _ = fs::copy(self.root.join("var/db/sysup/history"), dir.join("history"));
            let _ = fs::write(
                dir.join("failure.json"),
                serde_json::to_vec_pretty(&f).unwrap_or_default(),
            );
        }
        self.report.failures.push(f);
    }

    /// Start over from an empty root with A installed, uninterrupted.
    fn reset_to_a(&mut self) -> Result<(), String> {
        self.wipe_root()?;
        let mut c = self.command(Op::Install);
        must(&mut c)?;
        self.history_ok = 1;
        self.at_b = Some(false);
        self.check(&self.pair.a)
    }

    fn done(&self) -> bool {
        self.report.kills >= self.cfg.kills
            || self
                .cfg
                .max_time
                .is_some_and(|t| self.started.elapsed() >= t)
    }

    /// Run cycles (forward to B, back to A) until enough kills were made.
    pub fn run(mut self) -> Result<Report, String> {
        let forward: Vec<Op> = [Op::ApplyPatch, Op::UpdateForward]
            .into_iter()
            .filter(|o| !o.needs_mirror() || self.mirror.is_some())
            .collect();
        let back: Vec<Op> = [Op::Rollback, Op::ApplyDistA, Op::UpdateBack]
            .into_iter()
            .filter(|o| !o.needs_mirror() || self.mirror.is_some())
            .collect();
        self.wipe_root()?;
        // The first install is uninterrupted: it calibrates `install`.
        if let Err(f) = self.op(Op::Install, None) {
            self.record_failure(f);
            self.reset_to_a()?;
        }
        while !self.done() {
            self.cycle += 1;
            let reinstall =
                self.cfg.reinstall_every > 0 && self.cycle % self.cfg.reinstall_every == 0;
            let mut ops = Vec::new();
            if reinstall {
                self.wipe_root()?;
                ops.push(Op::Install);
            }
            ops.push(forward[self.cycle % forward.len()]);
            ops.push(back[self.cycle % back.len()]);
            for op in ops {
                if let Err(f) = self.op(op, None) {
                    self.record_failure(f);
                    self.reset_to_a()?;
                    break;
                }
            }
        }
        self.report.wall_s = self.started.elapsed().as_secs_f64();
        Ok(self.report)
    }

    /// Replay one op with fixed kill delays (ms) from a fresh root: A
    /// installed, then B when the op starts from B; each op it needs first
    /// runs uninterrupted.
    pub fn replay(mut self, op: Op, kills: Vec<Kill>) -> Result<Report, String> {
        self.wipe_root()?;
        if op != Op::Install {
            self.op(Op::Install, None).map_err(|f| f.reason)?;
            if !op.to_b() {
                self.op(Op::ApplyPatch, None).map_err(|f| f.reason)?;
            }
        }
        if let Err(f) = self.op(op, Some(kills)) {
            self.record_failure(f);
        }
        self.report.wall_s = self.started.elapsed().as_secs_f64();
        Ok(self.report)
    }
}

/// Write the report as JSON.
pub fn write_report(path: &Path, r: &Report) -> io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(&serde_json::to_vec_pretty(r).expect("serializes"))?;
    f.write_all(b"\n")
}
