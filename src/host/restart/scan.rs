//! The `/proc` walk of the restart report: per process, the files under a
//! root that it executes or maps and that are no longer the file at that
//! path — the kernel marks them `(deleted)` (a rename over a file, or an
//! unlink, unhashes the name the process reached it by), or, for the
//! executable, its (dev, inode) is not that of the file now at the path.
//!
//! Paths are as the kernel shows them to this process: `/proc/PID/exe` and
//! `/proc/PID/maps` print a path from the *reader's* root, so a process
//! chrooted into the root shows `<root>/bin/x`, and a process in another
//! mount namespace whose root directory is ours (a service with a private
//! `/tmp`, say) shows the paths we see. A process in another mount namespace
//! with a root directory of its own (a container) may be shown paths from
//! its own root, which would be read as ours: such processes are skipped.
//!
//! Invariants: read-only, and bounded: each maps file is read up to
//! [`MAPS_CAP`] bytes (the rest is not checked, and said); a process that
//! vanishes mid-scan is skipped without a word; one that cannot be read is
//! counted and said; nothing here fails — every problem becomes a note.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Bytes of one process's maps read at most (65530 mappings, the kernel's
/// default limit, of ~120 bytes each, fit well).
pub const MAPS_CAP: u64 = 16 << 20;

/// One process using files under the root that are no longer installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub pid: u32,
    pub comm: String,
    /// The systemd unit of its cgroup (`nginx.service`), if any.
    pub unit: Option<String>,
    /// Root-relative paths (no leading `/`).
    pub files: BTreeSet<Vec<u8>>,
}

/// What a walk of `/proc` found, and what it could not check.
#[derive(Debug, Default)]
pub struct Found {
    pub procs: Vec<Seen>,
    pub notes: Vec<String>,
}

/// Why one process was not checked.
enum Skip {
    /// It ended while it was read: nothing to report.
    Gone,
    /// Its files could not be read (`EACCES` as a user other than root).
    Denied,
    /// Another mount namespace with a root directory of its own.
    Foreign,
}

fn skip_of(e: &io::Error) -> Skip {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ESRCH) => Skip::Gone,
        _ => Skip::Denied,
    }
}

/// What every process is compared with: the root, and how this process sees
/// the system.
struct Ctx<'a> {
    /// The canonical root, as bytes (`/` or `/a/b`).
    root: &'a [u8],
    /// This process's mount namespace (`mnt:[4026531841]`).
    mnt_ns: Option<PathBuf>,
    /// (dev, inode) of this process's root directory.
    root_dir: Option<(u64, u64)>,
}

impl<'a> Ctx<'a> {
    fn new(proc: &Path, root: &'a Path) -> Ctx<'a> {
        Ctx {
            root: root.as_os_str().as_bytes(),
            mnt_ns: fs::read_link(proc.join("self/ns/mnt")).ok(),
            root_dir: fs::metadata(proc.join("self/root"))
                .ok()
                .map(|m| (m.dev(), m.ino())),
        }
    }
}

/// Walk `proc` (`/proc`) for processes using replaced files under `root`
/// (canonical). This process itself is left out.
pub fn scan(proc: &Path, root: &Path) -> Found {
    let mut found = Found::default();
    let own = std::process::id();
    let ctx = Ctx::new(proc, root);
    let entries = match fs::read_dir(proc) {
        Ok(e) => e,
        Err(e) => {
            found.notes.push(format!(
                "could not list {}: {e}; no process was checked",
                proc.display()
            ));
            return found;
        }
    };
    let (mut denied, mut truncated) = (Vec::new(), Vec::new());
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        match scan_one(&proc.join(pid.to_string()), pid, &ctx, &mut truncated) {
            Ok(Some(seen)) => found.procs.push(seen),
            Ok(None) | Err(Skip::Gone) | Err(Skip::Foreign) => {}
            Err(Skip::Denied) => denied.push(pid),
        }
    }
    found.procs.sort_by_key(|p| p.pid);
    if !denied.is_empty() {
        found.notes.push(denied_note(&denied));
    }
    if !truncated.is_empty() {
        let pids: Vec<String> = truncated.iter().map(u32::to_string).collect();
        found.notes.push(format!(
            "the memory maps of pid {} are over {} MiB: only their first {} MiB were checked",
            pids.join(", "),
            MAPS_CAP >> 20,
            MAPS_CAP >> 20
        ));
    }
    found
}

