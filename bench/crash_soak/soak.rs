//! The crash soak's engine, shared by `bench/crash-soak` (the long runs on
//! the benchmark corpus) and `tests/crash_soak.rs` (the quick mode CI runs):
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

// ---------------------------------------------------------------- random

/// SplitMix64: tiny, seedable and plenty for drawing delays.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// Uniform in [lo, hi).
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let hi = hi.max(lo);
        lo + (hi - lo).mul_f64(self.unit())
    }
}

/// A seed from the clock, for runs that do not name one.
pub fn clock_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.as_secs() ^ (u64::from(t.subsec_nanos()) << 20) ^ u64::from(std::process::id())
}

// ---------------------------------------------------------------- trees

/// The tree snapshot, shared with the integration tests.
#[path = "../../tests/common/tree.rs"]
mod tree;
pub use tree::Tree;

/// Snapshot `top`; `skip(rel)` leaves an entry and everything below it out.
pub fn snapshot(top: &Path, skip: &dyn Fn(&[u8]) -> bool) -> io::Result<Tree> {
    tree::snapshot_where(top, skip)
}

/// Differences between the expected and the actual tree (empty when equal).
pub fn diff(want: &Tree, got: &Tree) -> Vec<String> {
    tree::differences(want, got, ("want", "got"))
}

/// The spec the soak builds corpus dists with (docs/design.md §2's example), and the
/// directories whose *contents* it excludes — which the reference leaves out.
pub const CORPUS_SPEC: &str = r#"name = "world"
arch = "x86_64"
include = ["**"]
exclude = ["tmp/**", "var/tmp/**", "proc/**", "sys/**", "dev/pts/**"]
critical = ["usr/lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"]
config = ["etc/**"]
"#;
const EXCLUDED_CONTENTS: &[&str] = &["tmp/", "var/tmp/", "proc/", "sys/", "dev/pts/"];

fn excluded(rel: &[u8]) -> bool {
    EXCLUDED_CONTENTS
        .iter()
        .any(|p| rel.starts_with(p.as_bytes()))
}

// ---------------------------------------------------------------- pairs

/// Which pair of trees to soak on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairKind {
    /// sysup's fixture worlds 1 and 2 (critical files, config, obsolete
    /// paths, hardlinks, devices when root): milliseconds per apply.
    Fixtures,
    /// bench/work/corpus/small-{A,B} (76 MB).
    Small,
    /// bench/work/corpus/tree-{A,B} (~660 MB Debian trees).
    Big,
}

impl PairKind {
    pub fn parse(s: &str) -> Option<PairKind> {
        match s {
            "fixtures" => Some(PairKind::Fixtures),
            "small" => Some(PairKind::Small),
            "big" => Some(PairKind::Big),
            _ => None,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            PairKind::Fixtures => "fixtures",
            PairKind::Small => "small",
            PairKind::Big => "big",
        }
    }
}

/// One side of a pair: its dist and what a root holding it must look like.
pub struct Side {
    pub id: String,
    pub dist: PathBuf,
    pub tree: Tree,
    /// SHA-256 of the uncompressed dist (a kept base must gunzip to it).
    pub tar_sha256: [u8; 32],
}

/// Two dists of one name and the patch between them.
pub struct Pair {
    pub kind: PairKind,
    pub a: Side,
    pub b: Side,
    pub patch: PathBuf,
}

