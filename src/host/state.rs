//! Host state in `<root>/var/db/sysup/` (docs/design.md §1, §4):
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
//!   mirror/serial.<key id>   the last INDEX serial accepted per key (mirror.rs)
//!   keys/<key id>            public keys accepted from a mirror's KEYS (keys.rs)
//! ```
//!
//! Invariants:
//! - the state directory is a chain of real directories: `var`, `var/db`
//!   and `var/db/sysup` are opened from the root's descriptor one component
//!   at a time with `O_NOFOLLOW`; a link (or anything not a directory) at
//!   any of them is refused with an error naming it — never followed, not
//!   even inside the root, so neither a prepared root nor a dist that once
//!   shipped `var/db` as a link can move sysup's state. (No usual layout
//!   links these: merged-/usr links `bin`, `lib`, `sbin`, never `var/db`.)
//!   Dists may not ship them as anything but directories (stage.rs);
//! - every file and subdirectory of the state directory is reached through
//!   the descriptors opened here, with `O_NOFOLLOW` on its last component;
//!   a link found anywhere in the state directory, `installed/`, `bases/`,
//!   `download/` or `mirror/` is hostile (sysup never makes one): [`State::open`]
//!   refuses the root, naming it, before any command reads or writes state;
//! - `installed/<name>` is only ever replaced atomically, and only after its
//!   base is durable in `bases/`;
//! - every method says in its doc whether it writes to disk.
//!
//! The kept bases are read in `bases.rs`, the INDEX serials kept in
//! `mirror.rs`, the lock taken and looked up in `lock.rs`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::format::name::{DistId, DistName};
use crate::host::root::{Dir, Root};
use crate::util::digest::Digests;

/// The state directory, relative to the root.
pub use crate::format::STATE_DIR;
pub use lock::Lock;

/// Whether root-relative `path` is the state directory, inside it, or one
/// of the directories on its way (`var`, `var/db`): what no path a dist
/// names — member, `OBSOLETE` entry, removal, kernel directory — may be.
pub fn touches_state(path: &[u8]) -> bool {
    let state = STATE_DIR.as_bytes();
    let under = |a: &[u8], b: &[u8]| a.len() > b.len() && a.starts_with(b) && a[b.len()] == b'/';
    path == state || under(path, state) || under(state, path)
}

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
    /// `<root>/var/db/sysup`, for messages and reports (the chain to it is
    /// real directories, checked when opened).
    dir: PathBuf,
    fd: Arc<Dir>,
    installed: Arc<Dir>,
    bases: Arc<Dir>,
    download: Arc<Dir>,
    /// The directories on the way to the state directory (`var`, `var/db`,
    /// root-relative) that this open created: the root did not have them
    /// before this command, so an apply reports a dist's entry for them as
    /// added, exactly as its dry run foretold.
    made: Vec<Vec<u8>>,
}

/// The refusal of a link (or other stranger) in the state directory.
fn hostile(shown: &Path, what: &str) -> Error {
    Error::Refused(format!(
        "'{}' is {what}: sysup's own state is reached only through real directories \
         and files, never through a link; sysup did not make it — remove it and run again",
        shown.display()
    ))
}

/// An error of an `O_NOFOLLOW` open, a link in its place named as such.
fn nofollow_err(e: io::Error, what: &'static str, shown: &Path) -> Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) => hostile(shown, "a symbolic link"),
        Some(libc::ENOTDIR) => hostile(shown, "not a directory"),
        _ => Error::io(what, shown, e),
    }
}

/// Open (with `create`, making it first with `mode`) the real directory
/// `name` in `parent`, and whether this call made it; `None` if missing
/// and not created.
fn real_dir(
    parent: &Dir,
    name: &str,
    shown: &Path,
    mode: u32,
    create: bool,
) -> Result<Option<(Dir, bool)>> {
    let mut made = false;
    match parent.stat(name.as_bytes()).ctx("stat", shown)? {
        None if !create => return Ok(None),
        None => match parent.mkdir(name.as_bytes(), mode) {
            Ok(()) => made = true,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(Error::io("create directory", shown, e)),
        },
        Some(st) if st.is_symlink() => return Err(hostile(shown, "a symbolic link")),
        Some(st) if !st.is_dir() => return Err(hostile(shown, "not a directory")),
        Some(_) => {}
    }
    parent
        .open_subdir(name.as_bytes())
        .map(|d| Some((d, made)))
        .map_err(|e| nofollow_err(e, "open directory", shown))
}

