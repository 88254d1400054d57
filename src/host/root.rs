//! Containment: every filesystem operation of a host-side apply goes through
//! a directory file descriptor obtained here, so nothing a dist says can make
//! sysup create or write anything outside `--root`.
//!
//! Two ways of reaching a directory:
//! - [`Root::resolve_dir`] for directories a dist does *not* describe (the
//!   root's own layout, e.g. merged-/usr `lib -> usr/lib`): symlinks are
//!   followed *inside* the root — an absolute target means root-relative and
//!   `..` stops at the root — with `openat2(RESOLVE_IN_ROOT)` where the
//!   kernel has it and an equivalent component-by-component walk where not;
//! - [`Dir::open_subdir`] for directories the dist itself describes: never
//!   follows a symlink (`O_NOFOLLOW`), so a symlink where the dist says
//!   "directory" is replaced, never written through.
//!
//! Every other call takes a single path component (no `/`) relative to a
//! [`Dir`] and never follows a final symlink.
//!
//! Attribute changes (owner, mode, times, xattrs) act on the object itself,
//! never through a link: the child is opened with `O_NOFOLLOW` (read-only
//! for a file or directory, `O_PATH` for anything else), checked with
//! `fstat`, and changed through that descriptor, so swapping its name for a
//! link at any instant cannot redirect the change. A mode or xattr change
//! on a symlink is refused; its owner and times are the link's own. Objects
//! sysup created itself are changed through the descriptor it created them
//! with ([`fd`]). A regular file about to be replaced or removed while a
//! hard link elsewhere still holds it loses its setuid/setgid bits and file
//! capability first ([`Dir::disarm`]).

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Most symlinks followed while resolving one path (as the kernel's 40).
const MAX_LINKS: usize = 40;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cname(name: &[u8]) -> io::Result<CString> {
    if name.is_empty() || name.contains(&b'/') || name == b"." || name == b".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "'{}' is not a single path component",
                String::from_utf8_lossy(name)
            ),
        ));
    }
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

/// lstat result, reduced to what sysup compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    /// Status change time (seconds, nanoseconds): moves on every change of
    /// the inode and cannot be set back.
    pub ctime: i64,
    pub ctime_nsec: i64,
    pub rdev: u64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
}

impl Stat {
    pub fn file_type(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
    pub fn is_dir(&self) -> bool {
        self.file_type() == libc::S_IFDIR
    }
    pub fn is_file(&self) -> bool {
        self.file_type() == libc::S_IFREG
    }
    pub fn is_symlink(&self) -> bool {
        self.file_type() == libc::S_IFLNK
    }
    pub fn perm(&self) -> u32 {
        self.mode & 0o7777
    }
    fn from_raw(st: &libc::stat) -> Stat {
        Stat {
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            mtime: st.st_mtime,
            ctime: st.st_ctime,
            ctime_nsec: st.st_ctime_nsec,
            rdev: st.st_rdev,
            dev: st.st_dev,
            ino: st.st_ino,
            nlink: st.st_nlink,
        }
    }
}

/// fstat a descriptor.
fn fstat(fd: RawFd) -> io::Result<Stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and stat buffer.
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(Stat::from_raw(&st))
}

/// Attribute changes on a descriptor sysup holds (a file it just created,
/// a directory it staged): they act on that inode, whatever its name has
/// become since.
pub mod fd {
    use super::cvt;
    use std::ffi::CString;
    use std::io;
    use std::os::fd::AsRawFd;

    pub fn chown(fd: &impl AsRawFd, uid: u64, gid: u64) -> io::Result<()> {
        let (u, g) = (
            u32::try_from(uid).map_err(|_| io::Error::other("uid out of range"))?,
            u32::try_from(gid).map_err(|_| io::Error::other("gid out of range"))?,
        );
        // SAFETY: valid fd.
        cvt(unsafe { libc::fchown(fd.as_raw_fd(), u, g) }).map(drop)
    }

    pub fn chmod(fd: &impl AsRawFd, mode: u32) -> io::Result<()> {
        // SAFETY: valid fd.
        cvt(unsafe { libc::fchmod(fd.as_raw_fd(), (mode & 0o7777) as libc::mode_t) }).map(drop)
    }

