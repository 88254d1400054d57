//! Host state in `<root>/var/db/sysup/` (DESIGN §1, §4):
//!
//! ```text
//! var/db/sysup/
//!   lock                     flock(2)ed by the one running sysup; holds its pid
//!   installed/<name>         what is installed per dist name (JSON, atomic)
//!   bases/<id>.tar.gz        kept gzipped bases, the installed one included (0600)
//!   journal                  the apply in progress, if any (see journal.rs)
//!   history                  append-only audit log, one JSON object per line
//!   stat-<name>              inode and ctime of each installed file (statcache.rs)
//!   download/                partial and finished downloads (sysup update)
//! ```
//!
//! Invariants:
//! - the state directory is found by resolving `var/db/sysup` *inside* the
//!   root, so a symlink in the root (even a hostile `var/db -> /etc`) can
//!   never send sysup's own writes outside it;
//! - `installed/<name>` is only ever replaced atomically, and only after its
//!   base is durable in `bases/`;
//! - every method says in its doc whether it writes to disk.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digests;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_atomic;
use crate::host::root::Root;
use crate::name::{DistId, DistName};

/// The state directory, relative to the root.
pub const STATE_DIR: &str = "var/db/sysup";

/// What is installed for one dist name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub id: DistId,
    pub arch: String,
    /// Unix time the install finished.
    pub installed_at: i64,
    /// Size and digests of the uncompressed base tar.
    pub tar: Digests,
    /// Size of the gzipped base in `bases/`.
    pub base_size: u64,
}

/// A gzipped base kept in `bases/`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeptBase {
    pub id: DistId,
    pub path: PathBuf,
    pub size: u64,
    /// Unix time the file was last written.
    pub mtime: i64,
}

/// The state of one root.
#[derive(Debug, Clone)]
pub struct State {
    root: PathBuf,
    dir: PathBuf,
}

/// The held lock; released on drop (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

fn mkdir_private(p: &Path) -> Result<()> {
    match fs::create_dir(p) {
        Ok(()) => fs::set_permissions(p, fs::Permissions::from_mode(0o700)).ctx("chmod", p),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("create directory", p, e)),
    }
}

impl State {
    /// Find (creating when missing) the state directory of `root`.
    /// Writes: creates missing `var`, `var/db`, `var/db/sysup` (0755, 0755, 0700).
    pub fn open(root_path: &Path) -> Result<State> {
        let root = Root::open(root_path).ctx("open root", root_path)?;
        let mut dir = root.dir().try_clone().ctx("open root", root_path)?;
        let mut rel = String::new();
        for comp in STATE_DIR.split('/') {
            if !rel.is_empty() {
                rel.push('/');
            }
            rel.push_str(comp);
            if dir
                .stat(comp.as_bytes())
                .ctx("stat", root.display(rel.as_bytes()))?
                .is_none()
            {
                let mode = if comp == "sysup" { 0o700 } else { 0o755 };
                dir.mkdir(comp.as_bytes(), mode)
                    .ctx("create directory", root.display(rel.as_bytes()))?;
            }
            dir = root
                .resolve_dir(rel.as_bytes())
                .ctx("open directory", root.display(rel.as_bytes()))?;
        }
        // The real path of what was resolved inside the root.
        let real = dir
            .real_path()
            .ctx("resolve", root.display(STATE_DIR.as_bytes()))?;
        let real_root = fs::canonicalize(root_path).ctx("resolve", root_path)?;
        if !real.starts_with(&real_root) {
            return Err(Error::Refused(format!(
                "state directory '{}' resolves outside the root",
                real.display()
            )));
        }
        let s = State {
            root: real_root,
            dir: real,
        };
        for sub in ["installed", "bases", "download"] {
            mkdir_private(&s.dir.join(sub))?;
        }
        Ok(s)
    }

    /// The root (canonical path).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The state directory (canonical path).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where downloads go. Read-only.
    pub fn download_dir(&self) -> PathBuf {
        self.dir.join("download")
    }

    /// The journal file path. Read-only.
    pub fn journal_path(&self) -> PathBuf {
        self.dir.join("journal")
    }

    /// The history file path. Read-only.
    pub fn history_path(&self) -> PathBuf {
        self.dir.join("history")
    }

