//! A real systemd booted as PID 1 of a container whose root is a temporary
//! directory (tests/suite/systemd_boot.rs), by `systemd-nspawn --boot`, and
//! commands run inside it (`nsenter` into its namespaces and root).
//!
//! Invariants:
//! - the container's root is a directory under `target/tmp`, never this
//!   machine's `/`: a minimal `/etc` (passwd, group, machine-id, os-release,
//!   a default target that pulls only `basic.target`) made here, merged-usr
//!   links, and `/usr` an overlay that systemd-nspawn mounts in the
//!   container's own mount namespace — this machine's `/usr` the read-only
//!   lower layer, a temporary directory the upper one — so nothing written
//!   under the container's `/usr` reaches this machine's, and no mount is
//!   made in this machine's namespace (none can outlive the container);
//! - the container has no network (`--private-network`) and runs in cgroups
//!   of its own, one per hierarchy systemd uses (made here, and joined by
//!   the systemd-nspawn process before it runs): the container's systemd makes its units
//!   under them, never in this machine's tree, and the teardown kills every
//!   process in them;
//! - [`Container`]'s drop tears everything down — asks the container to
//!   power off, kills whatever is left, removes the cgroups and the temporary
//!   directory — on success and on a failed assertion alike.
//!
//! Without root, systemd-nspawn, nsenter or a mounted cgroup hierarchy the
//! test says SKIPPED; under CI (`CI` set) that is a failure
//! (.ci/install-deps installs `systemd-container`).

#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The system's `PATH` inside the container.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The only target the container boots: `basic.target` (sysinit, sockets,
/// timers, the journal) and nothing of this machine's enabled services.
const TARGET: &str = "[Unit]
Description=sysup systemd_boot test container
Requires=basic.target
After=basic.target
AllowIsolate=yes
";

/// Whether the container can be booted here; else SKIPPED (a failure under CI).
pub fn available() -> bool {
    let missing = missing();
    if let Some(what) = &missing {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI boots a container (.ci/install-deps installs systemd-container): {what}"
        );
        eprintln!("SKIPPED: {what}");
    }
    missing.is_none()
}

/// What is missing to boot a container, if anything.
fn missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("booting a container needs root".into());
    }
    for tool in ["systemd-nspawn", "nsenter"] {
        let here = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !here {
            return Some(format!("{tool} is not installed"));
        }
    }
    if !Path::new("/usr/lib/systemd/systemd").exists() {
        return Some("systemd is not installed (/usr/lib/systemd/systemd)".into());
    }
    if cgroup_mounts().is_empty() {
        return Some("no cgroup hierarchy mounted".into());
    }
    None
}

/// Where the hierarchies systemd uses are mounted: the cgroup2 tree, and
/// the `name=systemd` v1 tree on a legacy or hybrid machine.
fn cgroup_mounts() -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let point = pre.split(' ').nth(4)?;
            let mut f = post.split(' ');
            let (fstype, opts) = (f.next()?, f.nth(1).unwrap_or(""));
            let ours = fstype == "cgroup2"
                || (fstype == "cgroup" && opts.split(',').any(|o| o == "name=systemd"));
            ours.then(|| PathBuf::from(point))
        })
        .collect()
}

/// A container: its root while it is prepared, then the booted systemd.
pub struct Container {
    tmp: tempfile::TempDir,
    /// The container's `/`, as this machine sees it before the boot (its
    /// `/usr` is the overlay only inside: see [`Container::path`]).
    pub root: PathBuf,
    /// The overlay's upper layer: what the container wrote under `/usr`.
    pub usr_upper: PathBuf,
    cgroups: Vec<PathBuf>,
    nspawn: Option<Child>,
    /// This machine's pid of the container's PID 1.
    leader: u32,
}

impl Container {
    /// A container root, not booted yet: the caller adds its files.
    pub fn new() -> Container {
        let top = Path::new(env!("CARGO_TARGET_TMPDIR"));
        fs::create_dir_all(top).unwrap();
        let tmp = tempfile::tempdir_in(top).unwrap();
        let root = tmp.path().join("root");
        let usr_upper = tmp.path().join("usr-upper");
        fs::create_dir(&usr_upper).unwrap();
        skeleton(&root);
        Container {
            tmp,
            root,
            usr_upper,
            cgroups: Vec::new(),
            nspawn: None,
            leader: 0,
        }
    }

