//! Parallel diff tasks under a memory budget, with results taken in order.
//!
//! Worker threads run tasks; the caller (the patch writer) takes results in
//! task order. Before a task starts, its estimated peak memory is taken from a
//! shared budget. When it finishes, all of that goes back but what its result
//! holds (a task's working memory — the suffix array, the old and new bytes —
//! is gone by then, its delta is a fraction of it); the rest goes back when
//! the caller takes the result. Tasks
//! *acquire in task order* (a ticket), so the oldest unwritten task always
//! holds its share: the writer can always make progress and the budget can
//! never fill up with finished results waiting behind a task that cannot
//! start. A task costing more than the whole budget runs alone.
//!
//! (Plain threads rather than rayon: the work is a few long, memory-heavy
//! tasks whose admission must block on a budget, which rayon's work stealing
//! neither models nor tolerates in its workers.)
//!
//! Invariants: the costs of running tasks plus the memory of finished,
//! untaken results never exceed the budget (except a lone oversized task);
//! when the caller stops early (an error), dropping the [`Ordered`] handle
//! makes every worker exit.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread::Scope;

struct Shared<O> {
    avail: u64,
    next_ticket: usize,
    /// Finished results, with the share of the budget each still holds.
    done: BTreeMap<usize, (O, u64)>,
    abort: bool,
    /// A worker panicked (a bug): the taker re-raises it instead of waiting forever.
    panicked: bool,
}

/// Results of tasks running on worker threads, taken in order.
pub struct Ordered<'a, O> {
    slots: &'a Slots<O>,
}

/// The state an [`Ordered`] runs on (the budget, each task's cost, finished
/// results); created outside the thread scope.
pub struct Slots<O> {
    inner: (Mutex<Shared<O>>, Condvar),
    next: AtomicUsize,
    /// Each task's cost, capped at the budget.
    costs: Vec<u64>,
    /// Memory a finished result holds until it is taken.
    held: fn(&O) -> u64,
}

impl<O> Slots<O> {
    /// A budget for tasks of the given costs, whose results hold `held` bytes.
    pub fn new(budget: u64, costs: impl IntoIterator<Item = u64>, held: fn(&O) -> u64) -> Self {
        Slots {
            inner: (
                Mutex::new(Shared {
                    avail: budget,
                    next_ticket: 0,
                    done: BTreeMap::new(),
                    abort: false,
                    panicked: false,
                }),
                Condvar::new(),
            ),
            next: AtomicUsize::new(0),
            costs: costs.into_iter().map(|c| c.min(budget)).collect(),
            held,
        }
    }
}

impl<'a, O: Send + 'a> Ordered<'a, O> {
    /// Start `threads` workers in `scope` running `work` over `tasks`
    /// (`slots` holds one cost per task).
    pub fn start<'s, 'env: 's, T: Sync + 'env>(
        scope: &'s Scope<'s, 'env>,
        slots: &'env Slots<O>,
        tasks: &'env [T],
        threads: usize,
        work: &'env (impl Fn(&T) -> O + Sync),
    ) -> Ordered<'env, O>
    where
        O: 'env,
    {
        assert_eq!(slots.costs.len(), tasks.len(), "one cost per task");
        for _ in 0..threads.max(1) {
            scope.spawn(move || worker(slots, tasks, work));
        }
        Ordered { slots }
    }

    /// Block until task `t` is done and return its result; its budget share
    /// is released. Tasks must be taken in order.
    pub fn take(&self, t: usize) -> O {
        let (m, cv) = &self.slots.inner;
        let mut s = m.lock().unwrap();
        loop {
            if let Some((o, held)) = s.done.remove(&t) {
                s.avail += held;
                cv.notify_all();
                return o;
            }
            if s.panicked {
                panic!("a diff worker panicked");
            }
            s = cv.wait(s).unwrap();
        }
    }
}

impl<O> Drop for Ordered<'_, O> {
    fn drop(&mut self) {
        let (m, cv) = &self.slots.inner;
        if let Ok(mut s) = m.lock() {
            s.abort = true;
        }
        cv.notify_all();
    }
}

