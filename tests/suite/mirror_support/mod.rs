//! Shared setup for the `mirror_*` tests: a real nginx bound to 127.0.0.1 on
//! a free port (started per test, killed on drop), fixture world dists and
//! the patches between them (made by the real `sysup build` and
//! `sysup diff`), minisign keys made by the real `minisign` tool, and
//! running `sysup update` against a temporary root.
//!
//! Invariant: everything lives in temporary directories; `sysup update`
//! always gets `--root <tempdir>`, never the real `/`, and runs with proxy
//! variables cleared so it talks to the test's nginx directly.

#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sysup::host::state::{Installed, State};
use sysup::util::digest::Hasher;

pub(crate) use crate::common;

/// A running nginx; killed (and reaped) on drop.
pub struct Nginx {
    child: Child,
    pub port: u16,
    /// Where its config and logs live.
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

/// One access log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub method: String,
    pub uri: String,
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// The Range request header, if any.
    pub range: Option<String>,
    pub accept_encoding: String,
    /// `$upstream_cache_status` of a caching proxy (`-` elsewhere).
    pub cache: String,
}

impl Nginx {
    /// Serve `docroot` as a static mirror; `location` is added inside `location / {}`.
    pub fn serve(docroot: &Path, location: &str) -> Nginx {
        let root = fs::canonicalize(docroot).unwrap();
        Nginx::start(
            "",
            &format!(
                "root {};\n        location / {{ {location} }}",
                root.display()
            ),
        )
    }

    /// A caching proxy in front of `upstream` (the site cache of a remote
    /// facility): dists and patches cached, INDEX and its signature passed through.
    pub fn cache(upstream: &Nginx) -> Nginx {
        Nginx::start(
            // relative to nginx's prefix (its own temp dir): removed with it
            "proxy_cache_path cache levels=1:2 keys_zone=sysup:1m max_size=1g inactive=1d;",
            &format!(
                "location / {{ proxy_pass http://127.0.0.1:{0}; proxy_cache sysup; \
                 proxy_cache_valid 200 1d; }}\n        \
                 location ~ ^/INDEX {{ proxy_pass http://127.0.0.1:{0}; }}",
                upstream.port
            ),
        )
    }

    fn start(http_extra: &str, server_body: &str) -> Nginx {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let log = format!(
            "log_format sysup '$request_method|$uri|$status|$body_bytes_sent|$http_range|$http_accept_encoding|$upstream_cache_status';\n    \
             access_log {}/access.log sysup;\n    {http_extra}",
            dir.display()
        );
        let (child, port) =
            common::nginx::start(&dir, &log, server_body).unwrap_or_else(|e| panic!("{e}"));
        Nginx {
            child,
            port,
            dir,
            _tmp: tmp,
        }
    }

