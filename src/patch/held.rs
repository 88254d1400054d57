//! Output held back behind re-gzipped members, for the applier: a
//! re-gzipped member ([`regz`](crate::format::patch::regz)) is deflated on a thread
//! of its own while the applier goes on producing the members after it, and
//! everything produced after it waits here, in order, until its bytes are
//! ready.
//!
//! On the bench pair the 513 man pages that change (their dates and
//! versions) come last in the tar, and deflating them again at level 9 was
//! the only work left for the last fifth of `sysup patch`: one core idle.
//! With one deflate thread that was still a tail of ~0.15 s at the end
//! (by `perf`): hashing and writing waited for it while the other
//! core had nothing to do. Members are independent, so one thread per CPU
//! (up to [`MAX_THREADS`]) deflates them, in turns.
//!
//! Invariants:
//! - pieces come out of [`Held::pop`] in exactly the order they went in,
//!   each rebuilt member's bytes at its place: job `k` goes to deflate
//!   thread `k % n`, each thread works its jobs in order, and results are
//!   taken from the threads in turn;
//! - memory is bounded: the caller stops producing when [`Held::full`] says
//!   so (at most [`MAX_JOBS`] members deflating, [`MAX_RAW`] inflated bytes
//!   waiting for the threads — for a re-encoded member, its bytes and its
//!   encoder's memory —, [`MAX_BYTES`] produced bytes held) and waits
//!   for the first job instead;
//! - dropping a `Held` ends the threads after their current jobs; nobody
//!   waits.

use std::collections::VecDeque;
use std::io;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;

use crate::format::patch::regz;

/// Most members deflating (or queued for the threads) at once.
pub const MAX_JOBS: usize = 16;
/// Most deflate threads (one per CPU up to this).
const MAX_THREADS: usize = 4;
/// Most inflated bytes handed to the threads and not yet taken back (one
/// more member, at most [`regz::MAX_RAW`], may be handed over past it).
pub const MAX_RAW: u64 = 8 << 20;
/// Most produced bytes held behind a deflating member. With [`MAX_RAW`],
/// this bounds what holding adds to the applier's memory at ~20 MiB.
pub const MAX_BYTES: u64 = 8 << 20;

/// What a deflate thread is asked to do: [`regz::rebuild`]'s arguments,
/// or another compression ([`recode`](crate::format::patch::recode)).
enum Job {
    Gzip {
        header: Vec<u8>,
        raw: Vec<u8>,
        level: u8,
    },
    Encode(Box<dyn FnOnce() -> Rebuilt + Send>),
}

enum Piece {
    Bytes(Vec<u8>),
    /// New member `member`'s data, `len` bytes once deflated (as the patch
    /// says), from `raw` inflated bytes.
    Rebuilt {
        member: u32,
        len: u64,
        raw: u64,
    },
}

/// A piece whose bytes are known.
pub enum Popped {
    Bytes(Vec<u8>),
    /// New member `member`'s data as a deflate thread made it; the caller
    /// checks that it is the `len` bytes the patch says.
    Rebuilt {
        member: u32,
        len: u64,
        bytes: io::Result<Vec<u8>>,
    },
}

/// What a deflate thread sends back: the member's gzip bytes.
type Rebuilt = io::Result<Vec<u8>>;

/// The deflate threads, started at the first re-gzipped member. Job `k`
/// goes to thread `k % n` and its result is taken from that thread's
/// channel, so results come back in job order however long each takes.
struct Deflater {
    workers: Vec<(SyncSender<Job>, Receiver<Rebuilt>)>,
    /// Jobs sent and results taken so far.
    sent: usize,
    taken: usize,
}

impl Deflater {
    /// One thread per CPU, up to [`MAX_THREADS`].
    fn per_cpu() -> io::Result<Deflater> {
        Deflater::spawn(thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS)))
    }

    fn spawn(n: usize) -> io::Result<Deflater> {
        let mut workers = Vec::with_capacity(n);
        for _ in 0..n {
            let (jobs, rx) = mpsc::sync_channel::<Job>(MAX_JOBS);
            let (tx, done) = mpsc::sync_channel(MAX_JOBS);
            thread::Builder::new()
                .name("sysup-regz".into())
                .spawn(move || {
                    for j in rx {
                        let r = match j {
                            Job::Gzip { header, raw, level } => regz::rebuild(&header, &raw, level),
                            Job::Encode(f) => f(),
                        };
                        if tx.send(r).is_err() {
                            return; // the applier went away
                        }
                    }
                })?;
            workers.push((jobs, done));
        }
        Ok(Deflater {
            workers,
            sent: 0,
            taken: 0,
        })
    }

    fn send(&mut self, job: Job) -> io::Result<()> {
        let (jobs, _) = &self.workers[self.sent % self.workers.len()];
        jobs.send(job)
            .map_err(|_| io::Error::other("the deflate thread stopped"))?;
        self.sent += 1;
        Ok(())
    }

    /// The next job's result, `None` if `wait` is false and it is not ready.
    fn recv(&mut self, wait: bool) -> Option<Rebuilt> {
        let (_, done) = &self.workers[self.taken % self.workers.len()];
        let stopped = || Err(io::Error::other("the deflate thread stopped"));
        let r = if wait {
            done.recv().unwrap_or_else(|_| stopped())
        } else {
            match done.try_recv() {
                Ok(r) => r,
                Err(mpsc::TryRecvError::Empty) => return None,
                Err(mpsc::TryRecvError::Disconnected) => stopped(),
            }
        };
        self.taken += 1;
        Some(r)
    }
}