/// The note for processes that could not be read: their pids (the first
/// ten), and, when not run as root, why.
fn denied_note(pids: &[u32]) -> String {
    let mut shown: Vec<String> = pids.iter().take(10).map(u32::to_string).collect();
    if pids.len() > 10 {
        shown.push(format!("and {} more", pids.len() - 10));
    }
    let hint = if nix::unistd::geteuid().is_root() {
        ""
    } else {
        " (run as root to check them)"
    };
    format!(
        "pid {} could not be read: not checked{hint}",
        shown.join(", ")
    )
}

/// One process: its executable and mappings under the root that are stale;
/// `None` when there are none.
fn scan_one(
    dir: &Path,
    pid: u32,
    ctx: &Ctx<'_>,
    truncated: &mut Vec<u32>,
) -> Result<Option<Seen>, Skip> {
    let mut files = BTreeSet::new();
    if let Some(rel) = stale_exe(dir, ctx)? {
        files.insert(rel);
    }
    let (maps, cut) = read_capped(&dir.join("maps"), MAPS_CAP).map_err(|e| skip_of(&e))?;
    for line in maps.split(|&b| b == b'\n') {
        if let Some((path, true)) = map_path(line) {
            if let Some(rel) = under(ctx.root, &path) {
                files.insert(rel.to_vec());
            }
        }
    }
    if files.is_empty() {
        return Ok(None);
    }
    if cut {
        truncated.push(pid);
    }
    check_same_view(dir, ctx)?;
    let comm = fs::read(dir.join("comm")).map_err(|e| skip_of(&e))?;
    let cgroup = fs::read(dir.join("cgroup")).unwrap_or_default();
    Ok(Some(Seen {
        pid,
        comm: String::from_utf8_lossy(comm.strip_suffix(b"\n").unwrap_or(&comm)).into_owned(),
        unit: unit_of(&String::from_utf8_lossy(&cgroup)),
        files,
    }))
}

/// The executable's root-relative path when it lies under the root and is
/// no longer the file there: marked deleted, or another (dev, inode).
fn stale_exe(dir: &Path, ctx: &Ctx<'_>) -> Result<Option<Vec<u8>>, Skip> {
    let link = match fs::read_link(dir.join("exe")) {
        Ok(l) => l,
        // a kernel thread or a zombie has none; a process that ended is
        // found gone by its maps
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(skip_of(&e)),
    };
    let (path, deleted) = strip_deleted(link.as_os_str().as_bytes());
    let Some(rel) = under(ctx.root, &path) else {
        return Ok(None);
    };
    if deleted {
        return Ok(Some(rel.to_vec()));
    }
    let running = fs::metadata(dir.join("exe")).map_err(|e| skip_of(&e))?;
    let now = fs::symlink_metadata(Path::new(std::ffi::OsStr::from_bytes(&path)));
    let same = now.is_ok_and(|n| (n.dev(), n.ino()) == (running.dev(), running.ino()));
    Ok((!same).then(|| rel.to_vec()))
}

/// Refuse a process whose paths may not be ours: another mount namespace
/// with another root directory (see the module doc).
fn check_same_view(dir: &Path, ctx: &Ctx<'_>) -> Result<(), Skip> {
    let ns = fs::read_link(dir.join("ns/mnt")).map_err(|e| skip_of(&e))?;
    if ctx.mnt_ns.as_ref() == Some(&ns) {
        return Ok(());
    }
    let r = fs::metadata(dir.join("root")).map_err(|e| skip_of(&e))?;
    if ctx.root_dir == Some((r.dev(), r.ino())) {
        Ok(())
    } else {
        Err(Skip::Foreign)
    }
}

/// Up to `cap` bytes of a file, and whether there was more (then the last,
/// partial line is dropped).
fn read_capped(path: &Path, cap: u64) -> io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::new();
    fs::File::open(path)?.take(cap + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 <= cap {
        return Ok((buf, false));
    }
    buf.truncate(cap as usize);
    let keep = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    buf.truncate(keep);
    Ok((buf, true))
}

