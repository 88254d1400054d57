//! The pair a soak runs on: its two dists, built from source trees (the
//! fixture worlds or the benchmark corpus), the patch between them, and
//! each side's expected tree, snapshotted from the source tree with std and
//! libc, never from anything sysup wrote.

use super::*;

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
pub(super) fn must(cmd: &mut Command) -> Result<String, String> {
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

pub(super) fn gunzip_sha256(p: &Path) -> io::Result<[u8; 32]> {
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