    /// Boot systemd in it and wait until the boot has finished.
    pub fn boot(&mut self) {
        let unique: String = (self.tmp.path().file_name().unwrap().to_string_lossy())
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let name = format!("sysup-boot-{}-{unique}", std::process::id());
        for m in cgroup_mounts() {
            let cg = m.join(&name);
            fs::create_dir(&cg).unwrap_or_else(|e| panic!("mkdir {}: {e}", cg.display()));
            self.cgroups.push(cg);
        }
        let procs: Vec<fs::File> = self
            .cgroups
            .iter()
            .map(|cg| {
                fs::OpenOptions::new()
                    .write(true)
                    .open(cg.join("cgroup.procs"))
            })
            .collect::<std::io::Result<_>>()
            .unwrap();
        let fds: Vec<i32> = procs.iter().map(|f| f.as_raw_fd()).collect();
        let log = fs::File::create(self.tmp.path().join("console.log")).unwrap();
        let mut c = Command::new("systemd-nspawn");
        c.args(["--quiet", "--boot", "--register=no", "--keep-unit"])
            .arg(format!("--directory={}", self.root.display()))
            .arg(format!("--machine={}", &name[..name.len().min(64)]))
            .args(["--private-network", "--link-journal=no"])
            .args(["--resolv-conf=off", "--timezone=off", "--console=read-only"])
            .arg(format!("--overlay=/usr:{}:/usr", self.usr_upper.display()));
        for cap in capabilities_not_held() {
            c.arg(format!("--drop-capability={cap}"));
        }
        c.args(["--", "systemd.unit=sysup-test.target"])
            .env_clear()
            .env("PATH", PATH)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // SAFETY: only write(2) on fds opened above, between fork and exec.
        unsafe {
            c.pre_exec(move || {
                for &fd in &fds {
                    if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        self.nspawn = Some(c.spawn().expect("systemd-nspawn runs"));
        drop(procs);
        self.leader = self.wait_for_leader();
        self.wait_until_booted();
    }

    /// The path of `inside` (absolute, in the container) as this machine
    /// reaches it: through the container's PID 1, so with its mounts.
    pub fn path(&self, inside: &str) -> PathBuf {
        assert!(self.leader != 0, "not booted");
        PathBuf::from(format!("/proc/{}/root{inside}", self.leader))
    }

    /// What systemd-nspawn and the container's console printed so far.
    pub fn console(&self) -> String {
        fs::read_to_string(self.tmp.path().join("console.log")).unwrap_or_default()
    }

    /// Run `line` with `/bin/sh -c` in the container, in directory `dir`,
    /// with the system's PATH and nothing of this test's environment;
    /// killed after `limit`.
    pub fn sh(&self, dir: &str, line: &str, limit: Duration) -> Output {
        assert!(self.leader != 0, "not booted");
        let mut c = Command::new("nsenter");
        c.arg(format!("--target={}", self.leader))
            .args(["--mount", "--uts", "--ipc", "--net", "--pid"])
            .args(["--root", "--wd", "--", "/bin/sh", "-c"])
            .arg(format!("cd {dir} && {line}"))
            .env_clear()
            .env("PATH", PATH)
            .env("LANG", "C.UTF-8")
            .env("SYSTEMD_COLORS", "0")
            .env("SYSTEMD_PAGER", "");
        run_limited(&mut c, limit)
    }

    /// The host pid of the container's PID 1: the process in its cgroups
    /// whose pid in its own namespace is 1.
    fn wait_for_leader(&mut self) -> u32 {
        let t0 = Instant::now();
        loop {
            for pid in subtree_pids(&self.cgroups[0]) {
                let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let nspid: Vec<&str> = status
                    .lines()
                    .find_map(|l| l.strip_prefix("NSpid:"))
                    .map(|v| v.split_whitespace().collect())
                    .unwrap_or_default();
                if nspid.len() >= 2 && nspid.last() == Some(&"1") {
                    return pid as u32;
                }
            }
            self.assert_running("starting");
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "no container PID 1 after 10 s:\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until systemd says the boot is over (`running`, or `degraded`
    /// when a unit of this machine's /usr failed in the minimal root).
    fn wait_until_booted(&mut self) {
        let t0 = Instant::now();
        loop {
            let o = self.sh(
                "/",
                "systemctl is-system-running --wait",
                Duration::from_secs(15),
            );
            let state = String::from_utf8_lossy(&o.stdout).trim().to_string();
            match state.as_str() {
                "running" => return,
                "degraded" => {
                    let failed = self.sh(
                        "/",
                        "systemctl --failed --no-legend",
                        Duration::from_secs(5),
                    );
                    eprintln!(
                        "container degraded (not needed by the test):\n{}",
                        String::from_utf8_lossy(&failed.stdout)
                    );
                    return;
                }
                _ => {}
            }
            self.assert_running("booting");
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the container did not finish booting ({state:?}, {}):\n{}",
                String::from_utf8_lossy(&o.stderr),
                self.console()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn assert_running(&mut self, what: &str) {
        if let Some(s) = self.nspawn.as_mut().unwrap().try_wait().unwrap() {
            panic!(
                "systemd-nspawn exited while {what} ({s}):\n{}",
                self.console()
            );
        }
    }

    /// Power the container off (SIGTERM to systemd-nspawn, which asks its
    /// systemd to), then kill what is left in its cgroups.
    fn stop(&mut self) {
        let Some(mut child) = self.nspawn.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        while child.try_wait().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        for cg in &self.cgroups {
            kill_cgroup(cg);
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.stop();
        for cg in self.cgroups.drain(..) {
            remove_cgroup(&cg);
        }
        // The overlay's work directory, made by systemd-nspawn beside the
        // upper one, holds a mode-0 directory: remove_dir_all copes (root).
    }
}

/// The minimal root: directories, merged-usr links, `/etc`.
fn skeleton(root: &Path) {
    use std::os::unix::fs::{symlink, PermissionsExt};
    for (d, mode) in [
        ("", 0o755),
        ("usr", 0o755),
        ("etc", 0o755),
        ("etc/systemd/system", 0o755),
        ("etc/default", 0o755),
        ("var", 0o755),
        ("var/tmp", 0o1777),
        ("var/lib", 0o755),
        ("var/log", 0o755),
        ("root", 0o700),
        ("srv", 0o755),
        ("tmp", 0o1777),
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("run", 0o755),
    ] {
        let p = root.join(d);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
    for d in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        if Path::new("/usr").join(d).is_dir() {
            symlink(format!("usr/{d}"), root.join(d)).unwrap();
        }
    }
    let etc = root.join("etc");
    fs::write(etc.join("passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n").unwrap();
    fs::write(etc.join("group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    fs::write(etc.join("machine-id"), format!("{}\n", machine_id())).unwrap();
    fs::copy("/etc/os-release", etc.join("os-release")).unwrap();
    let units = etc.join("systemd/system");
    fs::write(units.join("sysup-test.target"), TARGET).unwrap();
    symlink("sysup-test.target", units.join("default.target")).unwrap();
}

/// A fresh machine id (32 hex digits, not all zero).
fn machine_id() -> String {
    let mut b = [0u8; 16];
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    b[6] = (b[6] & 0x0f) | 0x40; // a v4 UUID, as systemd makes them
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The capabilities systemd-nspawn keeps by default that this process's
/// bounding set lacks (a sandbox may withhold some): systemd-nspawn fails
/// to keep what it does not hold, so they are dropped explicitly.
fn capabilities_not_held() -> Vec<&'static str> {
    const KEPT: [(&str, u32); 26] = [
        ("CAP_CHOWN", 0),
        ("CAP_DAC_OVERRIDE", 1),
        ("CAP_DAC_READ_SEARCH", 2),
        ("CAP_FOWNER", 3),
        ("CAP_FSETID", 4),
        ("CAP_KILL", 5),
        ("CAP_SETGID", 6),
        ("CAP_SETUID", 7),
        ("CAP_SETPCAP", 8),
        ("CAP_LINUX_IMMUTABLE", 9),
        ("CAP_NET_BIND_SERVICE", 10),
        ("CAP_NET_BROADCAST", 11),
        ("CAP_NET_ADMIN", 12),
        ("CAP_NET_RAW", 13),
        ("CAP_IPC_OWNER", 15),
        ("CAP_SYS_CHROOT", 18),
        ("CAP_SYS_PTRACE", 19),
        ("CAP_SYS_ADMIN", 21),
        ("CAP_SYS_BOOT", 22),
        ("CAP_SYS_NICE", 23),
        ("CAP_SYS_RESOURCE", 24),
        ("CAP_SYS_TTY_CONFIG", 26),
        ("CAP_MKNOD", 27),
        ("CAP_LEASE", 28),
        ("CAP_AUDIT_WRITE", 29),
        ("CAP_AUDIT_CONTROL", 30),
    ];
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    KEPT.iter()
        .filter(|(_, bit)| bnd & (1u64 << bit) == 0)
        .map(|(name, _)| *name)
        .collect()
}

/// Kill every process in a cgroup and its descendants, and wait until they
/// are gone (at most 5 s).
fn kill_cgroup(cg: &Path) {
    // cgroup2 kills a whole subtree at once; v1 has only the pids.
    let _ = fs::write(cg.join("cgroup.kill"), "1");
    let t0 = Instant::now();
    loop {
        let pids = subtree_pids(cg);
        if pids.is_empty() || t0.elapsed() > Duration::from_secs(5) {
            return;
        }
        for pid in pids {
            // SAFETY: kill(2) of a pid in the container's own cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn subtree_pids(cg: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = fs::read_to_string(cg.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    for e in fs::read_dir(cg).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            pids.extend(subtree_pids(&e.path()));
        }
    }
    pids
}

/// Remove a cgroup and its descendants, deepest first (a cgroup directory
/// is removed with rmdir, its files going with it).
fn remove_cgroup(cg: &Path) {
    for e in fs::read_dir(cg).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup(&e.path());
        }
    }
    if let Err(e) = fs::remove_dir(cg) {
        eprintln!("warning: cgroup {} left: {e}", cg.display());
    }
}

/// Run `c` with its output captured, killed if it outlives `limit`.
pub fn run_limited(c: &mut Command, limit: Duration) -> Output {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {c:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let e = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let t0 = Instant::now();
    let status: ExitStatus = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let s = child.wait().unwrap();
            panic!("{c:?} ran over {limit:?} ({s})");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    }
}
