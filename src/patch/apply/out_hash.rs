//! The new tar's SHA-256 on a thread of its own, fed the applier's output
//! buffers themselves, and — when the applier writes the new tar itself
//! ([`apply_reader`](super::apply_reader)) — a writer thread fed the same
//! buffers: every buffer goes to both, shared, and the last one done with
//! it sends it back emptied, for the applier to produce into again.
//! Copying every output byte into a hashing buffer was about a twentieth
//! of `sysup patch`'s main thread on the bench pair (by `perf`), and
//! `write(2)` into the output file about a third: the main thread is what
//! `sysup patch` waits for, so neither is done there.
//!
//! Small remainders (a buffer mostly hashed already, a step that made a
//! header) are copied instead: handing over a buffer costs a wake-up of
//! the threads, which only pays for many kilobytes.
//!
//! Invariants: the digest is of exactly the bytes given, in the order
//! given, and the writer writes exactly those bytes in that order (copies
//! are queued behind in a buffer that is sent before any later whole
//! buffer); at most [`IN_FLIGHT`] buffers of at most [`GIVE_MAX`] bytes
//! wait for each thread, so memory is bounded whatever the stream's size;
//! a writer that failed keeps taking buffers (and drops them), so the
//! applier never waits on it, and says so through [`OutHash::write_failed`].

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crate::util::digest::Sha256;
use crate::util::hashing::Hashed;

/// Buffers waiting for each thread at most.
const IN_FLIGHT: usize = 4;
/// Bytes copied before they are sent.
const COPY_CHUNK: usize = 1 << 20;
/// Fewest unhashed bytes for which a buffer is handed over rather than
/// copied.
pub(super) const GIVE_MIN: usize = 64 << 10;
/// Largest buffer (capacity) handed over; a bigger one is copied, in
/// [`COPY_CHUNK`] pieces.
pub(super) const GIVE_MAX: usize = 2 << 20;

/// A buffer shared by the threads, and where its bytes for them start.
type Piece = (Arc<Vec<u8>>, usize);

/// Send `buf` back emptied if this was its last holder; a full return
/// channel (the applier is not taking them) drops it.
fn recycle(buf: Arc<Vec<u8>>, back: &SyncSender<Vec<u8>>) {
    if let Some(mut v) = Arc::into_inner(buf) {
        v.clear();
        let _ = back.try_send(v);
    }
}

/// The receiving end of a writer thread ([`OutHash::writer`]).
pub(super) struct WriterFeed {
    rx: Receiver<Piece>,
    back: SyncSender<Vec<u8>>,
    failed: Arc<AtomicBool>,
}

impl WriterFeed {
    /// Write every buffer to `out`, in order, then flush; the first error
    /// (after which buffers are taken and dropped) is returned once the
    /// applier hung up.
    pub(super) fn run(self, out: &mut impl Write) -> io::Result<()> {
        let mut res = Ok(());
        for (buf, from) in self.rx {
            if res.is_ok() {
                res = out.write_all(&buf[from..]);
                if res.is_err() {
                    self.failed.store(true, Ordering::Relaxed);
                }
            }
            recycle(buf, &self.back);
        }
        res?;
        out.flush()
    }
}

/// See the module documentation.
pub(super) struct OutHash {
    tx: Option<SyncSender<Piece>>,
    writer: Option<SyncSender<Piece>>,
    write_failed: Arc<AtomicBool>,
    back_tx: SyncSender<Vec<u8>>,
    back: Receiver<Vec<u8>>,
    handle: Option<JoinHandle<[u8; 32]>>,
    /// Copied bytes not sent yet.
    copied: Vec<u8>,
    size: u64,
}

impl OutHash {
    /// Start the hashing thread.
    pub(super) fn spawn() -> io::Result<OutHash> {
        let (tx, rx) = mpsc::sync_channel::<Piece>(IN_FLIGHT);
        // Buffers back beyond these are freed: what the applier keeps for
        // reuse stays as small as it was with one thread.
        let (back_tx, back) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
        let sha_back = back_tx.clone();
        let handle = thread::Builder::new()
            .name("sysup-sha256".into())
            .spawn(move || {
                let mut sha = Sha256::new();
                for (buf, from) in rx {
                    sha.update(&buf[from..]);
                    recycle(buf, &sha_back);
                }
                sha.finalize()
            })?;
        Ok(OutHash {
            tx: Some(tx),
            writer: None,
            write_failed: Arc::default(),
            back_tx,
            back,
            handle: Some(handle),
            copied: Vec::new(),
            size: 0,
        })
    }

    /// From now on, every byte given goes to a writer too: the returned
    /// feed, for a thread that writes them ([`WriterFeed::run`]). Its
    /// input ends when this is finished or dropped.
    pub(super) fn writer(&mut self) -> WriterFeed {
        let (tx, rx) = mpsc::sync_channel::<Piece>(IN_FLIGHT);
        self.writer = Some(tx);
        WriterFeed {
            rx,
            back: self.back_tx.clone(),
            failed: self.write_failed.clone(),
        }
    }

    /// The writer failed (its error comes from [`WriterFeed::run`]).
    pub(super) fn write_failed(&self) -> bool {
        self.write_failed.load(Ordering::Relaxed)
    }

