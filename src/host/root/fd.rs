//! Attribute changes on a descriptor sysup holds (a file it just created,
//! a directory it staged): they act on that inode, whatever its name has
//! become since.
//!
//! Invariant: each call acts on the descriptor's own inode, never on a name.

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