    pub fn set_xattr(fd: &impl AsRawFd, key: &str, value: &[u8]) -> io::Result<()> {
        let k = CString::new(key)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains NUL"))?;
        // SAFETY: valid fd, C string and a buffer of value.len() bytes.
        cvt(unsafe {
            libc::fsetxattr(
                fd.as_raw_fd(),
                k.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        })
        .map(drop)
    }

    pub fn set_mtime(fd: &impl AsRawFd, mtime: i64) -> io::Result<()> {
        let ts = libc::timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        };
        let times = [ts, ts];
        // SAFETY: valid fd and two timespecs.
        cvt(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) }).map(drop)
    }

    /// The owner (uid, gid) of the inode held.
    pub fn owner(fd: &impl AsRawFd) -> io::Result<(u32, u32)> {
        let st = super::fstat(fd.as_raw_fd())?;
        Ok((st.uid, st.gid))
    }
}

/// A child opened for an attribute change: the object itself, never what a
/// symlink names. Holding the descriptor pins the inode, so a rename of the
/// name after the open cannot redirect the change.
struct Object {
    fd: OwnedFd,
    st: Stat,
    /// `O_PATH` only: a device, fifo or symlink (opening those for real
    /// could block or act on the device), or a file this user may not read.
    path_only: bool,
}

impl Object {
    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The refusal for a mode or xattr change a symlink cannot take.
    fn not_a_link(&self, name: &[u8]) -> io::Result<()> {
        if self.st.is_symlink() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "'{}' is a symbolic link: its target's attributes are not sysup's to change",
                    String::from_utf8_lossy(name)
                ),
            ));
        }
        Ok(())
    }

    /// `/proc/self/fd/N`: the pinned object itself, for the calls that
    /// take no `O_PATH` descriptor (never a symlink: see `not_a_link`).
    fn proc_path(&self) -> CString {
        CString::new(format!("/proc/self/fd/{}", self.raw())).expect("no NUL")
    }
}

/// An open directory.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