    fn send(&mut self, buf: Vec<u8>, from: usize) {
        let buf = Arc::new(buf);
        // A receiver only goes away if its thread died: `finish` (or the
        // writer's result) says so.
        if let Some(w) = &self.writer {
            let _ = w.send((buf.clone(), from));
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send((buf, from));
        }
    }

    fn send_copied(&mut self) {
        if !self.copied.is_empty() {
            let spare = self.spare().unwrap_or_default();
            let full = std::mem::replace(&mut self.copied, spare);
            self.send(full, 0);
        }
    }

    /// Hash `data` (after everything given before), by copying it.
    pub(super) fn update(&mut self, mut data: &[u8]) {
        self.size += data.len() as u64;
        while !data.is_empty() {
            if self.copied.capacity() < COPY_CHUNK {
                self.copied.reserve_exact(COPY_CHUNK - self.copied.len());
            }
            let n = data.len().min(COPY_CHUNK - self.copied.len());
            self.copied.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.copied.len() >= COPY_CHUNK {
                self.send_copied();
            }
        }
    }

    /// Hash `buf[from..]` (after everything given before): the buffer
    /// itself goes to the thread when that is worth it, else its bytes are
    /// copied. Returns an empty buffer to produce into next (`buf` emptied,
    /// or one the thread is done with).
    pub(super) fn give(&mut self, mut buf: Vec<u8>, from: usize) -> Vec<u8> {
        let n = buf.len() - from;
        if buf.capacity() > GIVE_MAX {
            // Copied, and not kept: produced into again, it would be
            // copied at every turn.
            self.update(&buf[from..]);
            return self
                .spare()
                .unwrap_or_else(|| Vec::with_capacity(super::CHUNK));
        }
        if n < GIVE_MIN {
            self.update(&buf[from..]);
            buf.clear();
            return buf;
        }
        self.send_copied();
        self.size += n as u64;
        let cap = buf.capacity();
        self.send(buf, from);
        self.spare().unwrap_or_else(|| Vec::with_capacity(cap))
    }

    /// A buffer the thread is done with, if one is back.
    fn spare(&mut self) -> Option<Vec<u8>> {
        self.back.try_recv().ok()
    }

    /// The size and SHA-256 of everything given.
    pub(super) fn finish(mut self) -> Hashed {
        self.send_copied();
        self.tx = None;
        let sha = self
            .handle
            .take()
            .expect("finished once")
            .join()
            .expect("the hashing thread panicked");
        Hashed {
            size: self.size,
            md5: None,
            sha256: Some(sha),
        }
    }
}

impl Drop for OutHash {
    fn drop(&mut self) {
        // Closing the channel ends the thread; nobody waits for it.
        self.tx = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any mix of copies and whole buffers, of any sizes, hashes the
    /// stream as one SHA-256 of its bytes in order, and the writer writes
    /// exactly those bytes in that order.
    #[test]
    fn gives_and_copies_hash_and_write_the_stream_in_order() {
        let data: Vec<u8> = (0..9_000_000u32).map(|i| (i * 131 % 251) as u8).collect();
        let mut h = OutHash::spawn().unwrap();
        let feed = h.writer();
        let writer = thread::spawn(move || {
            let mut out = Vec::new();
            feed.run(&mut out).map(|()| out)
        });
        let mut at = 0;
        let mut k = 0usize;
        let sizes = [1, 700, GIVE_MIN - 1, GIVE_MIN, 300_000, 1 << 20, 3 << 20, 5];
        while at < data.len() {
            let n = sizes[k % sizes.len()].min(data.len() - at);
            let piece = &data[at..at + n];
            match k % 3 {
                0 => h.update(piece),
                // A buffer with some bytes before `from` that are not
                // part of the stream here.
                _ => {
                    let skip = k % 5;
                    let mut buf = Vec::with_capacity(skip + n);
                    buf.extend(std::iter::repeat_n(0xee, skip));
                    buf.extend_from_slice(piece);
                    let next = h.give(buf, skip);
                    assert!(next.is_empty());
                }
            }
            at += n;
            k += 1;
        }
        assert!(!h.write_failed());
        let got = h.finish();
        assert_eq!(got.size, data.len() as u64);
        assert_eq!(got.sha256, Some(Sha256::digest(&data)));
        let written = writer.join().unwrap().unwrap();
        assert!(written == data, "the writer wrote other bytes");
    }

    /// Takes 100 bytes, then fails.
    struct Full(usize);

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.0 >= 100 {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "full"));
            }
            let n = buf.len().min(100 - self.0);
            self.0 += n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A writer that fails says so, keeps taking buffers (the applier
    /// never waits on it) and returns its error at the end; the digest is
    /// still of everything given.
    #[test]
    fn a_failed_writer_says_so_and_never_blocks_the_stream() {
        let mut h = OutHash::spawn().unwrap();
        let feed = h.writer();
        let writer = thread::spawn(move || feed.run(&mut Full(0)));
        let buf = vec![7u8; 1 << 20];
        let mut all = 0u64;
        for _ in 0..64 {
            let next = h.give(buf.clone(), 0);
            drop(next);
            all += buf.len() as u64;
        }
        let got = h.finish();
        assert_eq!(got.size, all);
        let e = writer.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
    }
}