/// `path (deleted)` → (`path`, true). A newline in a name is shown by the
/// kernel as `\012`; it is turned back.
fn strip_deleted(shown: &[u8]) -> (Vec<u8>, bool) {
    let (p, deleted) = match shown.strip_suffix(b" (deleted)") {
        Some(p) => (p, true),
        None => (shown, false),
    };
    let mut out = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        if p[i..].starts_with(b"\\012") {
            out.push(b'\n');
            i += 4;
        } else {
            out.push(p[i]);
            i += 1;
        }
    }
    (out, deleted)
}

/// The file of one line of `/proc/PID/maps` (`addr perms offset dev inode
/// path`): its path and whether it is deleted; `None` for anonymous and
/// special mappings (`[heap]`, inode 0).
fn map_path(line: &[u8]) -> Option<(Vec<u8>, bool)> {
    let mut rest = line;
    for _ in 0..5 {
        let start = rest.iter().position(|&b| b != b' ')?;
        rest = &rest[start..];
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        if end == rest.len() {
            return None; // no path
        }
        rest = &rest[end..];
    }
    let path = &rest[rest.iter().position(|&b| b != b' ')?..];
    path.starts_with(b"/").then(|| strip_deleted(path))
}

/// `path` relative to `root` when it lies under it (not the root itself).
fn under<'p>(root: &[u8], path: &'p [u8]) -> Option<&'p [u8]> {
    let rest = if root == b"/" {
        path.strip_prefix(b"/")?
    } else {
        path.strip_prefix(root)?.strip_prefix(b"/")?
    };
    (!rest.is_empty()).then_some(rest)
}