/// The kind of special node to create.
#[derive(Clone, Copy, Debug)]
pub enum Node {
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

impl Dir {
    /// Open a directory by plain path (the root itself, or state dirs).
    pub fn open_path(path: &Path) -> io::Result<Dir> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
        // SAFETY: valid C string; we own the returned fd.
        let fd = cvt(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: fd is a fresh descriptor we own.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub(crate) fn fd_ref(&self) -> &OwnedFd {
        &self.fd
    }

    /// Duplicate the descriptor.
    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
        })
    }

    /// lstat a child; `None` when it does not exist.
    pub fn stat(&self, name: &[u8]) -> io::Result<Option<Stat>> {
        let c = cname(name)?;
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd, C string and stat buffer.
        let r =
            unsafe { libc::fstatat(self.raw(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(Stat::from_raw(&st)))
    }

    /// `openat(2)` of a child, never following a symlink in its last
    /// component (`O_NOFOLLOW | O_CLOEXEC` are added to `flags`).
    fn open_child(
        &self,
        name: &[u8],
        flags: libc::c_int,
        mode: libc::c_uint,
    ) -> io::Result<OwnedFd> {
        let c = cname(name)?;
        // SAFETY: valid fd and C string.
        let fd = cvt(unsafe {
            libc::openat(
                self.raw(),
                c.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode,
            )
        })?;
        // SAFETY: a fresh fd, owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Open a child file with `flags` (`O_NOFOLLOW | O_CLOEXEC` added):
    /// a symlink in its place fails with `ELOOP`.
    pub fn open_file_with(
        &self,
        name: &[u8],
        flags: libc::c_int,
        mode: libc::c_uint,
    ) -> io::Result<File> {
        self.open_child(name, flags, mode).map(File::from)
    }

    /// Open a child for an attribute change, never following a symlink: a
    /// regular file or directory read-only (so `fchmod` and friends work on
    /// it), anything else — or a file that cannot be opened so — by
    /// `O_PATH`, changed through `/proc/self/fd`.
    fn object(&self, name: &[u8]) -> io::Result<Object> {
        let fd = self.open_child(name, libc::O_PATH, 0)?;
        let st = fstat(fd.as_raw_fd())?;
        if st.is_file() || st.is_dir() {
            let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
            // Failing that (unreadable to this user, leased, swapped since),
            // the O_PATH descriptor still holds the object first found.
            if let Ok(full) = self.open_child(name, flags, 0) {
                let st2 = fstat(full.as_raw_fd())?;
                if (st2.dev, st2.ino) != (st.dev, st.ino) {
                    return Err(io::Error::other(format!(
                        "'{}' was replaced while sysup set its attributes",
                        String::from_utf8_lossy(name)
                    )));
                }
                return Ok(Object {
                    fd: full,
                    st: st2,
                    path_only: false,
                });
            }
        }
        Ok(Object {
            fd,
            st,
            path_only: true,
        })
    }

    /// Open a child directory without following a symlink.
    pub fn open_subdir(&self, name: &[u8]) -> io::Result<Dir> {
        let fd = self.open_child(name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        Ok(Dir { fd })
    }

    /// Hold a child (not following a symlink) by an `O_PATH` descriptor:
    /// nothing is read or changed, but the inode lives until it is closed.
    pub fn hold(&self, name: &[u8]) -> io::Result<OwnedFd> {
        self.open_child(name, libc::O_PATH, 0)
    }

    /// Open a child regular file for reading, not following a symlink.
    pub fn open_file(&self, name: &[u8]) -> io::Result<File> {
        self.open_child(name, libc::O_RDONLY, 0).map(File::from)
    }

    /// SHA-256 of a child regular file's content (not following a symlink).
    pub fn sha256(&self, name: &[u8]) -> io::Result<[u8; 32]> {
        use crate::util::digest::Sha256;
        let mut f = self.open_file(name)?;
        let mut h = Sha256::new();
        io::copy(&mut f, &mut h)?;
        Ok(h.finalize())
    }

    /// Create a new file (it must not exist), mode 0600 until finished.
    pub fn create_file(&self, name: &[u8]) -> io::Result<File> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
        self.open_child(name, flags, 0o600).map(File::from)
    }

    pub fn mkdir(&self, name: &[u8], mode: u32) -> io::Result<()> {
        let c = cname(name)?;
        // SAFETY: valid fd and C string.
        cvt(unsafe { libc::mkdirat(self.raw(), c.as_ptr(), mode as libc::mode_t) }).map(drop)
    }

    pub fn symlink(&self, target: &[u8], name: &[u8]) -> io::Result<()> {
        let c = cname(name)?;
        let t = CString::new(target)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "link target contains NUL"))?;
        // SAFETY: valid C strings and fd.
        cvt(unsafe { libc::symlinkat(t.as_ptr(), self.raw(), c.as_ptr()) }).map(drop)
    }

    pub fn mknod(&self, name: &[u8], node: Node, mode: u32) -> io::Result<()> {
        let c = cname(name)?;
        let (kind, dev) = match node {
            Node::Char(a, b) => (libc::S_IFCHR, libc::makedev(a, b)),
            Node::Block(a, b) => (libc::S_IFBLK, libc::makedev(a, b)),
            Node::Fifo => (libc::S_IFIFO, 0),
        };
        // SAFETY: valid fd and C string.
        cvt(unsafe {
            libc::mknodat(
                self.raw(),
                c.as_ptr(),
                kind | (mode & 0o7777) as libc::mode_t,
                dev,
            )
        })
        .map(drop)
    }

    /// Hard-link `from_dir/from_name` (not following a symlink) as `name` here.
    pub fn link_from(&self, from_dir: &Dir, from_name: &[u8], name: &[u8]) -> io::Result<()> {
        let (a, b) = (cname(from_name)?, cname(name)?);
        // SAFETY: valid fds and C strings; flags 0 = do not follow.
        cvt(unsafe { libc::linkat(from_dir.raw(), a.as_ptr(), self.raw(), b.as_ptr(), 0) })
            .map(drop)
    }

    /// Rename `name` here to `to_dir/to_name`, replacing a non-directory.
    pub fn rename(&self, name: &[u8], to_dir: &Dir, to_name: &[u8]) -> io::Result<()> {
        let (a, b) = (cname(name)?, cname(to_name)?);
        // SAFETY: valid fds and C strings.
        cvt(unsafe { libc::renameat(self.raw(), a.as_ptr(), to_dir.raw(), b.as_ptr()) }).map(drop)
    }

    /// Remove a non-directory; missing is fine.
    pub fn unlink(&self, name: &[u8]) -> io::Result<()> {
        let c = cname(name)?;
        // SAFETY: valid fd and C string.
        match cvt(unsafe { libc::unlinkat(self.raw(), c.as_ptr(), 0) }) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r.map(drop),
        }
    }

    /// Remove an empty directory; missing is fine.
    pub fn rmdir(&self, name: &[u8]) -> io::Result<()> {
        let c = cname(name)?;
        // SAFETY: valid fd and C string.
        match cvt(unsafe { libc::unlinkat(self.raw(), c.as_ptr(), libc::AT_REMOVEDIR) }) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r.map(drop),
        }
    }

    /// Remove a child of any type, recursively for directories, never
    /// following symlinks; missing is fine.
    pub fn remove_all(&self, name: &[u8]) -> io::Result<()> {
        match self.stat(name)? {
            None => Ok(()),
            Some(st) if st.is_dir() => {
                let sub = self.open_subdir(name)?;
                for child in sub.list()? {
                    sub.remove_all(&child)?;
                }
                self.rmdir(name)
            }
            Some(_) => {
                self.disarm(name)?;
                self.unlink(name)
            }
        }
    }

    /// Names in this directory (no `.`/`..`), sorted.
    pub fn list(&self) -> io::Result<Vec<Vec<u8>>> {
        let fd = self.fd.try_clone()?;
        // SAFETY: fdopendir takes ownership of a dup'ed descriptor.
        let dirp = unsafe { libc::fdopendir(fd.as_raw_fd()) };
        if dirp.is_null() {
            return Err(io::Error::last_os_error());
        }
        std::mem::forget(fd); // now owned by dirp
                              // SAFETY: rewind so a reused description starts at the beginning.
        unsafe { libc::rewinddir(dirp) };
        let mut out = Vec::new();
        loop {
            // SAFETY: dirp is valid until closedir.
            let ent = unsafe { libc::readdir(dirp) };
            if ent.is_null() {
                break;
            }
            // SAFETY: d_name is NUL-terminated.
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
            if name != b"." && name != b".." {
                out.push(name.to_vec());
            }
        }
        // SAFETY: closes dirp and its descriptor.
        unsafe { libc::closedir(dirp) };
        out.sort();
        Ok(out)
    }

    pub fn read_link(&self, name: &[u8]) -> io::Result<Vec<u8>> {
        let c = cname(name)?;
        let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
        // SAFETY: valid fd, C string and buffer.
        let n =
            unsafe { libc::readlinkat(self.raw(), c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        Ok(buf)
    }

    /// chown a child: the object itself (a symlink's own owner), never
    /// through a link.
    pub fn chown(&self, name: &[u8], uid: u64, gid: u64) -> io::Result<()> {
        let (u, g) = (
            u32::try_from(uid).map_err(|_| io::Error::other("uid out of range"))?,
            u32::try_from(gid).map_err(|_| io::Error::other("gid out of range"))?,
        );
        let o = self.object(name)?;
        // SAFETY: valid fd and an empty C string with AT_EMPTY_PATH: the
        // descriptor's own object (O_PATH ones included).
        cvt(unsafe { libc::fchownat(o.raw(), c"".as_ptr(), u, g, libc::AT_EMPTY_PATH) }).map(drop)
    }

    /// chmod a child; a symlink is refused (its mode means nothing on
    /// Linux, and chmod would change its target's).
    pub fn chmod(&self, name: &[u8], mode: u32) -> io::Result<()> {
        let o = self.object(name)?;
        o.not_a_link(name)?;
        let mode = (mode & 0o7777) as libc::mode_t;
        if o.path_only {
            // SAFETY: valid C string naming the pinned, non-symlink object.
            cvt(unsafe { libc::chmod(o.proc_path().as_ptr(), mode) }).map(drop)
        } else {
            // SAFETY: valid fd.
            cvt(unsafe { libc::fchmod(o.raw(), mode) }).map(drop)
        }
    }

    /// Strip setuid/setgid bits and a file capability from a regular file
    /// that is about to be replaced or removed while another name still
    /// holds its inode (a hard link made elsewhere would otherwise keep a
    /// privileged copy of the old program, as dpkg also guards against).
    /// Anything else is left alone.
    pub fn disarm(&self, name: &[u8]) -> io::Result<()> {
        match self.stat(name)? {
            Some(st) if st.is_file() && st.nlink > 1 => {}
            _ => return Ok(()),
        }
        let o = self.object(name)?;
        if !o.st.is_file() || o.st.nlink < 2 {
            return Ok(());
        }
        if o.st.perm() & 0o6000 != 0 {
            let mode = (o.st.perm() & 0o1777) as libc::mode_t;
            if o.path_only {
                // SAFETY: valid C string naming the pinned regular file.
                cvt(unsafe { libc::chmod(o.proc_path().as_ptr(), mode) })?;
            } else {
                // SAFETY: valid fd.
                cvt(unsafe { libc::fchmod(o.raw(), mode) })?;
            }
        }
        let key = c"security.capability";
        // SAFETY: valid fd or C strings; the path names the pinned file.
        let r = unsafe {
            if o.path_only {
                libc::removexattr(o.proc_path().as_ptr(), key.as_ptr())
            } else {
                libc::fremovexattr(o.raw(), key.as_ptr())
            }
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if !matches!(
                e.raw_os_error(),
                Some(libc::ENODATA) | Some(libc::EOPNOTSUPP)
            ) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Set atime and mtime of a child: the object itself (a symlink's own
    /// times), never through a link.
    pub fn set_mtime(&self, name: &[u8], mtime: i64) -> io::Result<()> {
        let ts = libc::timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        };
        let times = [ts, ts];
        let o = self.object(name)?;
        if o.st.is_symlink() {
            let c = cname(name)?;
            // SAFETY: valid fd, C string and two timespecs; a symlink's
            // times are set on the link (AT_SYMLINK_NOFOLLOW), and the
            // name is re-resolved without following either way.
            return cvt(unsafe {
                libc::utimensat(
                    self.raw(),
                    c.as_ptr(),
                    times.as_ptr(),
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            })
            .map(drop);
        }
        if o.path_only {
            // SAFETY: valid C string naming the pinned, non-symlink object.
            cvt(unsafe {
                libc::utimensat(libc::AT_FDCWD, o.proc_path().as_ptr(), times.as_ptr(), 0)
            })
            .map(drop)
        } else {
            // SAFETY: valid fd and two timespecs.
            cvt(unsafe { libc::futimens(o.raw(), times.as_ptr()) }).map(drop)
        }
    }

    /// Set an extended attribute on a child; a symlink is refused.
    pub fn set_xattr(&self, name: &[u8], key: &str, value: &[u8]) -> io::Result<()> {
        let o = self.object(name)?;
        o.not_a_link(name)?;
        let k = CString::new(key)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains NUL"))?;
        let (v, n) = (value.as_ptr().cast(), value.len());
        // SAFETY: valid fd or C strings and a buffer of n bytes.
        cvt(unsafe {
            if o.path_only {
                libc::setxattr(o.proc_path().as_ptr(), k.as_ptr(), v, n, 0)
            } else {
                libc::fsetxattr(o.raw(), k.as_ptr(), v, n, 0)
            }
        })
        .map(drop)
    }

    /// This directory's own mtime (fstat).
    pub fn own_mtime(&self) -> io::Result<i64> {
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd and stat buffer.
        cvt(unsafe { libc::fstat(self.raw(), &mut st) })?;
        Ok(st.st_mtime)
    }

    /// Set this directory's own atime and mtime (futimens).
    pub fn set_own_mtime(&self, mtime: i64) -> io::Result<()> {
        let ts = libc::timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        };
        let times = [ts, ts];
        // SAFETY: valid fd and two timespecs.
        cvt(unsafe { libc::futimens(self.raw(), times.as_ptr()) }).map(drop)
    }

    /// Where this directory really is (from `/proc/self/fd`).
    pub fn real_path(&self) -> io::Result<PathBuf> {
        std::fs::read_link(format!("/proc/self/fd/{}", self.raw()))
    }

    /// fsync the directory (makes renames and creations in it durable).
    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: valid fd.
        cvt(unsafe { libc::fsync(self.raw()) }).map(drop)
    }
}

/// The root a host applies to.
#[derive(Debug)]
pub struct Root {
    path: PathBuf,
    dir: Dir,
    /// Test hook: use the portable walk even where openat2 exists.
    force_walk: bool,
}

impl Root {
    pub fn open(path: &Path) -> io::Result<Root> {
        Ok(Root {
            path: path.to_path_buf(),
            dir: Dir::open_path(path)?,
            force_walk: false,
        })
    }

    /// The root's path (for messages only: never joined for an operation).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root directory itself.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// A path for messages: `<root>/<rel>`.
    pub fn display(&self, rel: &[u8]) -> PathBuf {
        self.path.join(OsStr::from_bytes(rel))
    }

    /// Open the directory `rel` (root-relative), following symlinks only
    /// inside the root. Empty `rel` is the root.
    pub fn resolve_dir(&self, rel: &[u8]) -> io::Result<Dir> {
        if rel.is_empty() {
            return self.dir.try_clone();
        }
        if !self.force_walk {
            match self.openat2_in_root(rel) {
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) => {}
                r => return r,
            }
        }
        self.walk_in_root(rel)
    }

    fn openat2_in_root(&self, rel: &[u8]) -> io::Result<Dir> {
        let c = CString::new(rel)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
        // SAFETY: open_how is plain data; all-zero is its documented default.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64;
        how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
        // SAFETY: valid fd, C string and open_how of the size passed.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.dir.raw(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh fd.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
        })
    }

    /// The portable equivalent of RESOLVE_IN_ROOT: walk component by
    /// component with O_NOFOLLOW, splicing symlink targets in; absolute
    /// targets restart at the root, `..` never climbs above it.
    fn walk_in_root(&self, rel: &[u8]) -> io::Result<Dir> {
        let mut stack: Vec<Dir> = vec![self.dir.try_clone()?];
        let mut todo: Vec<Vec<u8>> = rel
            .split(|&c| c == b'/')
            .rev()
            .map(<[u8]>::to_vec)
            .collect();
        let mut links = 0;
        while let Some(comp) = todo.pop() {
            match comp.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    if stack.len() > 1 {
                        stack.pop();
                    }
                    continue;
                }
                _ => {}
            }
            let cur = stack.last().expect("root stays on the stack");
            match cur.stat(&comp)? {
                None => return Err(io::Error::from_raw_os_error(libc::ENOENT)),
                Some(st) if st.is_symlink() => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    let target = cur.read_link(&comp)?;
                    if target.first() == Some(&b'/') {
                        stack.truncate(1);
                    }
                    for c in target.split(|&c| c == b'/').rev() {
                        todo.push(c.to_vec());
                    }
                }
                Some(st) if st.is_dir() => {
                    let next = cur.open_subdir(&comp)?;
                    stack.push(next);
                }
                Some(_) => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
            }
        }
        Ok(stack.pop().expect("root stays on the stack"))
    }
}

