//! The state directory's `lock`: one running sysup holds an exclusive
//! `flock(2)` on it and writes its pid there, so a second one refuses at
//! once naming the first; a reader asks `/proc/locks` who holds it instead
//! of taking it, so looking never makes a starting apply refuse.
//!
//! Invariant: the lock lives as long as the [`Lock`] value (or the
//! process); nothing else in sysup removes or truncates the file while it
//! is held.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;

use super::State;
use crate::error::{Error, IoContext, Result};

/// The held lock; released on drop (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl State {
    /// The pid of the sysup that holds the lock now, if one is running.
    /// Read-only: it looks the lock up in `/proc/locks` (a write lock on
    /// the lock file's inode, held by the pid the file names) instead of
    /// taking it, so asking never makes a starting apply refuse. `None`
    /// where `/proc` cannot tell.
    pub fn lock_holder(&self) -> Result<Option<u32>> {
        let Some(mut f) = self.open_file("lock", libc::O_RDONLY, 0)? else {
            return Ok(None);
        };
        let shown = self.dir.join("lock");
        let ino = std::os::unix::fs::MetadataExt::ino(&f.metadata().ctx("stat", &shown)?);
        let mut pid = String::new();
        f.read_to_string(&mut pid).ctx("read", &shown)?;
        let Ok(pid) = pid.trim().parse::<u32>() else {
            return Ok(None);
        };
        let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
            return Ok(None);
        };
        // `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF` (waiters: `1: -> FLOCK …`)
        let held = locks.lines().any(|line| {
            let w: Vec<&str> = line.split_whitespace().collect();
            w.len() >= 6
                && w[1] == "FLOCK"
                && w[3] == "WRITE"
                && w[4].parse::<u32>() == Ok(pid)
                && w[5].rsplit(':').next().and_then(|i| i.parse::<u64>().ok()) == Some(ino)
        });
        Ok(held.then_some(pid))
    }

    /// Take the exclusive lock, or refuse at once naming the holder.
    /// Writes: creates `lock` and records this process's pid in it.
    pub fn lock(&self) -> Result<Lock> {
        let p = self.dir.join("lock");
        let mut f = self
            .open_file("lock", libc::O_RDWR | libc::O_CREAT, 0o600)?
            .expect("O_CREAT");
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
}
