//! Shared setup for the integration tests: running the real `sysup` binary,
//! making fixture trees and dists, and snapshotting a tree (every entry's
//! type, mode, owner, mtime, link target, content hash, xattrs, device
//! numbers and hardlink group) so two trees can be compared exactly.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The fixture trees the demo builds (the binary's own module, shared here).
#[path = "../../../src/cli/fixtures.rs"]
pub mod fixtures;

/// The `sysup` binary under test.
pub fn sysup() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sysup"))
}

/// Run a command, returning its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawn command")
}

/// Assert success and return stdout as a string.
pub fn ok(cmd: &mut Command) -> String {
    let o = run(cmd);
    assert!(
        o.status.success(),
        "command failed: {cmd:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Write the fixture world spec into `dir` and return its path.
pub fn world_spec(dir: &Path) -> PathBuf {
    let p = dir.join("world.toml");
    fs::write(&p, fixtures::WORLD_SPEC).unwrap();
    p
}

/// Make fixture world revision `rev` at `dir/tree-<rev>` and build it into
/// `dir/out`; return (tree, dist path).
pub fn world_dist(dir: &Path, rev: u32) -> (PathBuf, PathBuf) {
    let tree = dir.join(format!("tree-{rev}"));
    if !tree.exists() {
        fixtures::make_world(&tree, rev, fixtures::privileged()).unwrap();
    }
    let spec = world_spec(dir);
    let out = dir.join("out");
    let date = format!("202601{:02}", rev);
    ok(sysup()
        .args(["build"])
        .arg(&spec)
        .arg("--tree")
        .arg(&tree)
        .args(["--rev", &rev.to_string(), "--date", &date, "--out"])
        .arg(&out));
    let dist = out.join(format!("world-{rev}-{date}.tar.gz"));
    assert!(dist.exists());
    (tree, dist)
}

/// Make fixture kernel GENERIC revision `rev` at `dir/k<rev>` and build it
/// into `dir` with the spec at `spec`; return (tree, dist path).
pub fn kernel_dist(dir: &Path, spec: &Path, rev: u32) -> (PathBuf, PathBuf) {
    let tree = dir.join(format!("k{rev}"));
    fixtures::make_kernel(&tree, "GENERIC", rev).unwrap();
    let date = format!("2026020{rev}");
    ok(sysup()
        .arg("build")
        .arg(spec)
        .arg("--tree")
        .arg(&tree)
        .args(["--rev", &rev.to_string(), "--date", &date, "--out"])
        .arg(dir));
    (
        tree,
        dir.join(format!("kernel-GENERIC-{rev}-{date}.tar.gz")),
    )
}

/// The tree snapshot, shared with the crash soak.
mod measure;
pub mod nginx;
mod tree;
pub use measure::{measure, run_measured, Measured};
pub use tree::Node;

/// Snapshot every entry below `root` (not `root` itself), keyed by relative path bytes.
pub fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Node> {
    tree::snapshot_where(root, &|_| false)
        .unwrap_or_else(|e| panic!("snapshot {}: {e}", root.display()))
}

/// Describe the differences between two snapshots (empty when equal).
pub fn diff_snapshots(a: &BTreeMap<Vec<u8>, Node>, b: &BTreeMap<Vec<u8>, Node>) -> Vec<String> {
    tree::differences(a, b, ("first", "second"))
}

/// Whether this test process is root (device nodes, chown, capabilities).
pub fn is_root() -> bool {
    fixtures::privileged()
}

/// Say that a test is SKIPPED, and why: a failure under CI, which runs
/// as root with everything `.ci/install-deps` installs.
pub fn skip(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "CI: {why}");
    eprintln!("SKIPPED: {why}");
}

/// Fixture dists and patches: world revisions 1, 2, 3 and the patches 1→2,
/// 2→3, built once per test binary.
pub struct Chain {
    pub dir: PathBuf,
    pub trees: Vec<PathBuf>,
    pub dists: Vec<PathBuf>,
    /// `patches[0]` is 1→2, `patches[1]` is 2→3.
    pub patches: Vec<PathBuf>,
}

/// The shared fixture chain (built on first use).
pub fn chain() -> &'static Chain {
    static C: std::sync::OnceLock<Chain> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chain-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut trees = Vec::new();
        let mut dists = Vec::new();
        for rev in 1..=3 {
            let (t, d) = world_dist(&dir, rev);
            trees.push(t);
            dists.push(d);
        }
        let mut patches = Vec::new();
        for i in 0..2 {
            ok(sysup()
                .arg("diff")
                .arg(&dists[i])
                .arg(&dists[i + 1])
                .arg("--out")
                .arg(dir.join("out")));
            patches.push(dir.join("out").join(format!(
                "world-{}-202601{:02}_{}-202601{:02}.patch",
                i + 1,
                i + 1,
                i + 2,
                i + 2
            )));
            assert!(patches[i].exists(), "{}", patches[i].display());
        }
        Chain {
            dir,
            trees,
            dists,
            patches,
        }
    })
}