/// Run a command to success, or say what failed.
fn must(cmd: &mut Command) -> Result<String, String> {
    let o = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn gunzip_sha256(p: &Path) -> io::Result<[u8; 32]> {
    let mut gz = flate2::read::MultiGzDecoder::new(io::BufReader::new(fs::File::open(p)?));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = gz.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

/// The identity of a binary (size and mtime), to know when cached dists
/// were made by another build.
fn binary_key(p: &Path) -> String {
    fs::metadata(p)
        .map(|m| format!("{}-{}-{}", m.len(), m.mtime(), m.mtime_nsec()))
        .unwrap_or_default()
}

/// Build (or reuse, when made by the same sysup binary) the dists and the
/// patch of a pair under `work/dists-<pair>/`, and snapshot the reference
/// trees. `corpus` is `bench/work/corpus` (unused for fixtures).
pub fn prepare(sysup: &Path, work: &Path, kind: PairKind, corpus: &Path) -> Result<Pair, String> {
    let dir = work.join(format!("dists-{}", kind.label()));
    let out = dir.join("out");
    let (tree_a, tree_b, spec_text) = match kind {
        PairKind::Fixtures => (
            dir.join("tree-1"),
            dir.join("tree-2"),
            crate::fixtures::WORLD_SPEC,
        ),
        PairKind::Small => (corpus.join("small-A"), corpus.join("small-B"), CORPUS_SPEC),
        PairKind::Big => (corpus.join("tree-A"), corpus.join("tree-B"), CORPUS_SPEC),
    };
    let (id_a, id_b) = ("world-1-20260101", "world-2-20260102");
    let dist_a = out.join(format!("{id_a}.tar.gz"));
    let dist_b = out.join(format!("{id_b}.tar.gz"));
    let patch = out.join("world-1-20260101_2-20260102.patch");
    let key = format!("{} {}", kind.label(), binary_key(sysup));
    let stamp = dir.join("stamp");
    let fresh = fs::read_to_string(&stamp).ok().as_deref() == Some(key.as_str())
        && dist_a.exists()
        && dist_b.exists()
        && patch.exists();
    if !fresh {
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&out).map_err(|e| format!("create {}: {e}", out.display()))?;
        if kind == PairKind::Fixtures {
            let privileged = crate::fixtures::privileged();
            for (t, rev) in [(&tree_a, 1), (&tree_b, 2)] {
                crate::fixtures::make_world(t, rev, privileged)
                    .map_err(|e| format!("fixture tree {rev}: {e}"))?;
            }
        } else {
            for t in [&tree_a, &tree_b] {
                if !t.is_dir() {
                    return Err(format!(
                        "{} is missing: build the corpus first (bench/make-corpus.sh)",
                        t.display()
                    ));
                }
                // a /proc left mounted in a corpus tree would be walked
                let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
                let canon = fs::canonicalize(t).unwrap_or(t.to_path_buf());
                if mounts.lines().any(|l| {
                    l.split(' ')
                        .nth(1)
                        .is_some_and(|m| Path::new(m).starts_with(&canon))
                }) {
                    return Err(format!("something is mounted inside {}", t.display()));
                }
            }
        }
        let spec = dir.join("world.toml");
        fs::write(&spec, spec_text).map_err(|e| e.to_string())?;
        for (t, rev, date) in [(&tree_a, "1", "20260101"), (&tree_b, "2", "20260102")] {
            eprintln!(
                "soak: building {} dist {rev} from {}",
                kind.label(),
                t.display()
            );
            must(
                Command::new(sysup)
                    .arg("build")
                    .arg(&spec)
                    .arg("--tree")
                    .arg(t)
                    .args(["--rev", rev, "--date", date, "--out"])
                    .arg(&out),
            )?;
        }
        eprintln!("soak: diffing {} 1 -> 2", kind.label());
        must(
            Command::new(sysup)
                .arg("diff")
                .arg(&dist_a)
                .arg(&dist_b)
                .arg("--out")
                .arg(&out),
        )?;
        fs::write(&stamp, &key).map_err(|e| e.to_string())?;
    }
    let side = |id: &str, dist: PathBuf, tree: &Path| -> Result<Side, String> {
        Ok(Side {
            id: id.to_string(),
            tree: snapshot(tree, &excluded)
                .map_err(|e| format!("snapshot {}: {e}", tree.display()))?,
            tar_sha256: gunzip_sha256(&dist).map_err(|e| format!("{}: {e}", dist.display()))?,
            dist,
        })
    };
    Ok(Pair {
        kind,
        a: side(id_a, dist_a, &tree_a)?,
        b: side(id_b, dist_b, &tree_b)?,
        patch,
    })
}

// ---------------------------------------------------------------- mirror

/// A local nginx serving a signed INDEX of the pair (as `tests/mirror_support`
/// starts it: bound to 127.0.0.1, killed on drop).
pub struct Mirror {
    child: Child,
    pub url: String,
    pub pubkey: PathBuf,
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether nginx and minisign are installed.
pub fn mirror_tools() -> bool {
    ["nginx", "minisign"].iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Publish the pair (both dists and the patch, signed with a fresh minisign
/// key) under `work/mirror/` and serve it.
pub fn start_mirror(sysup: &Path, work: &Path, pair: &Pair) -> Result<Mirror, String> {
    // nginx resolves the paths of its configuration against its prefix
    // (`-p`): every one of them must be absolute, whatever `--work` was.
    let dir = std::path::absolute(work.join("mirror")).map_err(|e| e.to_string())?;
    let _ = fs::remove_dir_all(&dir);
    let docroot = dir.join("pub");
    fs::create_dir_all(docroot.join("..").join("tmp")).map_err(|e| e.to_string())?;
    fs::create_dir_all(&docroot).map_err(|e| e.to_string())?;
    for f in [&pair.a.dist, &pair.b.dist, &pair.patch] {
        let to = docroot.join(f.file_name().expect("file"));
        fs::hard_link(f, &to)
            .or_else(|_| fs::copy(f, &to).map(|_| ()))
            .map_err(|e| format!("publish {}: {e}", f.display()))?;
    }
    let (pubkey, seckey) = (dir.join("sysup.pub"), dir.join("sysup.key"));
    must(
        Command::new("minisign")
            .args(["-G", "-W", "-f", "-p"])
            .arg(&pubkey)
            .arg("-s")
            .arg(&seckey)
            .stdin(Stdio::null()),
    )?;
    must(
        Command::new(sysup)
            .arg("publish")
            .arg(&docroot)
            .arg("--sign")
            .arg(&seckey),
    )?;
    let docroot = fs::canonicalize(&docroot).map_err(|e| e.to_string())?;
    for _ in 0..10 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let d = dir.display();
        let conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nevents {{ worker_connections 64; }}\n\
             http {{\n  default_type application/octet-stream;\n  access_log off;\n  \
             client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n  \
             fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  \
             scgi_temp_path {d}/tmp/scgi;\n  server {{\n    listen 127.0.0.1:{port};\n    \
             root {};\n    location / {{ }}\n  }}\n}}\n",
            docroot.display()
        );
        fs::write(dir.join("nginx.conf"), conf).map_err(|e| e.to_string())?;
        let mut child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .args(["-g", "daemon off; master_process off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start nginx: {e}"))?;
        let t0 = Instant::now();
        loop {
            if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
                let log = fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                if log.contains("Address already in use") {
                    break;
                }
                return Err(format!("nginx exited ({st}):\n{log}"));
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Mirror {
                    child,
                    url: format!("http://127.0.0.1:{port}/"),
                    pubkey,
                });
            }
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                return Err("nginx did not start".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Err("no free port for nginx".into())
}

// ---------------------------------------------------------------- ops

/// An operation the soak runs (and kills) on the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `sysup apply --root R A.tar.gz` on an empty root.
    Install,
    /// `sysup apply --root R A_B.patch` (A → B).
    ApplyPatch,
    /// `sysup update` from the mirror (A → B, by the patch).
    UpdateForward,
    /// `sysup rollback` (B → A, from the kept base).
    Rollback,
    /// `sysup apply --root R A.tar.gz` over B.
    ApplyDistA,
    /// `sysup update --to A` from the mirror (B → A, the full dist).
    UpdateBack,
}

impl Op {
    pub const ALL: [Op; 6] = [
        Op::Install,
        Op::ApplyPatch,
        Op::UpdateForward,
        Op::Rollback,
        Op::ApplyDistA,
        Op::UpdateBack,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Op::Install => "install",
            Op::ApplyPatch => "apply-patch",
            Op::UpdateForward => "update",
            Op::Rollback => "rollback",
            Op::ApplyDistA => "apply-dist",
            Op::UpdateBack => "update-back",
        }
    }
    pub fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.name() == s)
    }
    /// Whether the op ends on B (else on A).
    pub fn to_b(self) -> bool {
        matches!(self, Op::ApplyPatch | Op::UpdateForward)
    }
    fn needs_mirror(self) -> bool {
        matches!(self, Op::UpdateForward | Op::UpdateBack)
    }
}

