//! Attribute changes (owner, mode, times, xattrs) on a child of a [`Dir`]:
//! on the object itself, never through a link. The child is opened with
//! `O_NOFOLLOW` (read-only for a file or directory, `O_PATH` for anything
//! else), checked with `fstat`, and changed through that descriptor, so
//! swapping its name for a link at any instant cannot redirect the change.
//! A child's extended attributes are read the same way: through the
//! directory's descriptor, not following a link ([`Dir::xattrs_where`]).
//!
//! Invariants: a mode or xattr change (setting or removing one) on a
//! symlink is refused; its owner and times are the link's own; a regular
//! file about to be replaced or removed while a hard link elsewhere still
//! holds it loses its setuid/setgid bits and file capability first
//! ([`Dir::disarm`]).

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::util::fsutil::{read_xattrs_where, sized_read};

use super::{cname, cvt, fstat, Dir, Stat};

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

    /// Remove attribute `key` from the object (never a symlink: callers
    /// check first); one it does not have, or a filesystem without
    /// extended attributes, is no error.
    fn remove_xattr(&self, key: &std::ffi::CStr) -> io::Result<()> {
        // SAFETY: valid fd or C strings; the path names the pinned object.
        let r = unsafe {
            if self.path_only {
                libc::removexattr(self.proc_path().as_ptr(), key.as_ptr())
            } else {
                libc::fremovexattr(self.raw(), key.as_ptr())
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

    /// The names of the object's extended attributes (never a symlink's:
    /// callers check first); none on a filesystem without them. Names that
    /// are not UTF-8 are left out: no MANIFEST can carry them.
    fn xattr_names(&self) -> io::Result<Vec<String>> {
        let listed = sized_read(|buf, n| {
            // SAFETY: valid fd or C string; buf has room for n bytes (or is
            // null with n 0, which asks for the size).
            let r = unsafe {
                if self.path_only {
                    libc::listxattr(self.proc_path().as_ptr(), buf.cast(), n)
                } else {
                    libc::flistxattr(self.raw(), buf.cast(), n)
                }
            };
            usize::try_from(r).map_err(|_| io::Error::last_os_error())
        });
        let buf = match listed {
            Ok(b) => b,
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(buf
            .split(|&b| b == 0)
            .filter_map(|n| std::str::from_utf8(n).ok())
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

impl Dir {
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

    /// Open a child once for several attribute changes (each of
    /// [`Dir::chown`], [`Dir::chmod`], [`Dir::set_mtime`] and
    /// [`Dir::set_xattr`] opens it anew); `None` if there is no such child.
    pub fn pin(&self, name: &[u8]) -> io::Result<Option<Pinned<'_>>> {
        match self.object(name) {
            Ok(o) => Ok(Some(Pinned {
                dir: self,
                name: name.to_vec(),
                o,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn pinned(&self, name: &[u8]) -> io::Result<Pinned<'_>> {
        Ok(Pinned {
            dir: self,
            name: name.to_vec(),
            o: self.object(name)?,
        })
    }

    /// chown a child: the object itself (a symlink's own owner), never
    /// through a link.
    pub fn chown(&self, name: &[u8], uid: u64, gid: u64) -> io::Result<()> {
        self.pinned(name)?.chown(uid, gid)
    }

    /// chmod a child; a symlink is refused (its mode means nothing on
    /// Linux, and chmod would change its target's).
    pub fn chmod(&self, name: &[u8], mode: u32) -> io::Result<()> {
        self.pinned(name)?.chmod(mode)
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
        o.remove_xattr(c"security.capability")
    }

    /// Set atime and mtime of a child: the object itself (a symlink's own
    /// times), never through a link.
    pub fn set_mtime(&self, name: &[u8], mtime: i64) -> io::Result<()> {
        self.pinned(name)?.set_mtime(mtime)
    }

    /// Set an extended attribute on a child; a symlink is refused.
    pub fn set_xattr(&self, name: &[u8], key: &str, value: &[u8]) -> io::Result<()> {
        self.pinned(name)?.set_xattr(key, value)
    }

    /// The extended attributes of child `name` that `keep` selects (by
    /// name), never following a symlink: read by a path through this
    /// directory's own descriptor (`/proc/self/fd/N/name`), so neither a
    /// walk from `/` nor a rename of a directory above can redirect it.
    pub fn xattrs_where(
        &self,
        name: &[u8],
        keep: impl Fn(&str) -> bool,
    ) -> io::Result<BTreeMap<String, Vec<u8>>> {
        let mut p = format!("/proc/self/fd/{}/", self.raw()).into_bytes();
        p.extend_from_slice(name);
        read_xattrs_where(Path::new(OsStr::from_bytes(&p)), keep)
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
}

/// A child of a [`Dir`] opened once ([`Dir::pin`]) for several attribute
/// changes, each made on the object first opened, as [`Dir`]'s one-shot
/// methods make them.
pub struct Pinned<'d> {
    dir: &'d Dir,
    name: Vec<u8>,
    o: Object,
}

impl Pinned<'_> {
    /// The object as it was when pinned.
    pub fn stat(&self) -> &Stat {
        &self.o.st
    }

    /// chown the object (a symlink's own owner).
    pub fn chown(&self, uid: u64, gid: u64) -> io::Result<()> {
        let (u, g) = (
            u32::try_from(uid).map_err(|_| io::Error::other("uid out of range"))?,
            u32::try_from(gid).map_err(|_| io::Error::other("gid out of range"))?,
        );
        // SAFETY: valid fd and an empty C string with AT_EMPTY_PATH: the
        // descriptor's own object (O_PATH ones included).
        cvt(unsafe { libc::fchownat(self.o.raw(), c"".as_ptr(), u, g, libc::AT_EMPTY_PATH) })
            .map(drop)
    }

    /// chmod the object; a symlink is refused.
    pub fn chmod(&self, mode: u32) -> io::Result<()> {
        let o = &self.o;
        o.not_a_link(&self.name)?;
        let mode = (mode & 0o7777) as libc::mode_t;
        if o.path_only {
            // SAFETY: valid C string naming the pinned, non-symlink object.
            cvt(unsafe { libc::chmod(o.proc_path().as_ptr(), mode) }).map(drop)
        } else {
            // SAFETY: valid fd.
            cvt(unsafe { libc::fchmod(o.raw(), mode) }).map(drop)
        }
    }

    /// Set atime and mtime of the object (a symlink's own times).
    pub fn set_mtime(&self, mtime: i64) -> io::Result<()> {
        let ts = libc::timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        };
        let times = [ts, ts];
        let o = &self.o;
        if o.st.is_symlink() {
            let c = cname(&self.name)?;
            // SAFETY: valid fd, C string and two timespecs; a symlink's
            // times are set on the link (AT_SYMLINK_NOFOLLOW), and the
            // name is re-resolved without following either way.
            return cvt(unsafe {
                libc::utimensat(
                    self.dir.raw(),
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

    /// Remove the object's extended attributes that `drop` selects (by
    /// name), returning their names; a symlink is refused. An attribute
    /// already gone, or a filesystem without them, is no error.
    pub fn remove_xattrs_where(&self, drop: impl Fn(&str) -> bool) -> io::Result<Vec<String>> {
        let o = &self.o;
        o.not_a_link(&self.name)?;
        let mut removed = Vec::new();
        for name in o.xattr_names()?.into_iter().filter(|n| drop(n)) {
            let k = CString::new(name.as_str()).expect("split on NUL");
            o.remove_xattr(&k)?;
            removed.push(name);
        }
        Ok(removed)
    }

    /// Set an extended attribute on the object; a symlink is refused.
    pub fn set_xattr(&self, key: &str, value: &[u8]) -> io::Result<()> {
        let o = &self.o;
        o.not_a_link(&self.name)?;
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
}
