//! Deterministic fixture trees: several revisions of a tiny Debian-like world
//! and of named kernels, used by the tests, the benchmarks' smoke runs and
//! `sysup demo`.
//!
//! Each revision differs from the last the way real upgrades do: changed
//! binaries (small edits inside larger pseudo-random content, so binary
//! diffs are meaningful), added and removed files, a version-renamed shared
//! library (`libfoo.so.1.2` → `libfoo.so.1.3` behind a `libfoo.so.1` link), a
//! changed critical libc and loader, and a config file.
//!
//! Every tree also holds the awkward entries a real root has: symlinks
//! (relative, absolute, dangling, merged-/usr `bin -> usr/bin`), a hardlink
//! pair, setuid/setgid/sticky modes, a read-only empty directory, a fifo, a
//! path over 100 bytes and a non-UTF-8 name; with `privileged` (root) also a
//! device node, non-root owners and a file capability.
//!
//! Invariant: the same (revision, privileged) always gives the same tree —
//! contents, modes, owners, mtimes — so dists built from it are reproducible.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use sysup::error::{Error, IoContext, Result};
use sysup::util::fsutil::set_xattr;

/// The spec text of the fixture world (critical libc and loader, `etc/**` config).
pub const WORLD_SPEC: &str = r#"name = "world"
arch = "x86_64"
include = ["**"]
exclude = ["tmp/**", "var/tmp/**", "proc/**", "sys/**", "dev/pts/**"]
critical = ["usr/lib/x86_64-linux-gnu/libc.so.6", "usr/lib64/ld-linux-x86-64.so.2"]
config = ["etc/**"]
"#;

/// The spec text of a fixture kernel named `conf`.
pub fn kernel_spec(conf: &str) -> String {
    format!(
        r#"name = "kernel-{conf}"
arch = "x86_64"
include = ["boot/kernel", "boot/kernel/**"]
install_dir = "boot/kernel"
keep_old = "boot/kernel.old"
"#
    )
}

/// Base mtime of revision `rev` (seconds since the epoch).
pub fn rev_mtime(rev: u32) -> i64 {
    1_700_000_000 + i64::from(rev) * 86_400
}

/// Whether this process may create device nodes and chown (is root).
pub fn privileged() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Deterministic pseudo-random bytes (xorshift64*), seeded by `seed`.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `base` noise with revision-dependent edits: a "binary" that changes a
/// little between revisions, as rebuilt code does.
fn binary(seed: u64, len: usize, rev: u32) -> Vec<u8> {
    let mut b = noise(seed, len);
    for r in 1..=rev {
        let at = (noise(seed ^ u64::from(r), 8)[0] as usize * 997 + r as usize * 4099) % len.max(1);
        let patch = noise(seed + u64::from(r) * 31, 64.min(len - at));
        b[at..at + patch.len()].copy_from_slice(&patch);
        // code that grew: insert a few bytes
        b.splice(at / 2..at / 2, format!("rev{r}").bytes());
    }
    b
}

/// A changelog text: 40 old entries and one more per revision, newest first.
fn changelog(rev: u32) -> Vec<u8> {
    let words = [
        "fix",
        "crash",
        "when",
        "the",
        "base",
        "is",
        "missing",
        "update",
        "translations",
        "rebuild",
        "against",
        "new",
        "libc",
        "security",
        "CVE",
        "in",
        "parser",
        "tidy",
        "docs",
    ];
    let mut out = Vec::new();
    for r in (1..=rev + 40).rev() {
        out.extend_from_slice(
            format!("sysup-fixture (1.{r}) unstable; urgency=medium\n\n").as_bytes(),
        );
        let n = noise(u64::from(r) * 7919, 48);
        for line in n.chunks(8) {
            out.extend_from_slice(b"  *");
            for &b in line {
                out.push(b' ');
                out.extend_from_slice(words[usize::from(b) % words.len()].as_bytes());
            }
            out.push(b'\n');
        }
        out.extend_from_slice(
            format!("\n -- Fixture Maintainer <fixture@example.org>  rev {r}\n\n").as_bytes(),
        );
    }
    out
}

/// `data` as a gzip file of stored (uncompressed) deflate blocks.
fn stored_gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::none());
    e.write_all(data).expect("write to memory");
    e.finish().expect("write to memory")
}

struct Tree {
    root: PathBuf,
    privileged: bool,
}