// ---------------------------------------------------------------- report

/// One run of a command within an op.
#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    /// When it was to be killed (`1234`, or `c1234` after the commit
    /// point; none: let it finish).
    pub kill: Option<String>,
    /// `killed` (and the phase it hit) or `exit <code>`.
    pub outcome: String,
    pub elapsed_ms: u64,
}

/// A failure, with what is needed to replay it.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub seed: u64,
    pub cycle: usize,
    pub op: String,
    pub attempts: Vec<Attempt>,
    pub reason: String,
    /// Arguments that replay this op with the same kill delays.
    pub replay: String,
}

/// Timing of an uninterrupted run of an op.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Calibration {
    pub total_ms: u64,
    /// When the journal first held each record kind (`begin`, `staged`,
    /// `committed`, `recorded`) and when it was dropped (`dropped`).
    pub phases_ms: BTreeMap<String, u64>,
}

/// What a soak did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub pair: String,
    pub seed: u64,
    pub target_kills: usize,
    /// Runs ended by SIGKILL.
    pub kills: usize,
    /// Kills by the phase the journal showed afterwards.
    pub kills_by_phase: BTreeMap<String, usize>,
    pub kills_by_op: BTreeMap<String, usize>,
    /// Runs meant to be killed that finished first.
    pub finished_before_kill: usize,
    /// Rollbacks killed after they finished, whose re-run was refused with
    /// "the last rollback finished" (expected, see docs/crash-safety.md).
    pub rollbacks_already_done: usize,
    /// Ops run (each ends with a run that finishes, then the checks).
    pub ops: usize,
    pub ops_by_op: BTreeMap<String, usize>,
    /// Ops whose root then matched the target with nothing left over.
    pub convergences: usize,
    pub failures: Vec<Failure>,
    pub calibration: BTreeMap<String, Calibration>,
    pub wall_s: f64,
}