/// Opens the directories of one phase of an apply, caching them.
///
/// A directory the dist describes (`dist_dirs`) is opened from its parent
/// without following a symlink; any other directory (the root's own layout)
/// is resolved inside the root, after checking that every dist directory on
/// its way is a real directory. Staging can point a dist directory at its
/// staged stand-in with [`Resolver::insert`].
pub struct Resolver<'a> {
    root: &'a Root,
    dist_dirs: std::collections::HashSet<Vec<u8>>,
    /// Shared handles: handing one out is a reference count, not a dup(2)
    /// (an apply asks for a directory once per entry). At most
    /// [`CACHE_MAX`]: a world has more directories than a shell's default
    /// descriptor limit (1024) allows open at once.
    cache: std::collections::HashMap<Vec<u8>, Rc<Dir>>,
    /// Directories set with [`Resolver::insert`], which cannot be opened
    /// again by their path; never evicted.
    pinned: std::collections::HashMap<Vec<u8>, Rc<Dir>>,
}

/// Most directories a [`Resolver`] keeps open; past it the cache starts
/// over (tar order visits a directory's entries together, so it rarely has
/// to reopen one).
pub const CACHE_MAX: usize = 128;

impl<'a> Resolver<'a> {
    pub fn new(root: &'a Root, dist_dirs: impl IntoIterator<Item = Vec<u8>>) -> Self {
        Resolver {
            root,
            dist_dirs: dist_dirs.into_iter().collect(),
            cache: std::collections::HashMap::new(),
            pinned: std::collections::HashMap::new(),
        }
    }