/// Refuse anything in `dir` but regular files and directories.
fn no_strangers(dir: &Dir, shown: &Path) -> Result<()> {
    for name in dir.list().ctx("list", shown)? {
        let p = shown.join(std::ffi::OsStr::from_bytes(&name));
        match dir.stat(&name).ctx("stat", &p)? {
            Some(st) if st.is_symlink() => return Err(hostile(&p, "a symbolic link")),
            Some(st) if !st.is_dir() && !st.is_file() => {
                return Err(hostile(&p, "neither a file nor a directory"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Write `name` in `dir` atomically: a new temporary (`O_EXCL`, no link
/// followed), fsynced, renamed over `name` (which replaces a link rather
/// than writing through it), the directory fsynced.
pub(crate) fn write_atomic_at(
    dir: &Dir,
    shown_dir: &Path,
    name: &str,
    data: &[u8],
    mode: u32,
) -> Result<()> {
    let shown = shown_dir.join(name);
    let tmp = format!(".{name}.{}.tmp", std::process::id());
    let tmp_shown = shown_dir.join(&tmp);
    let _ = dir.unlink(tmp.as_bytes()); // a stale one of this pid
    let mut f = dir
        .create_file(tmp.as_bytes())
        .map_err(|e| nofollow_err(e, "create", &tmp_shown))?;
    let written = f
        .write_all(data)
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(mode))
        })
        .and_then(|()| f.sync_all())
        .ctx("write", &tmp_shown)
        .and_then(|()| {
            dir.rename(tmp.as_bytes(), dir, name.as_bytes())
                .ctx("rename into place", &shown)
        });
    if let Err(e) = written {
        let _ = dir.unlink(tmp.as_bytes());
        return Err(e);
    }
    dir.sync().ctx("fsync directory", shown_dir)
}

impl State {
    /// Find (creating when missing) the state directory of `root`, refusing
    /// one reached through a link or holding one.
    /// Writes: creates missing `var`, `var/db`, `var/db/sysup` (0755, 0755,
    /// 0700) and its `installed/`, `bases/`, `download/` (0700).
    pub fn open(root_path: &Path) -> Result<State> {
        Ok(State::open_with(root_path, true)?.expect("created"))
    }

    /// [`State::open`] for the commands that only read (`status`, `verify`,
    /// `history`): `None` where the root has no complete state directory
    /// (nothing was ever installed). Read-only: creates nothing.
    pub fn open_existing(root_path: &Path) -> Result<Option<State>> {
        State::open_with(root_path, false)
    }

    fn open_with(root_path: &Path, create: bool) -> Result<Option<State>> {
        let root = Root::open(root_path).ctx("open root", root_path)?;
        let real_root = std::fs::canonicalize(root_path).ctx("resolve", root_path)?;
        let mut dir = root.dir().try_clone().ctx("open root", root_path)?;
        let mut shown = real_root.clone();
        let (mut rel, mut made) = (Vec::new(), Vec::new());
        for comp in STATE_DIR.split('/') {
            shown.push(comp);
            rel.extend_from_slice(if rel.is_empty() { b"" } else { b"/" });
            rel.extend_from_slice(comp.as_bytes());
            let mode = if comp == "sysup" { 0o700 } else { 0o755 };
            match real_dir(&dir, comp, &shown, mode, create)? {
                Some((d, true)) => {
                    dir = d;
                    made.push(rel.clone());
                }
                Some((d, false)) => dir = d,
                None => return Ok(None),
            }
        }
        let sub = |name: &str| -> Result<Option<Arc<Dir>>> {
            Ok(real_dir(&dir, name, &shown.join(name), 0o700, create)?.map(|(d, _)| Arc::new(d)))
        };
        let (Some(installed), Some(bases), Some(download)) =
            (sub("installed")?, sub("bases")?, sub("download")?)
        else {
            return Ok(None);
        };
        let s = State {
            root: real_root,
            installed,
            bases,
            download,
            dir: shown,
            fd: Arc::new(dir),
            made,
        };
        no_strangers(&s.fd, &s.dir)?;
        no_strangers(&s.installed, &s.dir.join("installed"))?;
        no_strangers(&s.bases, &s.dir.join("bases"))?;
        no_strangers(&s.download, &s.dir.join("download"))?;
        if let Some(m) = s.mirror_dir(false)? {
            no_strangers(&m, &s.dir.join("mirror"))?;
        }
        if let Some(k) = s.keys_dir(false)? {
            no_strangers(&k, &s.dir.join(keys::KEYS_DIR))?;
        }
        Ok(Some(s))
    }

    /// The directories on the way to the state directory that opening it
    /// created in this command (root-relative).
    pub fn made(&self) -> &[Vec<u8>] {
        &self.made
    }

    /// The root (canonical path).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The state directory (canonical path; for messages and reports — its
    /// files are reached through [`State::fd`]).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state directory's descriptor.
    pub fn fd(&self) -> &Dir {
        &self.fd
    }

    /// Where downloads go (for messages and reports). Read-only.
    pub fn download_dir(&self) -> PathBuf {
        self.dir.join("download")
    }

    /// The download directory as a path that resolves through its held
    /// descriptor (`/proc/self/fd/N`), for the code that works on paths:
    /// valid while this `State` lives. Read-only.
    pub fn download_fd_path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/self/fd/{}",
            self.download.fd_ref().as_raw_fd()
        ))
    }

    /// The download directory's descriptor.
    pub fn download_fd(&self) -> &Dir {
        &self.download
    }

    /// The journal file path (for messages). Read-only.
    pub fn journal_path(&self) -> PathBuf {
        self.dir.join("journal")
    }

    /// The history file path (for messages). Read-only.
    pub fn history_path(&self) -> PathBuf {
        self.dir.join("history")
    }

    /// Open the state directory's file `name` with `flags` (no link
    /// followed; `None` when it is missing and `O_CREAT` is not given).
    /// Writes: creates it with `O_CREAT`.
    pub fn open_file(&self, name: &str, flags: libc::c_int, mode: u32) -> Result<Option<File>> {
        let shown = self.dir.join(name);
        match self
            .fd
            .open_file_with(name.as_bytes(), flags, mode as libc::c_uint)
        {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(nofollow_err(e, "open", &shown)),
        }
    }

    /// The whole content of the state directory's file `name`, `None` when
    /// missing. Read-only.
    pub fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some(mut f) = self.open_file(name, libc::O_RDONLY, 0)? else {
            return Ok(None);
        };
        let mut v = Vec::new();
        f.read_to_end(&mut v).ctx("read", self.dir.join(name))?;
        Ok(Some(v))
    }

    /// Write the state directory's file `name` atomically (a new
    /// temporary, fsynced, renamed over `name`, the directory fsynced).
    /// Writes: `name`.
    pub fn write_file(&self, name: &str, data: &[u8], mode: u32) -> Result<()> {
        write_atomic_at(&self.fd, &self.dir, name, data, mode)
    }

    /// Remove the state directory's file `name` (missing is fine) durably.
    /// Writes: unlinks it, fsyncs the state directory.
    pub fn remove_file(&self, name: &str) -> Result<()> {
        let shown = self.dir.join(name);
        self.fd.unlink(name.as_bytes()).ctx("remove", &shown)?;
        self.fd.sync().ctx("fsync directory", &self.dir)
    }

    /// Remove what an interrupted atomic write left behind — `.<name>.*.tmp`
    /// files in the state directory, `installed/` and `mirror/` — never in
    /// `bases/`, whose temporary may be a pending apply's new base, nor in
    /// `download/`, whose partial files are resumed. Takes the held lock as
    /// proof that no other sysup is writing them.
    /// Writes: removes those files.
    pub fn remove_stale_temps(&self, _lock: &Lock) -> Result<()> {
        let mirror = self.mirror_dir(false)?;
        let keys = self.keys_dir(false)?;
        let dirs = [
            (Some(&*self.fd), self.dir.clone()),
            (Some(&*self.installed), self.dir.join("installed")),
            (mirror.as_ref(), self.dir.join("mirror")),
            (keys.as_ref(), self.dir.join(keys::KEYS_DIR)),
        ];
        for (dir, shown) in dirs {
            let Some(dir) = dir else { continue };
            remove_temps_in(dir, &shown)?;
        }
        Ok(())
    }

    /// Remove stale temporary files of an aborted apply from `bases/`.
    /// Writes: removes `.*.tmp` files in `bases/`.
    pub fn remove_base_temps(&self) -> Result<()> {
        remove_temps_in(&self.bases, &self.bases_dir())
    }

    fn installed_path(&self, name: &DistName) -> PathBuf {
        self.dir.join("installed").join(name.to_string())
    }

    /// What is installed for `name`. Read-only.
    pub fn installed(&self, name: &DistName) -> Result<Option<Installed>> {
        let p = self.installed_path(name);
        let mut f = match self.installed.open_file(name.to_string().as_bytes()) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(nofollow_err(e, "read", &p)),
        };
        let mut b = Vec::new();
        f.read_to_end(&mut b).ctx("read", &p)?;
        serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Metadata {
                what: "installed record",
                path: p,
                reason: e.to_string(),
            })
    }

    /// Everything installed, by name. Read-only.
    pub fn installed_all(&self) -> Result<Vec<Installed>> {
        let d = self.dir.join("installed");
        let mut out = Vec::new();
        for n in self.installed.list().ctx("list", &d)? {
            let Some(name) = std::str::from_utf8(&n)
                .ok()
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
        write_atomic_at(
            &self.installed,
            &self.dir.join("installed"),
            &rec.id.name.to_string(),
            &json,
            0o600,
        )
    }

    /// Path of the kept base of `id` (for messages, reports and as an
    /// input to apply). Read-only.
    pub fn base_path(&self, id: &DistId) -> PathBuf {
        self.dir.join("bases").join(id.file_name())
    }

    /// Whether the kept base of `id` is there (anything by its name: a
    /// link was refused when the state was opened). Read-only.
    pub fn has_base(&self, id: &DistId) -> bool {
        matches!(self.bases.stat(id.file_name().as_bytes()), Ok(Some(_)))
    }

    /// The bases directory (for messages). Read-only.
    pub fn bases_dir(&self) -> PathBuf {
        self.dir.join("bases")
    }

    /// The bases directory's descriptor.
    pub fn bases_fd(&self) -> &Dir {
        &self.bases
    }

    /// The bases directory as a path through its held descriptor (see
    /// [`State::download_fd_path`]). Read-only.
    pub fn bases_fd_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.bases.fd_ref().as_raw_fd()))
    }

    /// Kept bases of `name`, oldest first (by dist date, then rev). Read-only.
    pub fn bases(&self, name: &DistName) -> Result<Vec<KeptBase>> {
        let d = self.bases_dir();
        let mut out = Vec::new();
        for n in self.bases.list().ctx("list", &d)? {
            let Ok(file) = String::from_utf8(n) else {
                continue;
            };
            let Ok(id) = DistId::from_file_name(&file) else {
                continue;
            };
            if &id.name != name {
                continue;
            }
            let path = d.join(&file);
            let st = match self.bases.stat(file.as_bytes()).ctx("stat", &path)? {
                Some(st) if st.is_file() => st,
                Some(_) => return Err(hostile(&path, "not a regular file")),
                None => continue,
            };
            out.push(KeptBase {
                id,
                path,
                size: st.size,
                mtime: st.mtime,
            });
        }
        out.sort_by(|a, b| (a.id.date, &a.id.rev).cmp(&(b.id.date, &b.id.rev)));
        Ok(out)
    }

    /// Remove the kept base of `id` (not durable until [`Dir::sync`] of
    /// [`State::bases_fd`]). Writes: unlinks it.
    pub fn remove_base(&self, id: &DistId) -> Result<()> {
        self.bases
            .unlink(id.file_name().as_bytes())
            .ctx("remove", self.base_path(id))
    }
}

/// Remove `.*.tmp` files in `dir`.
fn remove_temps_in(dir: &Dir, shown: &Path) -> Result<()> {
    for name in dir.list().ctx("list", shown)? {
        if name.starts_with(b".") && name.ends_with(b".tmp") {
            let p = shown.join(std::ffi::OsStr::from_bytes(&name));
            if dir
                .stat(&name)
                .ctx("stat", &p)?
                .is_some_and(|s| s.is_file())
            {
                dir.unlink(&name).ctx("remove", &p)?;
            }
        }
    }
    Ok(())
}

mod bases;
mod keys;
mod lock;
mod mirror;
mod preview;
pub use keys::{AcceptedKey, KEYS_DIR};
pub use mirror::SERIAL_FILE;

#[cfg(test)]
mod tests;
