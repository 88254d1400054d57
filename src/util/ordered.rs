//! Work done on a pool of threads and taken back in the order it was
//! handed in: the engine of both gzip writers (a dist's primed chunks, a
//! base's members), which compress on every core but must write in order.
//!
//! Invariants:
//! - results come back in submission order, each exactly once;
//! - a worker's state is made on its own thread and kept for its life;
//! - a job that panics comes back as an error (the pool's user fails
//!   cleanly, nothing waits for a result that will never come), and that
//!   worker ends;
//! - dropping the pool closes its queue: idle workers end at once, a busy
//!   one after its job, and results not taken are dropped.

use std::collections::BTreeMap;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

/// A job's result, or the message of the panic it raised.
type Outcome<O> = Result<O, String>;

/// See the module documentation.
pub struct Ordered<J, O> {
    jobs: Option<Sender<(u64, J)>>,
    done: Receiver<(u64, Outcome<O>)>,
    workers: Vec<JoinHandle<()>>,
    submitted: u64,
    taken: u64,
    /// Results that came back before the one next in order.
    early: BTreeMap<u64, Outcome<O>>,
}

impl<J: Send + 'static, O: Send + 'static> Ordered<J, O> {
    /// `threads` workers (at least one), named `name`; each makes its state
    /// with `init` on its own thread, then maps every job it takes with
    /// `work`. A thread the system will not start is left out: with none,
    /// the first [`submit`](Self::submit) fails.
    pub fn new<S, I, F>(name: &str, threads: usize, init: I, work: F) -> Self
    where
        I: Fn() -> S + Send + Sync + 'static,
        F: Fn(&mut S, J) -> O + Send + Sync + 'static,
    {
        let (job_tx, job_rx) = mpsc::channel::<(u64, J)>();
        let (done_tx, done_rx) = mpsc::channel();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (init, work) = (Arc::new(init), Arc::new(work));
        let workers = (0..threads.max(1))
            .filter_map(|_| {
                let (rx, tx) = (job_rx.clone(), done_tx.clone());
                let (init, work) = (init.clone(), work.clone());
                thread::Builder::new()
                    .name(name.into())
                    .spawn(move || serve(&rx, &tx, &*init, &*work))
                    .ok()
            })
            .collect();
        Ordered {
            jobs: Some(job_tx),
            done: done_rx,
            workers,
            submitted: 0,
            taken: 0,
            early: BTreeMap::new(),
        }
    }

    /// Hand `job` to the next free worker.
    pub fn submit(&mut self, job: J) -> io::Result<()> {
        self.jobs
            .as_ref()
            .and_then(|tx| tx.send((self.submitted, job)).ok())
            .ok_or_else(|| io::Error::other("the worker threads stopped"))?;
        self.submitted += 1;
        Ok(())
    }

    /// Jobs handed in so far.
    pub fn submitted(&self) -> u64 {
        self.submitted
    }

    /// Jobs handed in whose results were not taken yet.
    pub fn in_flight(&self) -> u64 {
        self.submitted - self.taken
    }

    /// The result of the oldest job not taken yet, waiting for it; `None`
    /// when every result was taken.
    pub fn take(&mut self) -> io::Result<Option<O>> {
        if self.in_flight() == 0 {
            return Ok(None);
        }
        let outcome = loop {
            if let Some(o) = self.early.remove(&self.taken) {
                break o;
            }
            let (seq, o) = self
                .done
                .recv()
                .map_err(|_| io::Error::other("the worker threads stopped"))?;
            self.early.insert(seq, o);
        };
        self.taken += 1;
        outcome.map(Some).map_err(io::Error::other)
    }

    /// Close the queue and wait for the workers to end (results not taken
    /// are dropped).
    pub fn close(mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl<J, O> Drop for Ordered<J, O> {
    fn drop(&mut self) {
        // Closing the queue ends idle workers; a busy one ends at its next
        // receive (its send may still succeed: the results are dropped).
        self.jobs = None;
    }
}

/// A worker: take jobs until the queue closes or the pool is gone.
fn serve<J, O, S>(
    jobs: &Mutex<Receiver<(u64, J)>>,
    done: &Sender<(u64, Outcome<O>)>,
    init: &dyn Fn() -> S,
    work: &dyn Fn(&mut S, J) -> O,
) {
    let mut state = None;
    loop {
        let (seq, job) = {
            let Ok(rx) = jobs.lock() else { return };
            match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            work(state.get_or_insert_with(init), job)
        }))
        .map_err(|p| {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            format!("a worker thread failed: {what}")
        });
        let failed = outcome.is_err();
        if done.send((seq, outcome)).is_err() || failed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn results_come_back_in_order_whatever_order_they_finish_in() {
        let mut pool = Ordered::new(
            "test-ordered",
            3,
            || 0u64,
            |made: &mut u64, n: u64| {
                *made += 1;
                // later jobs often finish first
                thread::sleep(Duration::from_micros((50 - n % 50) * 20));
                (n, *made)
            },
        );
        let mut got = Vec::new();
        for n in 0..200 {
            pool.submit(n).unwrap();
            if pool.in_flight() > 7 {
                got.push(pool.take().unwrap().unwrap());
            }
        }
        while let Some(r) = pool.take().unwrap() {
            got.push(r);
        }
        assert_eq!(
            got.iter().map(|r| r.0).collect::<Vec<_>>(),
            (0..200).collect::<Vec<_>>()
        );
        // each worker kept its own state: its counts add up to the jobs
        assert!(got.iter().all(|r| r.1 >= 1 && r.1 <= 200));
        assert_eq!(pool.take().unwrap(), None);
        pool.close();
    }

    #[test]
    fn a_job_that_panics_is_an_error_not_a_wait() {
        let mut pool = Ordered::new(
            "test-ordered",
            2,
            || (),
            |_: &mut (), n: u32| {
                assert!(n != 3, "job three is bad");
                n
            },
        );
        for n in 0..6 {
            pool.submit(n).unwrap();
        }
        for n in 0..3 {
            assert_eq!(pool.take().unwrap(), Some(n));
        }
        let e = pool.take().unwrap_err();
        assert!(e.to_string().contains("job three is bad"), "{e}");
    }

    #[test]
    fn dropping_the_pool_with_results_untaken_ends_it() {
        let mut pool = Ordered::new("test-ordered", 2, || (), |_: &mut (), n: u32| n);
        for n in 0..100 {
            pool.submit(n).unwrap();
        }
        drop(pool); // must not hang or panic
    }
}