    /// Whether the dist describes `rel` as a directory.
    pub fn is_dist_dir(&self, rel: &[u8]) -> bool {
        self.dist_dirs.contains(rel)
    }

    /// Use `dir` for `rel` from now on (a directory staged under another
    /// name; one created under its own name inside it needs no entry).
    pub fn insert(&mut self, rel: &[u8], dir: Dir) {
        self.cache.remove(rel);
        self.pinned.insert(rel.to_vec(), Rc::new(dir));
    }

    /// Forget every directory, inserted ones too (after renames changed
    /// what paths mean).
    pub fn clear(&mut self) {
        self.cache.clear();
        self.pinned.clear();
    }

    /// The directory at root-relative `rel`.
    pub fn dir(&mut self, rel: &[u8]) -> io::Result<&Dir> {
        self.shared_ref(rel).map(|d| &**d)
    }

    /// [`Resolver::dir`] as a handle the caller may keep while it uses the
    /// resolver again.
    pub fn shared(&mut self, rel: &[u8]) -> io::Result<Rc<Dir>> {
        self.shared_ref(rel).map(Rc::clone)
    }

    fn shared_ref(&mut self, rel: &[u8]) -> io::Result<&Rc<Dir>> {
        if !self.pinned.contains_key(rel) && !self.cache.contains_key(rel) {
            let d = self.open(rel)?;
            if self.cache.len() >= CACHE_MAX {
                self.cache.clear();
            }
            self.cache.insert(rel.to_vec(), Rc::new(d));
        }
        Ok(match self.pinned.get(rel) {
            Some(d) => d,
            None => &self.cache[rel],
        })
    }