/// See the module documentation.
#[derive(Default)]
pub struct Held {
    pieces: VecDeque<Piece>,
    bytes: u64,
    jobs: usize,
    raw: u64,
    deflater: Option<Deflater>,
}

impl Held {
    /// Nothing is held: output can go straight out.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// The caller must wait for the first job before producing more.
    pub fn full(&self) -> bool {
        self.jobs >= MAX_JOBS || self.raw >= MAX_RAW || self.bytes >= MAX_BYTES
    }

    /// Hold `bytes`, which come after everything held so far.
    pub fn push_bytes(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.bytes += bytes.len() as u64;
            self.pieces.push_back(Piece::Bytes(bytes));
        }
    }

    /// Deflate new member `member` again (gzip `header`, then `raw`
    /// deflated at `level`, which the patch says makes `len` bytes) on the
    /// deflate threads; its bytes come after everything held so far.
    pub fn push_rebuild(
        &mut self,
        member: u32,
        len: u64,
        header: Vec<u8>,
        raw: Vec<u8>,
        level: u8,
    ) -> io::Result<()> {
        let n = raw.len() as u64;
        self.push_job(member, len, n, Job::Gzip { header, raw, level })
    }

    /// Like [`Self::push_rebuild`] for a member `encode` makes (from
    /// uncompressed bytes it holds); `cost` counts against [`MAX_RAW`] as
    /// inflated bytes do: those bytes and the encoder's working memory.
    pub fn push_encode(
        &mut self,
        member: u32,
        len: u64,
        cost: u64,
        encode: Box<dyn FnOnce() -> io::Result<Vec<u8>> + Send>,
    ) -> io::Result<()> {
        self.push_job(member, len, cost, Job::Encode(encode))
    }

    fn push_job(&mut self, member: u32, len: u64, n: u64, job: Job) -> io::Result<()> {
        if self.deflater.is_none() {
            self.deflater = Some(Deflater::per_cpu()?);
        }
        let d = self.deflater.as_mut().expect("started above");
        d.send(job)?;
        self.jobs += 1;
        self.raw += n;
        self.pieces.push_back(Piece::Rebuilt {
            member,
            len,
            raw: n,
        });
        Ok(())
    }

    /// The first held piece, if its bytes are known; with `wait`, waits for
    /// them.
    pub fn pop(&mut self, wait: bool) -> Option<Popped> {
        match self.pieces.front()? {
            Piece::Bytes(_) => {
                let Some(Piece::Bytes(b)) = self.pieces.pop_front() else {
                    unreachable!("the front is bytes")
                };
                self.bytes -= b.len() as u64;
                Some(Popped::Bytes(b))
            }
            &Piece::Rebuilt { member, len, raw } => {
                let d = self.deflater.as_mut().expect("a job was sent");
                let bytes = d.recv(wait)?;
                self.pieces.pop_front();
                self.jobs -= 1;
                self.raw -= raw;
                Some(Popped::Rebuilt { member, len, bytes })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(seed: u32, n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| b"the quick brown fox "[(i * 7 + seed as usize) % 20])
            .collect()
    }

    /// In order with one deflate thread, with one per CPU, and with three,
    /// where a member three times smaller than the one before it on another
    /// thread is done first.
    #[test]
    fn pieces_come_out_in_order_with_members_rebuilt() {
        for threads in [Some(1), None, Some(3)] {
            in_order(threads);
        }
    }

    fn in_order(threads: Option<usize>) {
        let mut h = Held::default();
        assert!(h.is_empty() && h.pop(true).is_none());
        if let Some(n) = threads {
            h.deflater = Some(Deflater::spawn(n).unwrap());
        }
        let mut want = Vec::new();
        for m in 0..40u32 {
            h.push_bytes(vec![m as u8; m as usize * 3]);
            let big = if m % 3 == 0 { 200_000 } else { 0 };
            let raw = text(m, 5_000 + m as usize * 1_000 + big);
            h.push_rebuild(m, 0, regz::GZIP_9N_HEADER.to_vec(), raw.clone(), 9)
                .unwrap();
            want.push((m, regz::rebuild(&regz::GZIP_9N_HEADER, &raw, 9).unwrap()));
            // Drain now and then, waiting or not, as the applier does.
            if m % 7 == 6 || h.full() {
                while let Some(p) = h.pop(m % 2 == 0) {
                    match p {
                        // The bytes pushed before member m are all m.
                        Popped::Bytes(b) => assert!(b.iter().all(|&x| x == want[0].0 as u8)),
                        Popped::Rebuilt { member, bytes, .. } => {
                            let (wm, wb) = want.remove(0);
                            assert_eq!((member, bytes.unwrap()), (wm, wb));
                        }
                    }
                }
            }
        }
        while let Some(p) = h.pop(true) {
            if let Popped::Rebuilt { member, bytes, .. } = p {
                let (wm, wb) = want.remove(0);
                assert_eq!((member, bytes.unwrap()), (wm, wb));
            }
        }
        assert!(want.is_empty() && h.is_empty(), "{threads:?}");
        assert_eq!((h.jobs, h.raw, h.bytes), (0, 0, 0));
    }

    #[test]
    fn full_counts_jobs_and_bytes() {
        let mut h = Held::default();
        h.push_bytes(vec![1; MAX_BYTES as usize]);
        assert!(h.full());
        assert!(matches!(h.pop(false), Some(Popped::Bytes(_))));
        assert!(!h.full());
        for m in 0..MAX_JOBS as u32 {
            assert!(!h.full());
            h.push_rebuild(m, 0, regz::GZIP_9N_HEADER.to_vec(), text(m, 100), 9)
                .unwrap();
        }
        assert!(h.full());
        assert!(h.pop(true).is_some());
        assert!(!h.full());
    }
}