fn worker<T, O>(slots: &Slots<O>, tasks: &[T], work: &(impl Fn(&T) -> O + Sync)) {
    let (m, cv) = &slots.inner;
    let costs = &slots.costs;
    loop {
        let t = slots.next.fetch_add(1, Ordering::SeqCst);
        if t >= tasks.len() {
            return;
        }
        {
            let mut s = m.lock().unwrap();
            let ready = |s: &Shared<O>| s.abort || (s.next_ticket == t && s.avail >= costs[t]);
            while !ready(&s) {
                s = cv.wait(s).unwrap();
            }
            if s.abort {
                return;
            }
            s.avail -= costs[t];
            s.next_ticket += 1;
            cv.notify_all();
        }
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&tasks[t])));
        let mut s = m.lock().unwrap();
        match out {
            Ok(o) => {
                let held = (slots.held)(&o).min(costs[t]);
                s.avail += costs[t] - held;
                s.done.insert(t, (o, held));
            }
            Err(_) => s.panicked = true,
        }
        cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn results_come_in_order_and_the_budget_holds() {
        let tasks: Vec<u64> = (0..200).map(|i| (i * 37 % 11) + 1).collect();
        let in_flight = AtomicU64::new(0);
        let peak = AtomicU64::new(0);
        let budget = 20;
        let work = |&c: &u64| {
            let now = in_flight.fetch_add(c, Ordering::SeqCst) + c;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_micros(200));
            in_flight.fetch_sub(c, Ordering::SeqCst);
            c * 2
        };
        let slots = Slots::new(budget, tasks.iter().copied(), |&o| o / 2);
        std::thread::scope(|s| {
            let o = Ordered::start(s, &slots, &tasks, 4, &work);
            for (t, &c) in tasks.iter().enumerate() {
                assert_eq!(o.take(t), c * 2);
            }
        });
        assert!(peak.load(Ordering::SeqCst) <= budget);
    }

    #[test]
    fn a_finished_task_gives_back_all_but_what_its_result_holds() {
        // Each task costs the whole budget; its result holds nothing, so
        // all three run before the caller takes the first.
        let tasks: Vec<u64> = vec![10, 10, 10];
        let ran = AtomicU64::new(0);
        let work = |&c: &u64| {
            ran.fetch_add(1, Ordering::SeqCst);
            c
        };
        let slots = Slots::new(10, tasks.iter().copied(), |_| 0);
        std::thread::scope(|s| {
            let o = Ordered::start(s, &slots, &tasks, 2, &work);
            let t0 = std::time::Instant::now();
            while ran.load(Ordering::SeqCst) < 3 {
                assert!(t0.elapsed().as_secs() < 30, "later tasks waited for a take");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            assert_eq!((o.take(0), o.take(1), o.take(2)), (10, 10, 10));
        });
    }

    #[test]
    fn a_result_keeps_its_share_until_taken() {
        // The first result holds 6 of 10: the second task (6) must wait for
        // the take.
        let tasks: Vec<u64> = vec![6, 6];
        let ran = AtomicU64::new(0);
        let work = |&c: &u64| {
            ran.fetch_add(1, Ordering::SeqCst);
            c
        };
        let slots = Slots::new(10, tasks.iter().copied(), |&o| o);
        std::thread::scope(|s| {
            let o = Ordered::start(s, &slots, &tasks, 2, &work);
            while ran.load(Ordering::SeqCst) < 1 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert_eq!(ran.load(Ordering::SeqCst), 1);
            assert_eq!(o.take(0), 6);
            assert_eq!(o.take(1), 6);
        });
    }

    #[test]
    fn dropping_early_stops_the_workers() {
        let tasks: Vec<u64> = vec![5; 100];
        let work = |&c: &u64| c;
        let slots = Slots::new(10, tasks.iter().copied(), |_| 0);
        std::thread::scope(|s| {
            let o = Ordered::start(s, &slots, &tasks, 2, &work);
            assert_eq!(o.take(0), 5);
            drop(o);
        });
    }

    #[test]
    fn an_oversized_task_runs_alone() {
        let tasks: Vec<u64> = vec![1, 100, 1];
        let work = |&c: &u64| c;
        let slots = Slots::new(10, tasks.iter().copied(), |_| 0);
        std::thread::scope(|s| {
            let o = Ordered::start(s, &slots, &tasks, 2, &work);
            assert_eq!((o.take(0), o.take(1), o.take(2)), (1, 100, 1));
        });
    }
}
