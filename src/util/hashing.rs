//! Stream hashing on threads of their own, for the applier and `apply`.
//!
//! Applying a patch hashes every input byte (MD5 or SHA-256, whichever is
//! cheaper here: is this the base?) and
//! every output byte (SHA-256: is this the result?); installing a dist
//! hashes its tar with both. Done inline that was three quarters of
//! `sysup patch`'s CPU on the bench pair. A [`BackgroundHasher`] takes the
//! bytes in 1 MiB chunks and hands each chunk (shared, not copied) to one
//! thread per digest, so MD5, SHA-256 and the patching itself run side by
//! side on different cores.
//!
//! Invariants: the digests are those of exactly the bytes passed to
//! [`BackgroundHasher::update`], in order; memory is bounded by the channels
//! (a few chunks per digest), whatever the stream's size.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use md5::{Digest as _, Md5};

use crate::util::digest::{Digests, Sha256};

const CHUNK: usize = 1 << 20;
const IN_FLIGHT: usize = 4;

type Chunk = Arc<Vec<u8>>;

/// One digest computed on its own thread.
struct Worker<T> {
    tx: Option<mpsc::SyncSender<Chunk>>,
    handle: Option<thread::JoinHandle<T>>,
}

impl<T: Send + 'static> Worker<T> {
    fn spawn<S: Send + 'static>(
        name: &str,
        mut state: S,
        update: fn(&mut S, &[u8]),
        finish: fn(S) -> T,
    ) -> Worker<T> {
        let (tx, rx) = mpsc::sync_channel::<Chunk>(IN_FLIGHT);
        let handle = thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for chunk in rx {
                    update(&mut state, &chunk);
                }
                finish(state)
            })
            .expect("spawn a hashing thread");
        Worker {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    fn send(&self, chunk: &Chunk) {
        if let Some(tx) = &self.tx {
            // The receiver only goes away if the thread died; join says so.
            let _ = tx.send(Arc::clone(chunk));
        }
    }

    fn join(mut self) -> T {
        self.tx = None;
        self.handle
            .take()
            .expect("joined once")
            .join()
            .expect("a hashing thread panicked")
    }
}

impl<T> Drop for Worker<T> {
    fn drop(&mut self) {
        // Closing the channel ends the thread; nobody waits for it.
        self.tx = None;
    }
}

/// What a [`BackgroundHasher`] computed: the size, and the digests it was
/// asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hashed {
    pub size: u64,
    pub md5: Option<[u8; 16]>,
    pub sha256: Option<[u8; 32]>,
}

impl Hashed {
    /// All three, when both digests were computed.
    pub fn digests(&self) -> Option<Digests> {
        Some(Digests {
            size: self.size,
            md5: self.md5?,
            sha256: self.sha256?,
        })
    }

    /// The size and every computed digest equal `d`'s.
    pub fn matches(&self, d: &Digests) -> bool {
        self.size == d.size
            && self.md5.is_none_or(|m| m == d.md5)
            && self.sha256.is_none_or(|s| s == d.sha256)
    }
}

/// Hashes what it is given on other threads.
pub struct BackgroundHasher {
    buf: Vec<u8>,
    size: u64,
    md5: Option<Worker<[u8; 16]>>,
    sha: Option<Worker<[u8; 32]>>,
}

impl BackgroundHasher {
    /// MD5 and SHA-256, each on a thread of its own.
    pub fn new() -> BackgroundHasher {
        BackgroundHasher::with(true, true)
    }

    /// MD5 only: enough to tell one known stream from another (the base).
    pub fn md5_only() -> BackgroundHasher {
        BackgroundHasher::with(true, false)
    }

    /// One digest, whichever this CPU computes faster (SHA-256 where it is
    /// done in hardware, MD5 elsewhere): enough to tell whether a stream is
    /// one whose MD5 and SHA-256 are both known (a patch's base). On the
    /// bench machine this halves the CPU that checking the base costs.
    pub fn cheaper() -> BackgroundHasher {
        if crate::util::digest::sha256_in_hardware() {
            BackgroundHasher::sha256_only()
        } else {
            BackgroundHasher::md5_only()
        }
    }

    /// SHA-256 only: a stream checked against a digest it must match.
    pub fn sha256_only() -> BackgroundHasher {
        BackgroundHasher::with(false, true)
    }

    fn with(md5: bool, sha: bool) -> BackgroundHasher {
        BackgroundHasher {
            buf: Vec::with_capacity(CHUNK),
            size: 0,
            md5: md5.then(|| {
                Worker::spawn(
                    "sysup-md5",
                    Md5::new(),
                    |h, d| h.update(d),
                    |h| h.finalize().into(),
                )
            }),
            sha: sha.then(|| {
                Worker::spawn(
                    "sysup-sha256",
                    Sha256::new(),
                    Sha256::update,
                    Sha256::finalize,
                )
            }),
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
        let chunk = Arc::new(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        if let Some(m) = &self.md5 {
            m.send(&chunk);
        }
        if let Some(s) = &self.sha {
            s.send(&chunk);
        }
    }

    /// Bytes given so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digests of everything given.
    pub fn finish(mut self) -> Hashed {
        self.send();
        Hashed {
            size: self.size,
            md5: self.md5.map(Worker::join),
            sha256: self.sha.map(Worker::join),
        }
    }
}

impl Default for BackgroundHasher {
    fn default() -> Self {
        BackgroundHasher::new()
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
            let mut m = BackgroundHasher::md5_only();
            let mut s = BackgroundHasher::sha256_only();
            for c in data
                .chunks(step.max(1))
                .take(if step == 1 { 5000 } else { usize::MAX })
            {
                h.update(c);
                m.update(c);
                s.update(c);
            }
            let n = h.size() as usize;
            let want = Digests::of(&data[..n]);
            let got = h.finish();
            assert_eq!(got.digests(), Some(want), "step {step}");
            assert!(got.matches(&want));
            let md5 = m.finish();
            assert_eq!(
                (md5.size, md5.md5, md5.sha256),
                (want.size, Some(want.md5), None)
            );
            let sha = s.finish();
            assert_eq!(
                (sha.size, sha.md5, sha.sha256),
                (want.size, None, Some(want.sha256))
            );
            assert!(md5.matches(&want) && sha.matches(&want));
            let mut other = want;
            other.md5[0] ^= 1;
            assert!(!md5.matches(&other) && sha.matches(&other), "step {step}");
            other.sha256[0] ^= 1;
            assert!(!sha.matches(&other), "step {step}");
        }
    }

    #[test]
    fn the_cheaper_digest_is_one_of_the_two_and_catches_a_change() {
        let data: Vec<u8> = (0..2_500_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let want = Digests::of(&data);
        let mut h = BackgroundHasher::cheaper();
        h.update(&data);
        let got = h.finish();
        let sha = crate::util::digest::sha256_in_hardware();
        assert_eq!(got.sha256.is_some(), sha);
        assert_eq!(got.md5.is_some(), !sha);
        assert!(got.matches(&want));
        let mut other = want;
        other.md5[0] ^= 1;
        other.sha256[0] ^= 1;
        assert!(!got.matches(&other));
    }
}