    /// The mirror URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The access log so far (waits until it stops growing: nginx logs a
    /// request just after its last byte is sent).
    pub fn hits(&self) -> Vec<Hit> {
        let p = self.dir.join("access.log");
        let mut last = String::new();
        let t0 = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(60));
            let now = fs::read_to_string(&p).unwrap_or_default();
            if now == last || t0.elapsed() > Duration::from_secs(2) {
                break;
            }
            last = now;
        }
        last.lines()
            .map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                assert_eq!(f.len(), 7, "log line {l:?}");
                Hit {
                    method: f[0].into(),
                    uri: f[1].into(),
                    status: f[2].parse().unwrap(),
                    bytes: f[3].parse().unwrap(),
                    range: (f[4] != "-").then(|| f[4].to_string()),
                    accept_encoding: f[5].into(),
                    cache: f[6].into(),
                }
            })
            .collect()
    }

    /// Hits whose URI is `/file`.
    pub fn hits_of(&self, file: &str) -> Vec<Hit> {
        let uri = format!("/{file}");
        self.hits().into_iter().filter(|h| h.uri == uri).collect()
    }

    /// Forget the log so far.
    pub fn clear_log(&self) {
        let _ = self.hits(); // let pending lines land first
        fs::write(self.dir.join("access.log"), b"").unwrap();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minisign key pair made by the real `minisign -G -W` (no password).
pub struct Keys {
    pub public: PathBuf,
    pub secret: PathBuf,
}

/// Make a key pair in `dir` named `name.pub` / `name.key`.
pub fn keys(dir: &Path, name: &str) -> Keys {
    let k = Keys {
        public: dir.join(format!("{name}.pub")),
        secret: dir.join(format!("{name}.key")),
    };
    common::ok(
        Command::new("minisign")
            .args(["-G", "-W", "-f", "-p"])
            .arg(&k.public)
            .arg("-s")
            .arg(&k.secret)
            .stdin(Stdio::null()),
    );
    k
}

/// Fixture world dists of revisions `1..=n` and the patches `r → r+1`,
/// built once per test binary and copied into each test's mirror.
pub struct Built {
    pub dir: PathBuf,
    /// Dist paths, index `r - 1`.
    pub dists: Vec<PathBuf>,
    /// Patch paths, index `r - 1` for `r → r+1`.
    pub patches: Vec<PathBuf>,
}

/// The dist file name of fixture world revision `rev`.
pub fn dist_name(rev: u32) -> String {
    format!("world-{rev}-202601{rev:02}.tar.gz")
}

/// The id of fixture world revision `rev`.
pub fn id(rev: u32) -> String {
    format!("world-{rev}-202601{rev:02}")
}

/// The patch file name from revision `a` to `b`.
pub fn patch_name(a: u32, b: u32) -> String {
    format!("world-{a}-202601{a:02}_{b}-202601{b:02}.patch")
}

/// Revisions 1..=4 and the three patches between them: built once into
/// `target/tmp/` (keyed by the `sysup` binary, so a rebuilt sysup rebuilds
/// them) and shared by every mirror test binary, under a lock.
pub fn built() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(|| {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        let bin = fs::metadata(env!("CARGO_BIN_EXE_sysup")).unwrap();
        let key = format!(
            "{}-{}-{}-{}",
            u8::from(common::is_root()),
            bin.len(),
            bin.mtime(),
            bin.mtime_nsec()
        );
        let top = Path::new(env!("CARGO_TARGET_TMPDIR"));
        fs::create_dir_all(top).unwrap();
        let dir = top.join(format!("mirror-fixtures-{key}"));
        let lock = fs::File::create(top.join("mirror-fixtures.lock")).unwrap();
        // SAFETY: a valid fd; the lock is released when `lock` is dropped.
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
        let dists: Vec<PathBuf> = (1..=4)
            .map(|r| dir.join("out").join(dist_name(r)))
            .collect();
        let patches: Vec<PathBuf> = (1..4)
            .map(|r| dir.join("out").join(patch_name(r, r + 1)))
            .collect();
        if !dir.join("done").exists() {
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir(&dir).unwrap();
            for rev in 1..=4 {
                assert_eq!(common::world_dist(&dir, rev).1, dists[rev as usize - 1]);
            }
            for r in 1..4 {
                common::ok(
                    common::sysup()
                        .arg("diff")
                        .arg(&dists[r - 1])
                        .arg(&dists[r])
                        .arg("--out")
                        .arg(dir.join("out")),
                );
                assert!(patches[r - 1].exists());
            }
            fs::write(dir.join("done"), b"").unwrap();
        }
        drop(lock);
        Built {
            dir,
            dists,
            patches,
        }
    })
}

/// A test's world: a mirror directory holding copies of the built dists and
/// patches, signing keys, and host roots.
pub struct World {
    pub tmp: tempfile::TempDir,
    /// The mirror's document root (the publish directory).
    pub pub_dir: PathBuf,
    pub keys: Keys,
}

impl World {
    /// A publish directory with dists `revs` and the patches `patches`
    /// (pairs `(a, a+1)`), signed and published.
    pub fn new(revs: &[u32], patches: &[u32]) -> World {
        let b = built();
        let tmp = tempfile::tempdir().unwrap();
        let pub_dir = tmp.path().join("pub");
        fs::create_dir(&pub_dir).unwrap();
        for &r in revs {
            fs::copy(&b.dists[r as usize - 1], pub_dir.join(dist_name(r))).unwrap();
        }
        for &a in patches {
            fs::copy(
                &b.patches[a as usize - 1],
                pub_dir.join(patch_name(a, a + 1)),
            )
            .unwrap();
        }
        let keys = keys(tmp.path(), "sysup");
        let w = World { tmp, pub_dir, keys };
        w.publish();
        w
    }