/// `sysup apply --root ROOT FILES...`, asserting success; returns stdout.
pub fn apply_ok(root: &Path, files: &[&Path]) -> String {
    let mut c = sysup();
    c.arg("apply").arg("--root").arg(root);
    for f in files {
        c.arg(f);
    }
    ok(&mut c)
}

/// Peak memory any refused command may use (hostile inputs included): the
/// bound RELIABILITY.md states, checked on every [`apply_fails`].
pub const RSS_LIMIT_KIB: u64 = 256 * 1024;

/// `sysup apply`, asserting exit 1 with an `error:` and a peak RSS under
/// [`RSS_LIMIT_KIB`]; returns stderr.
pub fn apply_fails(root: &Path, files: &[&Path]) -> String {
    let mut c = sysup();
    c.arg("apply").arg("--root").arg(root);
    for f in files {
        c.arg(f);
    }
    let o = run_measured(&c);
    let err = o.stderr;
    assert_eq!(o.code, Some(1), "expected exit 1; stderr:\n{err}");
    assert!(
        err.starts_with("error: ") && !err.contains("panicked"),
        "{err}"
    );
    assert!(
        o.max_rss_kib < RSS_LIMIT_KIB,
        "a refused apply peaked at {} KiB (limit {RSS_LIMIT_KIB} KiB); stderr:\n{err}",
        o.max_rss_kib
    );
    err
}

/// A root's snapshot without sysup's own state (`var/db`, which sysup made).
pub fn root_snapshot(root: &Path) -> BTreeMap<Vec<u8>, Node> {
    let mut s = snapshot(root);
    s.retain(|k, _| k != b"var/db" && !k.starts_with(b"var/db/"));
    s
}

/// What a root holding fixture `tree` must look like (excluded `tmp/*` gone).
pub fn expected_snapshot(tree: &Path) -> BTreeMap<Vec<u8>, Node> {
    let mut s = snapshot(tree);
    s.retain(|k, _| !k.starts_with(b"tmp/"));
    s
}

/// Assert a root equals a fixture tree, byte for byte and attribute for attribute.
pub fn assert_root_is(root: &Path, tree: &Path) {
    let d = diff_snapshots(&expected_snapshot(tree), &root_snapshot(root));
    assert!(
        d.is_empty(),
        "root differs from {}:\n{}",
        tree.display(),
        d.join("\n")
    );
}

/// Temporary names an apply may leave behind, anywhere below `root`.
pub fn leftovers(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (k, _) in snapshot(root) {
        let s = String::from_utf8_lossy(&k).into_owned();
        let base = s.rsplit('/').next().unwrap_or(&s).to_string();
        let state = s.starts_with("var/db/sysup/");
        if base.starts_with(".sysup-")
            || base.ends_with(".new")
            || (state
                && (base.ends_with(".tmp") || base == "journal" || base.starts_with("upgrade.")))
        {
            out.push(s);
        }
    }
    out
}

/// Installed id recorded for `world` in `root`.
pub fn installed_world(root: &Path) -> Option<String> {
    let p = root.join("var/db/sysup/installed/world");
    let v: serde_json::Value = serde_json::from_slice(&fs::read(p).ok()?).ok()?;
    Some(v["id"].as_str()?.to_string())
}

/// A member of a crafted (possibly hostile) dist.
pub struct Crafted {
    pub entry: sysup::format::manifest::Entry,
    /// Member name to use instead of the entry's.
    pub member: Option<Vec<u8>>,
    /// Data to store (defaults to none); may differ from the MANIFEST hash.
    pub data: Vec<u8>,
    /// Leave the entry out of the MANIFEST.
    pub unlisted: bool,
}