impl Report {
    /// A few lines for people.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "crash soak on the {} pair, seed {}: {} kills ({} asked), {} ops, {} convergences, {} failures, {} runs finished before their kill, {:.0} s\n",
            self.pair,
            self.seed,
            self.kills,
            self.target_kills,
            self.ops,
            self.convergences,
            self.failures.len(),
            self.finished_before_kill,
            self.wall_s
        );
        s += &format!("  kills by phase: {:?}\n", self.kills_by_phase);
        s += &format!("  kills by op:    {:?}\n", self.kills_by_op);
        if self.rollbacks_already_done > 0 {
            s += &format!(
                "  rollbacks killed after finishing, re-run refused as done: {}\n",
                self.rollbacks_already_done
            );
        }
        s += &format!("  ops:            {:?}\n", self.ops_by_op);
        for (op, c) in &self.calibration {
            s += &format!(
                "  uninterrupted {op}: {} ms, journal {:?}\n",
                c.total_ms, c.phases_ms
            );
        }
        for f in &self.failures {
            s += &format!(
                "  FAILURE cycle {} op {} seed {}: {}\n    attempts: {:?}\n    replay: {}\n",
                f.cycle, f.op, f.seed, f.reason, f.attempts, f.replay
            );
        }
        s
    }
}

// ---------------------------------------------------------------- the soak

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