    /// `sysup publish` the directory, signed. Returns stdout.
    pub fn publish(&self) -> String {
        common::ok(
            common::sysup()
                .arg("publish")
                .arg(&self.pub_dir)
                .arg("--sign")
                .arg(&self.keys.secret),
        )
    }

    /// Replace the INDEX with `text`, signed with the world's key by the real
    /// `minisign` tool (a publisher who writes the INDEX by hand).
    pub fn sign_index(&self, text: &str) {
        fs::write(self.file("INDEX"), text).unwrap();
        common::ok(
            Command::new("minisign")
                .arg("-S")
                .arg("-s")
                .arg(&self.keys.secret)
                .arg("-m")
                .arg(self.file("INDEX"))
                .arg("-x")
                .arg(self.file("INDEX.minisig"))
                .stdin(Stdio::null()),
        );
    }

    /// A new, empty host root under the world's temp dir.
    pub fn root(&self, name: &str) -> PathBuf {
        let r = self.tmp.path().join(name);
        fs::create_dir_all(&r).unwrap();
        r
    }

    /// Path of a file in the publish directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.pub_dir.join(name)
    }
}

/// Whether the host-side apply is wired into `sysup update` in this build.
pub fn apply_available() -> bool {
    static A: OnceLock<bool> = OnceLock::new();
    *A.get_or_init(|| {
        let o = common::run(common::sysup().arg("--help"));
        String::from_utf8_lossy(&o.stdout).contains("\n  apply")
    })
}

/// Install fixture revision `rev` in `root`: through `sysup apply` when it
/// exists, else by recording it as installed (what `sysup update` plans from).
pub fn install(root: &Path, rev: u32) {
    let dist = &built().dists[rev as usize - 1];
    if apply_available() {
        common::ok(
            common::sysup()
                .arg("apply")
                .arg("--root")
                .arg(root)
                .arg(dist),
        );
        return;
    }
    let mut gz = flate2::read::GzDecoder::new(fs::File::open(dist).unwrap());
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = gz.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let state = State::open(root).unwrap();
    state
        .write_installed(&Installed {
            id: id(rev).parse().unwrap(),
            arch: "x86_64".into(),
            installed_at: 0,
            tar: h.finish(),
            base_size: fs::metadata(dist).unwrap().len(),
        })
        .unwrap();
}

/// The installed id of `world` in `root`, if any.
pub fn installed(root: &Path) -> Option<String> {
    State::open(root)
        .unwrap()
        .installed(&"world".parse().unwrap())
        .unwrap()
        .map(|i| i.id.to_string())
}

/// `sysup update --root ROOT --mirror URL --pubkey KEY ARGS…`, proxies cleared.
pub fn update(root: &Path, url: &str, pubkey: &Path, args: &[&str]) -> Output {
    let mut c = update_command(root, url);
    c.arg("--pubkey").arg(pubkey).args(args);
    common::run(&mut c)
}

/// `sysup update --root ROOT --mirror URL` (the key from the root's
/// configuration), proxies cleared; the caller adds arguments and runs it.
/// `c` without this machine's proxy variables: the tests' mirrors are on
/// loopback and must be reached directly.
pub fn without_proxies(c: &mut Command) {
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

pub fn update_command(root: &Path, url: &str) -> Command {
    let mut c = common::sysup();
    c.arg("update")
        .arg("--root")
        .arg(root)
        .args(["--mirror", url]);
    without_proxies(&mut c);
    c
}

/// stderr of an output, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert success and parse the `--json` document.
pub fn json_ok(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "sysup update failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        stderr(o)
    );
    serde_json::from_slice(&o.stdout).expect("one JSON document on stdout")
}

