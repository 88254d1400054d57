//! MD5 + SHA-256 on a thread of their own, for the applier.
//!
//! Applying a patch hashes every input byte and every output byte: four
//! passes of MD5 and SHA-256 over two tars, which was three quarters of
//! `sysup patch`'s CPU on the bench pair. A [`BackgroundHasher`] takes copies
//! of the bytes in 1 MiB chunks through a bounded channel and hashes them on
//! its own thread, so the input's hashing, the output's and the patching
//! itself run side by side.
//!
//! Invariant: the digests are those of exactly the bytes passed to
//! [`BackgroundHasher::update`], in order; memory is bounded by the channel
//! (a few chunks), whatever the stream's size.

use std::sync::mpsc;
use std::thread;

use crate::digest::{Digests, Hasher};

const CHUNK: usize = 1 << 20;
const IN_FLIGHT: usize = 4;

/// Hashes what it is given on another thread.
pub struct BackgroundHasher {
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    buf: Vec<u8>,
    size: u64,
    worker: Option<thread::JoinHandle<Hasher>>,
}

impl BackgroundHasher {
    pub fn new() -> BackgroundHasher {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
        let worker = thread::Builder::new()
            .name("sysup-hash".into())
            .spawn(move || {
                let mut h = Hasher::new();
                for chunk in rx {
                    h.update(&chunk);
                }
                h
            })
            .expect("spawn a hashing thread");
        BackgroundHasher {
            tx: Some(tx),
            buf: Vec::with_capacity(CHUNK),
            size: 0,
            worker: Some(worker),
        }
    }

    /// Hash `data` (after everything given before).
    pub fn update(&mut self, mut data: &[u8]) {
        self.size += data.len() as u64;
        while !data.is_empty() {
            let n = data.len().min(CHUNK - self.buf.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == CHUNK {
                self.send();
            }
        }
    }

    fn send(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        if let Some(tx) = &self.tx {
            // The receiver only goes away if the thread died; finish() says so.
            let _ = tx.send(chunk);
        }
    }

    /// Bytes given so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digests of everything given.
    pub fn finish(mut self) -> Digests {
        self.send();
        self.tx = None;
        let h = self
            .worker
            .take()
            .expect("finished once")
            .join()
            .expect("the hashing thread panicked");
        let d = h.finish();
        debug_assert_eq!(d.size, self.size);
        d
    }
}

impl Default for BackgroundHasher {
    fn default() -> Self {
        BackgroundHasher::new()
    }
}

impl Drop for BackgroundHasher {
    fn drop(&mut self) {
        // Closing the channel ends the thread; nobody waits for it.
        self.tx = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_a_one_shot_hash_in_any_chunking() {
        let data: Vec<u8> = (0..3_500_000u32).map(|i| (i * 31 % 253) as u8).collect();
        for step in [1usize, 1000, CHUNK - 1, CHUNK, CHUNK + 7, data.len()] {
            let mut h = BackgroundHasher::new();
            for c in data
                .chunks(step.max(1))
                .take(if step == 1 { 5000 } else { usize::MAX })
            {
                h.update(c);
            }
            let n = h.size() as usize;
            assert_eq!(h.finish(), Digests::of(&data[..n]), "step {step}");
        }
    }
}