impl Crafted {
    pub fn file(path: &str, data: &[u8]) -> Crafted {
        use sha2::Digest;
        let mut e = sysup::format::manifest::Entry::new(
            path.as_bytes().to_vec(),
            sysup::format::manifest::Kind::File,
        );
        e.mode = 0o644;
        e.size = data.len() as u64;
        e.sha256 = Some(sha2::Sha256::digest(data).into());
        Crafted {
            entry: e,
            member: None,
            data: data.to_vec(),
            unlisted: false,
        }
    }
    pub fn dir(path: &str) -> Crafted {
        let mut e = sysup::format::manifest::Entry::new(
            path.as_bytes().to_vec(),
            sysup::format::manifest::Kind::Dir,
        );
        e.mode = 0o755;
        Crafted {
            entry: e,
            member: None,
            data: Vec::new(),
            unlisted: false,
        }
    }
    pub fn symlink(path: &str, target: &str) -> Crafted {
        let mut e = sysup::format::manifest::Entry::new(
            path.as_bytes().to_vec(),
            sysup::format::manifest::Kind::Symlink,
        );
        e.mode = 0o777;
        e.link = Some(target.as_bytes().to_vec());
        Crafted {
            entry: e,
            member: None,
            data: Vec::new(),
            unlisted: false,
        }
    }
}

/// Write a dist by hand: DIST + a MANIFEST of the listed entries + the
/// members in the given order (no checks: this is how hostile dists are made).
pub fn craft_dist(dir: &Path, id: &str, arch: &str, members: &[Crafted]) -> PathBuf {
    craft_dist_with(dir, id, arch, "", members)
}

/// [`craft_dist`] with `dist_tables` (e.g. a `[kernel]` table) appended to
/// the DIST member.
pub fn craft_dist_with(
    dir: &Path,
    id: &str,
    arch: &str,
    dist_tables: &str,
    members: &[Crafted],
) -> PathBuf {
    use sysup::format::archive::member::MemberMeta;
    use sysup::format::archive::write::TarWriter;
    let listed: Vec<_> = members
        .iter()
        .filter(|m| !m.unlisted)
        .map(|m| m.entry.clone())
        .collect();
    let mut text = String::from(sysup::format::manifest::HEADER);
    text.push('\n');
    let mut sorted = listed.clone();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    // render through the real renderer when the entries allow it
    let manifest = match sysup::format::manifest::Manifest::new(sorted) {
        Ok(m) => m.render(),
        Err(_) => text,
    };
    let dist = format!(
        "format = 1\nid = \"{id}\"\narch = \"{arch}\"\nentries = {}\n{dist_tables}",
        listed.len()
    );
    let path = dir.join(format!("{id}.tar.gz"));
    let f = fs::File::create(&path).unwrap();
    let mut w = TarWriter::new(sysup::format::gz::Writer::new(f, 6));
    let meta = |name: &'static str, data: &[u8]| MemberMeta {
        path: name.as_bytes().to_vec(),
        kind: sysup::format::manifest::Kind::File,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
        size: data.len() as u64,
        link: None,
        dev: None,
        xattrs: BTreeMap::new(),
    };
    w.append(&meta(".sysup/DIST", dist.as_bytes()), dist.as_bytes())
        .unwrap();
    w.append(
        &meta(".sysup/MANIFEST", manifest.as_bytes()),
        manifest.as_bytes(),
    )
    .unwrap();
    for m in members {
        let e = &m.entry;
        let name = m.member.clone().unwrap_or_else(|| e.member_name());
        let mm = MemberMeta::of_entry(e, name, m.data.len() as u64, e.link.clone());
        w.append(&mm, &m.data[..]).unwrap();
    }
    w.finish().unwrap().finish().unwrap();
    path
}

/// A snapshot for "nothing changed" checks: everything, sysup's state
/// included, except what a refused apply legitimately touches — its history
/// record, the lock file's pid, and the mtimes of the state directories
/// where it created and removed its temporary files.
pub fn guarded_snapshot(root: &Path) -> BTreeMap<Vec<u8>, Node> {
    let mut s = snapshot(root);
    s.remove(b"var/db/sysup/history".as_slice());
    s.remove(b"var/db/sysup/lock".as_slice());
    for d in ["var/db/sysup", "var/db/sysup/bases"] {
        if let Some(n) = s.get_mut(d.as_bytes()) {
            n.mtime = 0;
        }
    }
    s
}

/// Assert that `root` is as `before` said (see [`guarded_snapshot`]).
pub fn assert_unchanged(root: &Path, before: &BTreeMap<Vec<u8>, Node>) {
    let d = diff_snapshots(before, &guarded_snapshot(root));
    assert!(
        d.is_empty(),
        "a refused apply changed the root:\n{}",
        d.join("\n")
    );
}

/// A root with fixture world `rev` installed, and its guarded snapshot.
pub fn installed_root(rev: usize) -> (tempfile::TempDir, BTreeMap<Vec<u8>, Node>) {
    let t = tempfile::tempdir().unwrap();
    apply_ok(t.path(), &[&chain().dists[rev - 1]]);
    let s = guarded_snapshot(t.path());
    (t, s)
}

/// A tmpfs mounted over a directory for the life of the value (needs root).
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        ok(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir));
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