    fn open(&mut self, rel: &[u8]) -> io::Result<Dir> {
        if rel.is_empty() {
            return self.root.dir().try_clone();
        }
        let (parent, name) = match rel.iter().rposition(|&c| c == b'/') {
            Some(i) => (&rel[..i], &rel[i + 1..]),
            None => (&[][..], rel),
        };
        if self.dist_dirs.contains(rel) {
            let parent = parent.to_vec();
            return self.dir(&parent)?.open_subdir(name);
        }
        // Every dist directory on the way must be a real directory.
        let prefixes: Vec<Vec<u8>> = rel
            .iter()
            .enumerate()
            .filter(|(_, &c)| c == b'/')
            .map(|(i, _)| rel[..i].to_vec())
            .filter(|p| self.dist_dirs.contains(p))
            .collect();
        for p in prefixes {
            self.dir(&p)?;
        }
        self.root.resolve_dir(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A root with merged-/usr links, an absolute link, and links that try
    /// to leave the root; and a secret directory beside it.
    fn setup() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("usr/lib/x")).unwrap();
        std::fs::create_dir_all(t.path().join("outside")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("/usr/lib", root.join("abs")).unwrap();
        symlink("../../outside", root.join("usr/up")).unwrap();
        symlink(t.path().join("outside"), root.join("escape")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        (t, root)
    }

    fn check(root: &Root, outside: &Path) {
        let mark = |d: &Dir, n: &[u8]| d.mkdir(n, 0o755).unwrap();
        mark(&root.resolve_dir(b"lib/x").unwrap(), b"via-lib");
        assert!(root.path().join("usr/lib/x/via-lib").is_dir());
        mark(&root.resolve_dir(b"abs").unwrap(), b"via-abs");
        assert!(
            root.path().join("usr/lib/via-abs").is_dir(),
            "absolute links are root-relative"
        );
        // `../../outside` climbs to the root and stops: it means <root>/outside
        assert!(
            root.resolve_dir(b"usr/up").is_err(),
            "no <root>/outside yet"
        );
        std::fs::create_dir(root.path().join("outside")).unwrap();
        mark(&root.resolve_dir(b"usr/up").unwrap(), b"via-up");
        assert!(root.path().join("outside/via-up").is_dir());
        // an absolute link to the real outside means <root>/<that path>: missing
        assert!(root.resolve_dir(b"escape").is_err());
        assert_eq!(
            std::fs::read_dir(outside).unwrap().count(),
            0,
            "nothing may land outside the root"
        );
        assert!(root.resolve_dir(b"loop").is_err());
        assert!(root.resolve_dir(b"missing/dir").is_err());
    }

    #[test]
    fn symlinks_resolve_inside_the_root_with_openat2() {
        let (t, path) = setup();
        check(&Root::open(&path).unwrap(), &t.path().join("outside"));
    }

    #[test]
    fn symlinks_resolve_inside_the_root_with_the_portable_walk() {
        let (t, path) = setup();
        let mut root = Root::open(&path).unwrap();
        root.force_walk = true;
        check(&root, &t.path().join("outside"));
    }

    #[test]
    fn single_components_only_and_no_following() {
        let (_t, path) = setup();
        let root = Root::open(&path).unwrap();
        let d = root.dir();
        assert!(d.create_file(b"a/b").is_err());
        assert!(d.create_file(b"..").is_err());
        assert!(
            d.open_subdir(b"lib").is_err(),
            "open_subdir must not follow a symlink"
        );
        assert!(d.stat(b"lib").unwrap().unwrap().is_symlink());
        assert!(
            d.create_file(b"escape").is_err(),
            "O_EXCL|O_NOFOLLOW refuses an existing link"
        );
        d.remove_all(b"usr").unwrap();
        assert!(!path.join("usr").exists());
        assert!(
            d.stat(b"lib").unwrap().is_some(),
            "remove_all left siblings alone"
        );
        assert_eq!(
            d.list().unwrap(),
            vec![
                b"abs".to_vec(),
                b"escape".to_vec(),
                b"lib".to_vec(),
                b"loop".to_vec()
            ]
        );
    }

    #[test]
    fn attribute_changes_never_reach_through_a_symlink() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let (t, path) = setup();
        let secret = t.path().join("outside/secret");
        std::fs::write(&secret, b"x").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        symlink(&secret, path.join("link")).unwrap();
        let before = std::fs::metadata(&secret).unwrap();
        let d = Root::open(&path).unwrap().dir;
        let e = d.chmod(b"link", 0o4755).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(d.set_xattr(b"link", "user.sysup", b"v").is_err());
        // owner and times of a symlink are its own: set on the link itself
        let (uid, gid) = (before.uid() + 1, before.gid() + 1);
        if nix::unistd::geteuid().is_root() {
            d.chown(b"link", u64::from(uid), u64::from(gid)).unwrap();
            let l = std::fs::symlink_metadata(path.join("link")).unwrap();
            assert_eq!((l.uid(), l.gid()), (uid, gid));
        }
        d.set_mtime(b"link", 1_000_000).unwrap();
        let l = std::fs::symlink_metadata(path.join("link")).unwrap();
        assert_eq!(l.mtime(), 1_000_000);
        let after = std::fs::metadata(&secret).unwrap();
        assert_eq!(
            (after.mode(), after.uid(), after.gid(), after.mtime()),
            (before.mode(), before.uid(), before.gid(), before.mtime())
        );
        assert!(crate::util::fsutil::read_xattrs(&secret)
            .unwrap()
            .is_empty());
        // on the object itself, each one works
        std::fs::write(path.join("file"), b"y").unwrap();
        d.chmod(b"file", 0o4750).unwrap();
        d.set_xattr(b"file", "user.sysup", b"v").unwrap();
        d.set_mtime(b"file", 2_000_000).unwrap();
        let f = std::fs::metadata(path.join("file")).unwrap();
        assert_eq!((f.mode() & 0o7777, f.mtime()), (0o4750, 2_000_000));
        assert_eq!(
            crate::util::fsutil::read_xattrs(&path.join("file")).unwrap()["user.sysup"],
            b"v"
        );
    }
}