/// What the journal said after a kill: the phase the kill hit.
fn phase(root: &Path, target_id: &str) -> String {
    let state = root.join("var/db/sysup");
    let text = match fs::read(state.join("journal")) {
        Ok(t) => t,
        Err(_) => {
            let installed = fs::read(state.join("installed/world")).unwrap_or_default();
            let on_target = serde_json::from_slice::<serde_json::Value>(&installed)
                .ok()
                .and_then(|v| v["id"].as_str().map(|s| s == target_id))
                .unwrap_or(false);
            let downloading = fs::read_dir(state.join("download"))
                .map(|mut r| r.next().is_some())
                .unwrap_or(false);
            return if on_target {
                "done"
            } else if downloading {
                "download"
            } else {
                "check"
            }
            .into();
        }
    };
    let mut ops = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) {
            if let Some(op) = v["op"].as_str() {
                ops.push(op.to_string());
            }
        }
    }
    let has = |o: &str| ops.iter().any(|x| x == o);
    if has("recorded") {
        "cleanup"
    } else if has("committed") {
        "record"
    } else if has("staged") {
        "commit"
    } else if has("begin") {
        "staging"
    } else {
        "check"
    }
    .into()
}

/// Follows the journal as it grows (it is append-only), noting which record
/// kinds have appeared, without re-reading what it already saw.
#[derive(Default)]
struct JournalWatch {
    offset: u64,
    at_line_start: bool,
    seen: Vec<String>,
    existed: bool,
}

impl JournalWatch {
    /// New record kinds since the last call; `None` once the journal is gone
    /// (after it existed).
    fn poll(&mut self, root: &Path) -> Option<Vec<String>> {
        let p = root.join("var/db/sysup/journal");
        let Ok(mut f) = fs::File::open(&p) else {
            return if self.existed { None } else { Some(Vec::new()) };
        };
        if !self.existed {
            self.existed = true;
            self.at_line_start = true;
        }
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len <= self.offset {
            return Some(Vec::new());
        }
        use std::io::Seek;
        let mut buf = Vec::new();
        let _ = f.seek(io::SeekFrom::Start(self.offset));
        let _ = f.read_to_end(&mut buf);
        let mut new = Vec::new();
        let mut start = self.at_line_start;
        for (i, &b) in buf.iter().enumerate() {
            if start {
                // a prefix names the record, even while it is being written
                for op in ["begin", "staged", "committed", "recorded"] {
                    let tag = format!("{{\"op\":\"{op}\"");
                    if buf[i..].starts_with(tag.as_bytes()) && !self.seen.iter().any(|s| s == op) {
                        self.seen.push(op.to_string());
                        new.push(op.to_string());
                    }
                }
            }
            start = b == b'\n';
        }
        self.at_line_start = start;
        self.offset += buf.len() as u64;
        Some(new)
    }
}

/// When to SIGKILL a run: after this much running time from its start, or
/// from the moment its journal holds the `staged` record (the commit point),
/// so that kills meant for the roll-forward land there however busy the
/// machine is. Written `1234` / `c1234` (ms) in reports and `--replay`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kill {
    FromStart(Duration),
    FromCommitPoint(Duration),
}

impl Kill {
    pub fn label(&self) -> String {
        match self {
            Kill::FromStart(d) => d.as_millis().to_string(),
            Kill::FromCommitPoint(d) => format!("c{}", d.as_millis()),
        }
    }
    pub fn parse(s: &str) -> Option<Kill> {
        match s.strip_prefix('c') {
            Some(ms) => ms
                .parse()
                .ok()
                .map(|m| Kill::FromCommitPoint(Duration::from_millis(m))),
            None => s
                .parse()
                .ok()
                .map(|m| Kill::FromStart(Duration::from_millis(m))),
        }
    }
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

