//! Filesystem helpers shared by the build and host sides: atomic file
//! creation (temp name in the destination directory → fsync → rename → fsync
//! the directory), early writeback of data that will be synced later, and
//! extended attribute reading that never follows symlinks, with the
//! rules of which attribute names a dist may carry ([`xattr_owned`]) and
//! `verify` compares ([`xattr_compared`]).
//!
//! Invariants: an [`AtomicFile`] that is dropped without [`AtomicFile::commit`]
//! leaves nothing behind; after `commit` returns, the new name is durable
//! (the directory entry itself was fsynced: a rename is not on disk until its
//! directory is).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

/// Start writing `fd`'s dirty pages in `[offset, offset + len)` (`len` 0:
/// to the end) to disk without waiting for them, as dpkg does for each file
/// it unpacks: the later fsync or syncfs then finds most data already
/// written instead of flushing it all at once. Advisory: an error here
/// changes nothing (a real write error is reported again by that sync), so
/// it is ignored; on filesystems without writeback (tmpfs) it is a no-op.
pub fn start_writeback(fd: &impl std::os::fd::AsRawFd, offset: u64, len: u64) {
    // SAFETY: sync_file_range only reads its integer arguments; a bad
    // descriptor or range is an error return, not undefined behaviour.
    unsafe {
        libc::sync_file_range(
            fd.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// A file writer that starts writeback ([`start_writeback`]) of every
/// `every` bytes once they are written: for a large file that is fsynced
/// at its end, like a host's new base.
pub struct WritebackFile {
    file: File,
    written: u64,
    started: u64,
    every: u64,
}

impl WritebackFile {
    pub fn new(file: File, every: u64) -> WritebackFile {
        WritebackFile {
            file,
            written: 0,
            started: 0,
            every: every.max(1),
        }
    }
}

impl Write for WritebackFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= self.every {
            start_writeback(&self.file, self.started, self.written - self.started);
            self.started = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A byte count for people: `512 B`, `40 KiB`, `12 MiB`, `3 GiB`.
pub fn human_size(b: u64) -> String {
    match b {
        b if b >= 10 << 30 => format!("{} GiB", b >> 30),
        b if b >= 10 << 20 => format!("{} MiB", b >> 20),
        b if b >= 10 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// fsync a directory, making renames and creations inside it durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("fsync directory", dir)
}

/// A file written under a temporary name beside its destination and renamed
/// into place by [`AtomicFile::commit`].
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl AtomicFile {
    /// Start writing `dest`, world-readable (0644): dists and patches are
    /// published. See [`AtomicFile::create_with_mode`] for private files.
    pub fn create(dest: &Path) -> Result<AtomicFile> {
        AtomicFile::create_with_mode(dest, 0o644)
    }

    /// Start writing `dest` with permission bits `mode`; the temp file lives
    /// in the same directory so the final rename is atomic and space runs out
    /// here, not at commit. (Dists are 0644 for mirrors; a host's base holds
    /// every file of the system, `/etc/shadow` included, and is 0600.)
    pub fn create_with_mode(dest: &Path, mode: u32) -> Result<AtomicFile> {
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let stem = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{stem}."))
            .suffix(".tmp")
            .permissions(std::fs::Permissions::from_mode(mode))
            .tempfile_in(dir)
            .ctx("create a temporary file in", dir)?;
        Ok(AtomicFile {
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// The temporary path (for messages).
    pub fn temp_path(&self) -> &Path {
        self.tmp.path()
    }

    /// fsync and keep the file under its temporary name (it survives the
    /// process); the caller renames it later. Returns the temporary path.
    pub fn keep(mut self) -> Result<PathBuf> {
        let tmp_path = self.tmp.path().to_path_buf();
        self.tmp.as_file_mut().flush().ctx("write", &tmp_path)?;
        self.tmp.as_file().sync_all().ctx("fsync", &tmp_path)?;
        let (_, path) = self
            .tmp
            .keep()
            .map_err(|e| e.error)
            .ctx("keep", &tmp_path)?;
        Ok(path)
    }

    /// fsync, rename over the destination, fsync the directory.
    pub fn commit(mut self) -> Result<PathBuf> {
        let tmp_path = self.tmp.path().to_path_buf();
        self.tmp.as_file_mut().flush().ctx("write", &tmp_path)?;
        self.tmp.as_file().sync_all().ctx("fsync", &tmp_path)?;
        self.tmp
            .persist(&self.dest)
            .map_err(|e| e.error)
            .ctx("rename into place", &self.dest)?;
        let dir = match self.dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fsync_dir(dir)?;
        Ok(self.dest)
    }
}

/// Write a whole file atomically with permission bits `mode` (see [`AtomicFile`]).
pub fn write_atomic(dest: &Path, data: &[u8], mode: u32) -> Result<()> {
    let mut f = AtomicFile::create_with_mode(dest, mode)?;
    let tmp = f.temp_path().to_path_buf();
    f.file().write_all(data).ctx("write", &tmp)?;
    f.commit().map(|_| ())
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// The file capability: a privilege grant, which is the dist's to give.
pub const CAPABILITY: &str = "security.capability";

/// Whether a dist may carry extended attribute `name`: the build records
/// `user.*`, `trusted.*` and [`CAPABILITY`]. Every other name is the
/// host's: the other `security.*` names are its LSM's labels (SELinux,
/// Smack, IMA/EVM, AppArmor), set by its policy and its kernel, and
/// `system.*` holds POSIX ACLs, which dists do not carry
/// (docs/decisions.md#which-extended-attributes-the-dist-owns).
pub fn xattr_owned(name: &str) -> bool {
    name.starts_with("user.") || name.starts_with("trusted.") || name == CAPABILITY
}

/// Whether `verify` compares a live object's attribute `name` with its
/// entry (`in_entry`: the entry carries that name): a name the entry
/// carries, and [`CAPABILITY`] always — a privilege the dist did not
/// grant needs the admin's eye. Any other name the entry lacks is local
/// (the admin's, a service's, the filesystem's own: overlayfs and
/// Gluster keep theirs in `trusted.*`) and is neither reported nor, by an
/// apply, removed.
pub fn xattr_compared(name: &str, in_entry: bool) -> bool {
    in_entry || name == CAPABILITY
}

/// Read the extended attributes of `path` that a dist may carry
/// ([`xattr_owned`]), without following a symlink. A filesystem without
/// xattr support yields an empty map.
pub fn read_xattrs(path: &Path) -> io::Result<BTreeMap<String, Vec<u8>>> {
    read_xattrs_where(path, xattr_owned)
}

/// Read the extended attributes of `path` whose names `keep` selects,
/// without following a symlink. A filesystem without xattr support yields
/// an empty map; an attribute removed between the listing and its read is
/// left out.
pub fn read_xattrs_where(
    path: &Path,
    keep: impl Fn(&str) -> bool,
) -> io::Result<BTreeMap<String, Vec<u8>>> {
    let c = cpath(path)?;
    read_where(Xattrs::Path(&c), keep)
}

/// [`read_xattrs_where`] of an open file (`flistxattr`: no path lookup).
pub fn read_fd_xattrs_where(
    fd: &impl std::os::fd::AsRawFd,
    keep: impl Fn(&str) -> bool,
) -> io::Result<BTreeMap<String, Vec<u8>>> {
    read_where(Xattrs::Fd(fd.as_raw_fd()), keep)
}

/// Whose extended attributes to read: a path's (never following a final
/// symlink) or an open descriptor's.
#[derive(Clone, Copy)]
enum Xattrs<'a> {
    Path(&'a CString),
    Fd(std::os::fd::RawFd),
}

impl Xattrs<'_> {
    /// The NUL-separated attribute names (`llistxattr` / `flistxattr`).
    fn names(self) -> io::Result<Vec<u8>> {
        sized_read(|buf, n| {
            // SAFETY: a valid C string or descriptor; buf has room for n
            // bytes (or is null with n 0, which asks for the size).
            let r = unsafe {
                match self {
                    Xattrs::Path(c) => libc::llistxattr(c.as_ptr(), buf.cast(), n),
                    Xattrs::Fd(fd) => libc::flistxattr(fd, buf.cast(), n),
                }
            };
            usize::try_from(r).map_err(|_| io::Error::last_os_error())
        })
    }

    /// The value of `name` (`lgetxattr` / `fgetxattr`); `None` if it is gone.
    fn value(self, name: &CString) -> io::Result<Option<Vec<u8>>> {
        let read = sized_read(|buf, n| {
            // SAFETY: valid C strings or descriptor; buf as in `names`.
            let r = unsafe {
                match self {
                    Xattrs::Path(c) => libc::lgetxattr(c.as_ptr(), name.as_ptr(), buf.cast(), n),
                    Xattrs::Fd(fd) => libc::fgetxattr(fd, name.as_ptr(), buf.cast(), n),
                }
            };
            usize::try_from(r).map_err(|_| io::Error::last_os_error())
        });
        match read {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The bytes of a size-then-fill call pair (`listxattr`, `getxattr`):
/// `call(null, 0)` gives the size, `call(buf, n)` fills `buf`. Bytes that
/// grew between the two (`ERANGE`) are asked for again, a few times.
pub fn sized_read(call: impl Fn(*mut u8, usize) -> io::Result<usize>) -> io::Result<Vec<u8>> {
    let mut tries = 0;
    loop {
        let mut buf = vec![0u8; call(std::ptr::null_mut(), 0)?];
        if buf.is_empty() {
            return Ok(buf);
        }
        match call(buf.as_mut_ptr(), buf.len()) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) && tries < 4 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

fn read_where(
    src: Xattrs<'_>,
    keep: impl Fn(&str) -> bool,
) -> io::Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let names = match src.names() {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(out),
        Err(e) => return Err(e),
    };
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let Ok(name_str) = std::str::from_utf8(name) else {
            continue;
        };
        if !keep(name_str) {
            continue;
        }
        let cname = CString::new(name).expect("split on NUL");
        if let Some(val) = src.value(&cname)? {
            out.insert(name_str.to_string(), val);
        }
    }
    Ok(out)
}

/// Set an extended attribute on `path` without following a symlink.
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let c = cpath(path)?;
    let n = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains NUL"))?;
    // SAFETY: valid C strings and a buffer of value.len() bytes.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Bytes an unprivileged write may still use on the filesystem of `p`
/// (`statvfs`: available blocks × fragment size).
pub fn free_bytes(p: &Path) -> Result<u64> {
    let s = nix::sys::statvfs::statvfs(p)
        .map_err(|e| crate::Error::io("check free space on", p, e.into()))?;
    // The field types differ between platforms; on some the conversion is a no-op.
    #[allow(clippy::useless_conversion)]
    let free = u64::from(s.blocks_available()).saturating_mul(u64::from(s.fragment_size()));
    Ok(free)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_file_leaves_nothing_when_dropped() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out");
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.file().write_all(b"x").unwrap();
        }
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
        write_atomic(&dest, b"data", 0o640).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"data");
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_dist_owns_user_trusted_and_the_file_capability_only() {
        for n in [
            "user.sysup",
            "trusted.overlay.opaque",
            "security.capability",
        ] {
            assert!(xattr_owned(n), "{n}");
        }
        for n in [
            "security.selinux",
            "security.SMACK64",
            "security.SMACK64EXEC",
            "security.ima",
            "security.evm",
            "security.apparmor",
            "security.capability2",
            "system.posix_acl_access",
            "system.nfs4_acl",
            "other.x",
            "user",
        ] {
            assert!(!xattr_owned(n), "{n}");
        }
    }

    #[test]
    fn verify_compares_what_the_entry_carries_and_any_capability() {
        assert!(xattr_compared("security.selinux", true));
        assert!(!xattr_compared("security.selinux", false));
        assert!(xattr_compared("user.k", true));
        // a local attribute is not the dist's business, a capability is
        assert!(!xattr_compared("user.k", false));
        assert!(!xattr_compared("trusted.overlay.opaque", false));
        assert!(xattr_compared(CAPABILITY, false));
    }

    #[test]
    fn a_list_that_grows_between_size_and_read_is_asked_again_a_few_times() {
        use std::cell::Cell;
        // grows once: the second size is right
        let calls = Cell::new(0);
        let got = sized_read(|buf, n| {
            calls.set(calls.get() + 1);
            let want = if calls.get() <= 2 { 2 } else { 3 };
            if buf.is_null() {
                return Ok(want);
            }
            if n < 3 {
                return Err(io::Error::from_raw_os_error(libc::ERANGE));
            }
            // SAFETY: the caller gave n >= 3 bytes.
            unsafe { std::ptr::copy_nonoverlapping(b"a\0b".as_ptr(), buf, 3) };
            Ok(3)
        });
        assert_eq!(got.unwrap(), b"a\0b");
        // grows for ever: an error, not a loop
        let e = sized_read(|buf, _| match buf.is_null() {
            true => Ok(1),
            false => Err(io::Error::from_raw_os_error(libc::ERANGE)),
        })
        .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ERANGE));
        assert!(sized_read(|_, _| Ok(0)).unwrap().is_empty());
    }

    #[test]
    fn user_xattrs_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"").unwrap();
        set_xattr(&p, "user.sysup", b"\x01\n\x00v").expect("temp dir supports user xattrs");
        let x = read_xattrs(&p).unwrap();
        assert_eq!(x.get("user.sysup").unwrap(), b"\x01\n\x00v");
        set_xattr(&p, "user.other", b"").unwrap();
        let f = File::open(&p).unwrap();
        let by_fd = read_fd_xattrs_where(&f, |n| n == "user.other").unwrap();
        assert_eq!(
            by_fd.into_iter().collect::<Vec<_>>(),
            [("user.other".to_string(), vec![])]
        );
        assert_eq!(read_xattrs_where(&p, |_| true).unwrap().len(), 2);
    }
}