/// Assert a refusal (exit 1) whose stderr contains every one of `needles`.
pub fn refused(o: &Output, needles: &[&str]) -> String {
    let e = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit 1\nstdout: {}\nstderr: {e}",
        String::from_utf8_lossy(&o.stdout)
    );
    for n in needles {
        assert!(e.contains(n), "{n:?} not in stderr:\n{e}");
    }
    e
}

/// Files in the root's download directory.
pub fn downloads(root: &Path) -> Vec<String> {
    let d = root.join("var/db/sysup/download");
    let mut v: Vec<String> = fs::read_dir(&d)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Snapshot of the root, without sysup's own state directory.
pub fn snapshot(root: &Path) -> std::collections::BTreeMap<Vec<u8>, common::Node> {
    common::snapshot(root)
        .into_iter()
        .filter(|(k, _)| !k.starts_with(b"var/db/sysup"))
        .collect()
}

/// The key id of a minisign public key file, from its comment line, as
/// sysup names it: 16 upper-case hex digits (the minisign tool drops
/// leading zeros).
pub fn key_id(pubkey: &Path) -> String {
    let t = fs::read_to_string(pubkey).unwrap();
    let id = t.lines().next().unwrap().rsplit(' ').next().unwrap();
    format!("{:016X}", u64::from_str_radix(id, 16).unwrap())
}

/// The accepted serial recorded in a root for the key in file `pubkey`.
pub fn serial_for(root: &Path, pubkey: &Path) -> Option<u64> {
    let p = root.join(format!("var/db/sysup/mirror/serial.{}", key_id(pubkey)));
    fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().parse().unwrap())
}

/// The accepted serial recorded in a root that has seen one signing key:
/// its one per-key record, else the single record of older versions.
pub fn serial(root: &Path) -> Option<u64> {
    let dir = root.join("var/db/sysup/mirror");
    let per_key: Vec<PathBuf> = fs::read_dir(&dir)
        .map(|r| {
            r.map(|e| e.unwrap().path())
                .filter(|p| {
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("serial.")
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(per_key.len() <= 1, "records of several keys: {per_key:?}");
    let p = per_key.into_iter().next().unwrap_or(dir.join("serial"));
    fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().parse().unwrap())
}

/// The serial line of an INDEX.
pub fn index_serial(index: &Path) -> u64 {
    let t = fs::read_to_string(index).unwrap();
    t.lines()
        .find_map(|l| l.strip_prefix("serial "))
        .unwrap()
        .parse()
        .unwrap()
}

/// Differences between `root` and fixture tree `rev` (empty when the root
/// holds exactly that tree), ignoring what a dist never carries (`tmp/`
/// contents) and sysup's own state directory.
pub fn tree_diff(root: &Path, rev: u32) -> Vec<String> {
    let mut expect = common::snapshot(&built().dir.join(format!("tree-{rev}")));
    expect.retain(|k, _| !k.starts_with(b"tmp/"));
    let mut got = snapshot(root);
    for k in [&b"var/db"[..], b"var"] {
        if !expect.contains_key(k) {
            got.remove(k);
        }
    }
    common::diff_snapshots(&expect, &got)
}

/// A host at fixture revision 1 and a snapshot of its root, to check that a
/// refused update changed nothing.
pub struct Host {
    pub root: PathBuf,
    pub before: std::collections::BTreeMap<Vec<u8>, common::Node>,
}

impl Host {
    pub fn at(w: &World, name: &str, rev: u32) -> Host {
        let root = w.root(name);
        install(&root, rev);
        let before = snapshot(&root);
        Host { root, before }
    }

    /// Nothing was applied: same tree, same installed id, and nothing
    /// unverified left in the download directory (files verified before the
    /// refusal may stay, for the next run).
    pub fn unchanged(&self, rev: u32) {
        let diffs = common::diff_snapshots(&self.before, &snapshot(&self.root));
        assert!(diffs.is_empty(), "the root changed:\n{}", diffs.join("\n"));
        assert_eq!(installed(&self.root).as_deref(), Some(id(rev).as_str()));
        let left = downloads(&self.root);
        assert!(!left.iter().any(|f| f.ends_with(".partial")), "{left:?}");
    }
}