impl Tree {
    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
    fn dir(&self, rel: &str, mode: u32) -> Result<()> {
        let p = self.p(rel);
        fs::create_dir_all(&p).ctx("create directory", &p)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).ctx("chmod", &p)
    }
    fn file(&self, rel: &str, mode: u32, data: &[u8]) -> Result<()> {
        let p = self.p(rel);
        fs::write(&p, data).ctx("write", &p)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).ctx("chmod", &p)
    }
    fn link(&self, target: &str, rel: &str) -> Result<()> {
        let p = self.p(rel);
        symlink(target, &p).ctx("create symlink", &p)
    }
    fn own(&self, rel: &str, uid: u32, gid: u32) -> Result<()> {
        if self.privileged {
            let p = self.p(rel);
            std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).ctx("chown", &p)?;
        }
        Ok(())
    }
}

/// Write revision `rev` (1, 2, 3, …) of the fixture world into the empty or
/// missing directory `root`.
pub fn make_world(root: &Path, rev: u32, privileged: bool) -> Result<()> {
    if rev == 0 {
        return Err(Error::Refused("fixture revisions start at 1".into()));
    }
    fs::create_dir_all(root).ctx("create directory", root)?;
    let t = Tree {
        root: root.to_path_buf(),
        privileged,
    };
    for (d, m) in [
        ("etc", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("usr/lib/x86_64-linux-gnu", 0o755),
        ("usr/lib64", 0o755),
        ("usr/share/doc/sysup-fixture", 0o755),
        ("var/lib/misc", 0o755),
        ("var/empty", 0o555),
        ("var/spool/mail", 0o2775),
        ("tmp", 0o1777),
        ("dev", 0o755),
        ("run", 0o755),
    ] {
        t.dir(d, m)?;
    }
    // merged /usr
    t.link("usr/bin", "bin")?;
    t.link("usr/lib", "lib")?;
    t.link("usr/lib64", "lib64")?;

    // critical: libc and the loader change every revision
    t.file(
        "usr/lib/x86_64-linux-gnu/libc.so.6",
        0o755,
        &binary(1, 96 * 1024, rev),
    )?;
    t.file(
        "usr/lib64/ld-linux-x86-64.so.2",
        0o755,
        &binary(2, 48 * 1024, rev),
    )?;

    // binaries: sh changes every revision, ls only from rev 3, cat never
    t.file("usr/bin/dash", 0o755, &binary(3, 40 * 1024, rev))?;
    t.link("dash", "usr/bin/sh")?;
    t.file(
        "usr/bin/ls",
        0o755,
        &binary(4, 64 * 1024, rev.saturating_sub(1)),
    )?;
    t.file("usr/bin/cat", 0o755, &binary(5, 24 * 1024, 0))?;
    // hardlink pair
    t.file("usr/bin/gzip", 0o755, &binary(6, 32 * 1024, rev / 2))?;
    let (g, gu) = (t.p("usr/bin/gzip"), t.p("usr/bin/gunzip"));
    fs::hard_link(&g, &gu).ctx("create hard link", &gu)?;
    // setuid / setgid, with a capability when privileged
    t.file("usr/bin/passwd", 0o4755, &binary(7, 20 * 1024, 0))?;
    t.file("usr/bin/wall", 0o2755, &binary(8, 8 * 1024, 0))?;
    t.own("usr/bin/wall", 0, 5)?;
    t.file("usr/bin/ping", 0o755, &binary(9, 16 * 1024, rev))?;
    if privileged {
        // cap_net_raw+ep, as `setcap cap_net_raw+ep ping` writes it (v2 format)
        let cap = [
            0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        let p = t.p("usr/bin/ping");
        set_xattr(&p, "security.capability", &cap).ctx("set capability on", &p)?;
    }
    // absolute and dangling symlinks
    t.link("/usr/bin/dash", "usr/bin/awk")?;
    t.link("../share/missing/nowhere", "usr/bin/dangling")?;

    // removed after rev 1, added from rev 2
    if rev == 1 {
        t.file("usr/bin/oldtool", 0o755, &binary(10, 12 * 1024, 0))?;
    } else {
        t.file("usr/bin/newtool", 0o755, &binary(11, 12 * 1024, rev))?;
    }
    // version-renamed library behind a stable soname link
    let minor = rev + 1;
    let lib = format!("usr/lib/x86_64-linux-gnu/libfoo.so.1.{minor}");
    t.file(&lib, 0o644, &binary(12, 80 * 1024, rev))?;
    t.link(
        &format!("libfoo.so.1.{minor}"),
        "usr/lib/x86_64-linux-gnu/libfoo.so.1",
    )?;

    // config files: one changes between revisions, one does not
    t.file(
        "etc/motd",
        0o644,
        format!("sysup fixture world, revision {rev}\n").as_bytes(),
    )?;
    t.file("etc/hostname", 0o644, b"fixture\n")?;
    t.file("etc/shadow", 0o640, b"root:*:19000:0:99999:7:::\n")?;
    t.own("etc/shadow", 0, 42)?;
    t.file(
        "etc/sysup-demo.conf",
        0o644,
        format!("# demo settings\nlevel = {}\n", 1 + rev / 2).as_bytes(),
    )?;

    // gzipped docs that gain an entry every revision: one as `gzip -9n`
    // writes it (zlib reproduces it: the patch diffs it uncompressed), one
    // in stored blocks (no deflater makes that again: diffed as it is)
    let log = changelog(rev);
    let gz =
        sysup::format::patch::regz::rebuild(&sysup::format::patch::regz::GZIP_9N_HEADER, &log, 9)
            .map_err(|e| Error::io("gzip fixture changelog in", root, e))?;
    t.file("usr/share/doc/sysup-fixture/changelog.gz", 0o644, &gz)?;
    t.file(
        "usr/share/doc/sysup-fixture/NEWS.gz",
        0o644,
        &stored_gzip(&log[..log.len() / 2]),
    )?;

    // a user-owned file, a long path and a non-UTF-8 name
    t.file("var/spool/mail/user", 0o660, b"")?;
    t.own("var/spool/mail/user", 1000, 8)?;
    let deep = format!(
        "usr/share/doc/sysup-fixture/{}/{}",
        "a-rather-long-directory-name-to-cross-the-ustar-limit",
        "and-a-file-name-long-enough-for-pax-path-records.txt"
    );
    t.dir(deep.rsplit_once('/').map(|x| x.0).unwrap_or(""), 0o755)?;
    t.file(&deep, 0o644, format!("deep, revision {rev}\n").as_bytes())?;
    let latin1 = t
        .p("usr/share/doc/sysup-fixture")
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt"));
    fs::write(&latin1, b"latin-1 name\n").ctx("write", &latin1)?;

    // fifo, and a device node when privileged
    let fifo = t.p("run/initctl");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| Error::io("create fifo", &fifo, e.into()))?;
    if privileged {
        let null = t.p("dev/null");
        nix::sys::stat::mknod(
            &null,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .map_err(|e| Error::io("create device node", &null, e.into()))?;
        fs::set_permissions(&null, fs::Permissions::from_mode(0o666)).ctx("chmod", &null)?;
    }
    // excluded content
    t.file("tmp/scratch", 0o644, b"not shipped\n")?;
    set_mtimes(root, rev_mtime(rev))
}

/// Write revision `rev` of the fixture kernel `conf` (a `boot/kernel` tree).
pub fn make_kernel(root: &Path, conf: &str, rev: u32) -> Result<()> {
    let t = Tree {
        root: root.to_path_buf(),
        privileged: false,
    };
    t.dir("boot/kernel", 0o755)?;
    let seed = conf.bytes().map(u64::from).sum::<u64>();
    t.file(
        "boot/kernel/kernel",
        0o555,
        &binary(100 + seed, 256 * 1024, rev),
    )?;
    t.file(
        "boot/kernel/if_em.ko",
        0o555,
        &binary(200 + seed, 32 * 1024, rev / 2),
    )?;
    if rev >= 2 {
        t.file(
            "boot/kernel/if_vtnet.ko",
            0o555,
            &binary(300 + seed, 24 * 1024, rev),
        )?;
    }
    t.file(
        "boot/kernel/linker.hints",
        0o444,
        format!("{conf} {rev}\n").as_bytes(),
    )?;
    set_mtimes(root, rev_mtime(rev))
}

/// Set the mtime of everything below `root` (not following symlinks), leaves
/// first so directory mtimes stick.
pub fn set_mtimes(root: &Path, mtime: i64) -> Result<()> {
    for entry in fs::read_dir(root).ctx("list", root)? {
        let entry = entry.ctx("list", root)?;
        let p = entry.path();
        let ft = entry.file_type().ctx("stat", &p)?;
        if ft.is_dir() {
            set_mtimes(&p, mtime)?;
        }
        set_mtime(&p, mtime)?;
    }
    Ok(())
}

fn set_mtime(p: &Path, mtime: i64) -> Result<()> {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Refused(format!("path '{}' contains NUL", p.display())))?;
    let ts = libc::timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    // SAFETY: c is a valid C string, times has two timespecs.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r != 0 {
        return Err(Error::io(
            "set mtime of",
            p,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_deterministic_and_revisions_differ() {
        assert_eq!(noise(7, 100), noise(7, 100));
        assert_ne!(noise(7, 100), noise(8, 100));
        assert_ne!(binary(1, 4096, 1), binary(1, 4096, 2));
        assert_eq!(binary(1, 4096, 2), binary(1, 4096, 2));
    }
}
