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

mod attrs;
pub mod fd;
mod resolver;

pub use attrs::Pinned;
pub use resolver::{Resolver, CACHE_MAX};

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

    /// Whether child `name` (not followed if a symlink) is the root of a
    /// mount, a bind-mounted file's included: `statx`'s
    /// `STATX_ATTR_MOUNT_ROOT` where the kernel says (5.8 and later), else
    /// another device than this directory's (which also takes a btrfs
    /// subvolume for one: kept, or refused, where a newer kernel would not).
    pub fn is_mount_point(&self, name: &[u8]) -> io::Result<bool> {
        let c = cname(name)?;
        let mut stx: libc::statx = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd, C string and statx buffer.
        cvt(unsafe {
            libc::statx(
                self.raw(),
                c.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
                libc::STATX_BASIC_STATS,
                &mut stx,
            )
        })?;
        let root = libc::STATX_ATTR_MOUNT_ROOT as u64;
        if stx.stx_attributes_mask & root != 0 {
            return Ok(stx.stx_attributes & root != 0);
        }
        let own = nix::sys::stat::fstat(self.raw()).map_err(io::Error::from)?;
        let dev = libc::makedev(stx.stx_dev_major, stx.stx_dev_minor);
        Ok(dev != own.st_dev)
    }

    /// An unnamed regular file on this directory's filesystem
    /// (`O_TMPFILE`): no name is made, and nothing is left once it is
    /// closed, even by a crash. `None` where the filesystem makes none.
    pub fn unnamed_file(&self) -> io::Result<Option<File>> {
        let flags = libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC;
        // SAFETY: valid fd and C string.
        let fd = unsafe { libc::openat(self.raw(), c".".as_ptr(), flags, 0o600) };
        match cvt(fd) {
            // SAFETY: a fresh fd, owned by nobody else.
            Ok(fd) => Ok(Some(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => Ok(None),
            Err(e) => Err(e),
        }
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

#[cfg(test)]
mod tests;