    /// Take the exclusive lock, or refuse at once naming the holder.
    /// Writes: creates `lock` and records this process's pid in it.
    pub fn lock(&self) -> Result<Lock> {
        let p = self.dir.join("lock");
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&p)
            .ctx("open lock file", &p)?;
        // SAFETY: valid fd.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut pid = String::new();
                let _ = f.read_to_string(&mut pid);
                return Err(Error::Refused(format!(
                    "another sysup (pid {}) is working on {}; wait for it to finish",
                    pid.trim(),
                    self.root.display()
                )));
            }
            return Err(Error::io("lock", &p, e));
        }
        f.set_len(0).ctx("write", &p)?;
        f.rewind().ctx("write", &p)?;
        write!(f, "{}", std::process::id()).ctx("write", &p)?;
        Ok(Lock { _file: f })
    }

    /// Remove what an interrupted atomic write left behind — `.<name>.*.tmp`
    /// files in the state directory, `installed/` and `mirror/` — never in
    /// `bases/`, whose temporary may be a pending apply's new base, nor in
    /// `download/`, whose partial files are resumed. Takes the held lock as
    /// proof that no other sysup is writing them.
    /// Writes: removes those files.
    pub fn remove_stale_temps(&self, _lock: &Lock) -> Result<()> {
        for dir in [
            self.dir.clone(),
            self.dir.join("installed"),
            self.dir.join("mirror"),
        ] {
            let entries = match fs::read_dir(&dir) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("list", &dir, e)),
            };
            for e in entries {
                let e = e.ctx("list", &dir)?;
                let name = e.file_name();
                let name = name.to_string_lossy();
                let is_file = e.file_type().is_ok_and(|t| t.is_file());
                if is_file && name.starts_with('.') && name.ends_with(".tmp") {
                    fs::remove_file(e.path()).ctx("remove", e.path())?;
                }
            }
        }
        Ok(())
    }

    fn installed_path(&self, name: &DistName) -> PathBuf {
        self.dir.join("installed").join(name.to_string())
    }

    /// What is installed for `name`. Read-only.
    pub fn installed(&self, name: &DistName) -> Result<Option<Installed>> {
        let p = self.installed_path(name);
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Metadata {
                    what: "installed record",
                    path: p,
                    reason: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", &p, e)),
        }
    }

    /// Everything installed, by name. Read-only.
    pub fn installed_all(&self) -> Result<Vec<Installed>> {
        let d = self.dir.join("installed");
        let mut out = Vec::new();
        for e in fs::read_dir(&d).ctx("list", &d)? {
            let e = e.ctx("list", &d)?;
            let Some(name) = e
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<DistName>().ok())
            else {
                continue; // temporary files of an atomic write
            };
            if let Some(i) = self.installed(&name)? {
                out.push(i);
            }
        }
        out.sort_by(|a, b| a.id.name.cmp(&b.id.name));
        Ok(out)
    }

    /// Record what is installed. Writes `installed/<name>` atomically.
    pub fn write_installed(&self, rec: &Installed) -> Result<()> {
        let p = self.installed_path(&rec.id.name);
        let json = serde_json::to_vec_pretty(rec).expect("Installed serializes");
        crate::host::checkpoint::fault("record-installed").ctx("write", &p)?;
        write_atomic(&p, &json, 0o600)
    }

    /// Path of the kept base of `id`. Read-only.
    pub fn base_path(&self, id: &DistId) -> PathBuf {
        self.dir.join("bases").join(id.file_name())
    }

    /// The bases directory. Read-only.
    pub fn bases_dir(&self) -> PathBuf {
        self.dir.join("bases")
    }

    /// Kept bases of `name`, oldest first (by dist date, then rev). Read-only.
    pub fn bases(&self, name: &DistName) -> Result<Vec<KeptBase>> {
        let d = self.bases_dir();
        let mut out = Vec::new();
        for e in fs::read_dir(&d).ctx("list", &d)? {
            let e = e.ctx("list", &d)?;
            let Some(file) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Ok(id) = DistId::from_file_name(&file) else {
                continue;
            };
            if &id.name != name {
                continue;
            }
            let md = e.metadata().ctx("stat", e.path())?;
            use std::os::unix::fs::MetadataExt;
            out.push(KeptBase {
                id,
                path: e.path(),
                size: md.len(),
                mtime: md.mtime(),
            });
        }
        out.sort_by(|a, b| (a.id.date, &a.id.rev).cmp(&(b.id.date, &b.id.rev)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dir_is_created_inside_the_root_even_through_hostile_links() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let outside = t.path().join("outside");
        fs::create_dir_all(root.join("var")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("var/db")).unwrap();
        // the absolute link means <root>/<outside path>, which does not exist
        let e = State::open(&root).unwrap_err().to_string();
        assert!(e.contains("var/db"), "{e}");
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing written outside"
        );
        // a relative link that climbs out stops at the root: <root>/outside
        fs::remove_file(root.join("var/db")).unwrap();
        std::os::unix::fs::symlink("../../../outside", root.join("var/db")).unwrap();
        fs::create_dir(root.join("outside")).unwrap();
        let s = State::open(&root).unwrap();
        assert_eq!(
            s.dir(),
            fs::canonicalize(root.join("outside/sysup")).unwrap()
        );
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing written outside"
        );
    }

    #[test]
    fn lock_is_exclusive_and_names_the_holder() {
        let t = tempfile::tempdir().unwrap();
        let s = State::open(t.path()).unwrap();
        let held = s.lock().unwrap();
        // flock is per open file description: a second open conflicts even in-process
        let e = s.lock().unwrap_err().to_string();
        assert!(e.contains(&std::process::id().to_string()), "{e}");
        drop(held);
        s.lock().unwrap();
    }

    #[test]
    fn installed_records_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let s = State::open(t.path()).unwrap();
        let name: DistName = "world".parse().unwrap();
        assert!(s.installed(&name).unwrap().is_none());
        let rec = Installed {
            id: "world-1-20260101".parse().unwrap(),
            arch: "x86_64".into(),
            installed_at: 5,
            tar: Digests::of(b"x"),
            base_size: 3,
        };
        s.write_installed(&rec).unwrap();
        assert_eq!(s.installed(&name).unwrap(), Some(rec.clone()));
        assert_eq!(s.installed_all().unwrap(), vec![rec]);
    }
}
