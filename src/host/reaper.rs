//! Deferred last closes of the files a commit replaces.
//!
//! Renaming a staged file over an old one drops the old inode's last link,
//! and the kernel frees it inside that `rename` — on a filesystem mounted
//! with `discard` (common on VMs and SSDs), ext4 even waits there for the
//! device to TRIM the freed blocks. On the bench world that was 2,530
//! renames at ~0.28 ms each, 0.7 s of a commit spent waiting, one file at a
//! time. So before such a rename the commit opens the old file (`O_PATH`,
//! which holds the inode without reading or changing anything) and hands
//! the descriptor here; the inode is freed when a reaper thread closes it,
//! several at once, while the commit goes on.
//!
//! Invariants: only descriptors are held, nothing on disk depends on when
//! they are closed (a crash closes them all); at most [`PENDING`] wait at
//! a time, so the process stays far below its descriptor limit; dropping
//! the [`Reaper`] closes everything and joins its threads, so a finished
//! apply has freed the space it reports.

use std::os::fd::OwnedFd;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Threads closing at once: the waits are the device's, not the CPU's.
const THREADS: usize = 8;
/// Descriptors waiting to be closed before `keep` blocks.
pub const PENDING: usize = 256;

/// See the module documentation. Threads start on the first [`Reaper::keep`].
#[derive(Default)]
pub struct Reaper {
    tx: Option<SyncSender<OwnedFd>>,
    threads: Vec<JoinHandle<()>>,
    /// Threads were asked for (once: if none started, closes stay inline).
    started: bool,
}

impl Reaper {
    pub fn new() -> Reaper {
        Reaper::default()
    }

    /// Close `fd` on a reaper thread (here, if none could be started).
    pub fn keep(&mut self, fd: OwnedFd) {
        if !self.started {
            self.started = true;
            self.start();
        }
        if let Some(tx) = &self.tx {
            if let Err(mpsc::SendError(fd)) = tx.send(fd) {
                drop(fd);
            }
        }
    }

    fn start(&mut self) {
        let (tx, rx) = mpsc::sync_channel::<OwnedFd>(PENDING);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..THREADS {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("sysup-reap{i}"))
                .stack_size(64 * 1024)
                .spawn(move || reap(&rx));
            match spawned {
                Ok(t) => self.threads.push(t),
                Err(_) => break,
            }
        }
        if !self.threads.is_empty() {
            self.tx = Some(tx);
        }
    }
}

fn reap(rx: &Mutex<Receiver<OwnedFd>>) {
    loop {
        let next = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match next {
            Ok(fd) => drop(fd),
            Err(_) => return,
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_held_file_outlives_its_name_until_the_reaper_is_dropped() {
        use std::os::fd::AsRawFd;
        let t = tempfile::tempdir().unwrap();
        let mut reaper = Reaper::new();
        // Each held file by its descriptor and inode: other tests of this
        // process run alongside and open (and unlink) files of their own,
        // which may reuse a freed inode number, so neither alone names ours.
        let mut held = Vec::new();
        for i in 0..PENDING + 10 {
            let p = t.path().join(format!("f{i}"));
            std::fs::write(&p, vec![7u8; 8192]).unwrap();
            let f = std::fs::File::open(&p).unwrap();
            held.push((f.as_raw_fd(), f.metadata().unwrap().ino()));
            reaper.keep(f.into());
            std::fs::remove_file(&p).unwrap();
        }
        // more than PENDING were accepted (none blocked for good), and after
        // the drop every one of them is closed: none left in /proc/self/fd
        drop(reaper);
        let open: Vec<_> = held
            .iter()
            .filter(|(fd, ino)| {
                std::fs::metadata(format!("/proc/self/fd/{fd}"))
                    .is_ok_and(|m| m.ino() == *ino && m.nlink() == 0)
            })
            .collect();
        assert!(
            open.is_empty(),
            "{} still open, first (fd, inode): {:?}",
            open.len(),
            open[0]
        );
    }
}