/// The systemd unit of a process from its `/proc/PID/cgroup`: the last
/// `.service` component of its path (cgroup v2's `0::` line, or v1's
/// `name=systemd` hierarchy); a user's own service under `user@UID.service`
/// is named, not the user manager.
pub fn unit_of(cgroup: &str) -> Option<String> {
    let path = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .or_else(|| {
            cgroup.lines().find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctl, p) = (f.next()?, f.next()?, f.next()?);
                (ctl == "name=systemd").then_some(p)
            })
        })?;
    path.split('/')
        .rev()
        .find(|c| c.ends_with(".service") && c.len() > ".service".len())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let l = b"7f2a-7f2b r-xp 00000000 08:01 1234    /usr/lib/libc.so.6 (deleted)";
        assert_eq!(map_path(l), Some((b"/usr/lib/libc.so.6".to_vec(), true)));
        let l = b"7f2a-7f2b r--p 00000000 08:01 99 /a b/c d";
        assert_eq!(map_path(l), Some((b"/a b/c d".to_vec(), false)));
        let l = b"7f2a-7f2b r--p 00000000 08:01 99 /x\\012y (deleted)";
        assert_eq!(map_path(l), Some((b"/x\ny".to_vec(), true)));
        assert_eq!(map_path(b"7f-80 rw-p 00000000 00:00 0 "), None);
        assert_eq!(map_path(b"7f-80 rw-p 00000000 00:00 0   [heap]"), None);
        assert_eq!(map_path(b"7f-80 rw-p 00000000 00:00 0"), None);
        assert_eq!(map_path(b""), None);
    }

    #[test]
    fn paths_under_a_root() {
        assert_eq!(under(b"/", b"/usr/bin/x"), Some(&b"usr/bin/x"[..]));
        assert_eq!(under(b"/r", b"/r/usr/x"), Some(&b"usr/x"[..]));
        assert_eq!(under(b"/r", b"/root/x"), None);
        assert_eq!(under(b"/r", b"/r"), None);
        assert_eq!(under(b"/r", b"/r/"), None);
        assert_eq!(under(b"/", b"memfd:x"), None);
    }

    #[test]
    fn units_from_cgroups() {
        assert_eq!(
            unit_of("0::/system.slice/nginx.service\n").as_deref(),
            Some("nginx.service")
        );
        assert_eq!(
            unit_of("0::/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service\n")
                .as_deref(),
            Some("foo.service")
        );
        assert_eq!(
            unit_of("0::/user.slice/user-1000.slice/session-2.scope\n"),
            None
        );
        let v1 = "12:cpu:/x\n1:name=systemd:/system.slice/cron.service\n";
        assert_eq!(unit_of(v1).as_deref(), Some("cron.service"));
        assert_eq!(unit_of("0::/\n"), None);
        assert_eq!(unit_of(""), None);
    }

    #[test]
    fn capped_reads_end_on_a_whole_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("maps");
        fs::write(&p, b"aaaa\nbbbb\ncccc\n").unwrap();
        assert_eq!(
            read_capped(&p, 100).unwrap(),
            (b"aaaa\nbbbb\ncccc\n".to_vec(), false)
        );
        assert_eq!(
            read_capped(&p, 12).unwrap(),
            (b"aaaa\nbbbb\n".to_vec(), true)
        );
    }

    /// A `/proc` of files: `self` in mount namespace 1, and pid 123 whose
    /// maps are `maps` and whose mount namespace is `ns`.
    fn fake_proc(maps: &[u8], ns: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        for dir in ["self/ns", "self/root", "123/ns", "123/root", "notapid"] {
            fs::create_dir_all(p.join(dir)).unwrap();
        }
        std::os::unix::fs::symlink("mnt:[1]", p.join("self/ns/mnt")).unwrap();
        std::os::unix::fs::symlink(ns, p.join("123/ns/mnt")).unwrap();
        fs::write(p.join("123/maps"), maps).unwrap();
        fs::write(p.join("123/comm"), b"daemon\n").unwrap();
        fs::write(p.join("123/cgroup"), b"0::/system.slice/d.service\n").unwrap();
        d
    }

    #[test]
    fn a_fake_proc_is_read_within_bounds() {
        let line = "7f-80 r-xp 00000000 08:01 5 /r/usr/lib/x.so (deleted)\n";
        let mut maps = line.repeat(3).into_bytes();
        // past the cap: a mapping never read, and the note says so
        maps.resize(MAPS_CAP as usize + 10, b' ');
        maps.extend_from_slice(b"\n7f-80 r-xp 00000000 08:01 6 /r/usr/lib/late.so (deleted)\n");
        let proc = fake_proc(&maps, "mnt:[1]");
        let found = scan(proc.path(), Path::new("/r"));
        let files = BTreeSet::from([b"usr/lib/x.so".to_vec()]);
        assert_eq!(
            found.procs,
            [Seen {
                pid: 123,
                comm: "daemon".into(),
                unit: Some("d.service".into()),
                files,
            }]
        );
        assert_eq!(found.notes.len(), 1, "{:?}", found.notes);
        assert!(
            found.notes[0].contains("pid 123 are over 16 MiB"),
            "{:?}",
            found.notes
        );
    }

    #[test]
    fn a_container_is_skipped_and_a_missing_proc_is_a_note() {
        let line = b"7f-80 r-xp 00000000 08:01 5 /r/usr/lib/x.so (deleted)\n";
        // another mount namespace, and its root directory is not ours
        let proc = fake_proc(line, "mnt:[2]");
        let found = scan(proc.path(), Path::new("/r"));
        assert!(
            found.procs.is_empty() && found.notes.is_empty(),
            "{found:?}"
        );
        let found = scan(Path::new("/nonexistent/proc"), Path::new("/r"));
        assert!(found.notes[0].starts_with("could not list /nonexistent/proc"));
    }

    #[test]
    fn this_process_finds_a_replaced_file_it_maps() {
        // a file mapped, then replaced by a rename: as an apply does
        let d = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(d.path()).unwrap();
        let p = root.join("lib.so");
        fs::write(&p, vec![7u8; 4096]).unwrap();
        let f = fs::File::open(&p).unwrap();
        // SAFETY: a private read-only mapping of a file only this test writes
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                std::os::fd::AsRawFd::as_raw_fd(&f),
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        fs::write(root.join("new"), b"new").unwrap();
        fs::rename(root.join("new"), &p).unwrap();
        let ctx = Ctx::new(Path::new("/proc"), &root);
        let mut cut = Vec::new();
        let found = scan_one(Path::new("/proc/self"), 1, &ctx, &mut cut);
        // SAFETY: the mapping made above, unmapped once
        unsafe { libc::munmap(map, 4096) };
        let seen = match found {
            Ok(Some(s)) => s,
            Ok(None) => panic!("not found"),
            Err(_) => panic!("skipped"),
        };
        assert_eq!(seen.files, BTreeSet::from([b"lib.so".to_vec()]));
    }
}