    /// The root holds `target` exactly, and nothing temporary is left.
    pub fn check(&self, target: &Side) -> Result<(), String> {
        let want = &target.tree;
        let keep_var_db = want.contains_key(b"var/db".as_slice());
        let skip = |rel: &[u8]| rel == b"var/db/sysup" || (!keep_var_db && rel == b"var/db");
        let got = snapshot(&self.root, &skip).map_err(|e| format!("snapshot root: {e}"))?;
        let d = diff(want, &got);
        if !d.is_empty() {
            let n = d.len();
            let shown: Vec<String> = d.into_iter().take(12).collect();
            return Err(format!(
                "the root is not {} ({n} differences):\n  {}",
                target.id,
                shown.join("\n  ")
            ));
        }
        let state = self.root.join("var/db/sysup");
        let mut left = Vec::new();
        let list = |sub: &str| -> Vec<String> {
            fs::read_dir(state.join(sub))
                .map(|r| {
                    r.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        for name in list("") {
            // `stat-<name>`: the stat cache an apply records (host/statcache.rs)
            let ok = matches!(
                name.as_str(),
                "lock" | "installed" | "bases" | "download" | "history" | "mirror"
            ) || name.starts_with("stat-");
            if !ok {
                left.push(name); // journal, upgrade.<txid>, temporaries
            }
        }
        for name in list("installed") {
            if name != "world" {
                left.push(format!("installed/{name}"));
            }
        }
        let bases = list("bases");
        for name in &bases {
            let known = [&self.pair.a.id, &self.pair.b.id]
                .iter()
                .any(|id| *name == format!("{id}.tar.gz"));
            if !known {
                left.push(format!("bases/{name}"));
            }
        }
        for name in list("download") {
            left.push(format!("download/{name}"));
        }
        for name in list("mirror") {
            // the accepted serial per signing key (`serial.<key id>`)
            if !name.starts_with("serial.") {
                left.push(format!("mirror/{name}"));
            }
        }
        if !left.is_empty() {
            return Err(format!("left in var/db/sysup: {left:?}"));
        }
        // the lock is free: no process holds it
        if let Ok(f) = fs::File::open(state.join("lock")) {
            // SAFETY: a valid descriptor.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                return Err("the lock is still held".into());
            }
        }
        let inst: serde_json::Value =
            serde_json::from_slice(&fs::read(state.join("installed/world")).unwrap_or_default())
                .map_err(|e| format!("installed/world: {e}"))?;
        if inst["id"].as_str() != Some(target.id.as_str()) {
            return Err(format!(
                "installed/world says {}, not {}",
                inst["id"], target.id
            ));
        }
        let base = state.join(format!("bases/{}.tar.gz", target.id));
        let sha = gunzip_sha256(&base).map_err(|e| format!("{}: {e}", base.display()))?;
        if sha != target.tar_sha256 {
            return Err(format!(
                "{} does not gunzip to the dist's tar",
                base.display()
            ));
        }
        // One `ok` record per finished op: none lost, none repeated (a re-run
        // after a kill in cleanup must not append its txid again). A run
        // killed after it finished is a repair when run again: not counted.
        let hist = fs::read_to_string(state.join("history")).unwrap_or_default();
        let oks: Vec<serde_json::Value> = hist
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["result"] == "ok" && v["action"] != "repair")
            .collect();
        if oks.len() != self.history_ok {
            return Err(format!(
                "history holds {} ok records, {} expected (one per finished op)",
                oks.len(),
                self.history_ok
            ));
        }
        if let Some(w) = oks
            .windows(2)
            .find(|w| w[0]["txid"].is_string() && w[0]["txid"] == w[1]["txid"])
        {
            return Err(format!("history repeats transaction {}", w[0]["txid"]));
        }
        Ok(())
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
