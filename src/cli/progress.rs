//! How the command line talks to a person: progress bars on stderr for long
//! steps, and `--quiet`. The library reports steps through
//! [`sysup::util::progress::Progress`]; only this file knows indicatif.
//!
//! Invariants:
//! - bars are drawn on stderr only, and only when stderr is a terminal and
//!   `--quiet` is not given: stdout (one JSON document with `--json`, or the
//!   human report) never holds a bar, and a pipe or a log file never holds
//!   escape codes;
//! - one drawing thread polls the shared counters every [`TICK`] and
//!   redraws; the library's hot loops only add to an atomic counter;
//! - the bars are cleared before [`Ui::with_progress`] returns, so what the
//!   command prints afterwards starts on a clean line.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use sysup::util::progress::{Progress, Snapshot, Unit};

/// How often the drawing thread looks at the counters.
const TICK: Duration = Duration::from_millis(80);

/// The output settings of one run of `sysup`.
#[derive(Clone, Copy, Debug)]
pub struct Ui {
    /// `--quiet`: no bars, and only the essential human output.
    pub quiet: bool,
    bars: bool,
}

impl Ui {
    /// Settings for this process: bars when stderr is a terminal and not quiet.
    pub fn new(quiet: bool) -> Ui {
        Ui {
            quiet,
            bars: !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// Run `f` with a [`Progress`] that is drawn on stderr while `f` runs
    /// (a disabled one when bars are off); the bars are gone when it returns.
    pub fn with_progress<T>(&self, f: impl FnOnce(&Progress) -> T) -> T {
        if !self.bars {
            return f(&Progress::disabled());
        }
        let p = Progress::enabled();
        let _drawer = Drawer::start(p.clone());
        f(&p)
    }
}

/// The drawing thread; stopped and joined on drop.
struct Drawer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drawer {
    fn start(p: Progress) -> Drawer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sysup-progress".into())
            .spawn(move || draw(&p, &flag))
            .ok();
        Drawer { stop, thread }
    }
}

impl Drop for Drawer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

fn draw(p: &Progress, stop: &AtomicBool) {
    let mut generation = 0;
    let mut bar: Option<ProgressBar> = None;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if stopping {
            break;
        }
        if let Some(s) = p.snapshot() {
            if s.generation != generation {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                generation = s.generation;
                bar = new_bar(&s);
            }
            if let Some(b) = &bar {
                b.set_position(s.pos);
                if s.total.is_none() {
                    b.tick();
                }
            }
        }
        std::thread::park_timeout(TICK);
    }
    if let Some(b) = bar.take() {
        b.finish_and_clear();
    }
}

/// A bar (known total) or a spinner (unknown total) for a step.
fn new_bar(s: &Snapshot) -> Option<ProgressBar> {
    let label = s.label.as_deref()?;
    let template = match (s.unit, s.total) {
        // wide_bar takes what the terminal has left, so a line never wraps
        (Unit::Bytes, Some(_)) => {
            "{msg} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}"
        }
        (Unit::Items, Some(_)) => "{msg} [{wide_bar}] {pos}/{len} {eta}",
        (Unit::Bytes, None) => "{spinner} {msg} {bytes} {elapsed}",
        (Unit::Items, None) => "{spinner} {msg} {elapsed}",
    };
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let b = ProgressBar::with_draw_target(s.total, ProgressDrawTarget::stderr())
        .with_style(style)
        .with_message(label.to_string());
    b.set_position(s.pos);
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_bars_the_progress_is_disabled() {
        let ui = Ui {
            quiet: false,
            bars: false,
        };
        assert!(!ui.with_progress(|p| p.is_enabled()));
        assert!(!Ui::new(true).bars, "--quiet never draws");
    }
}
