//! What happens when the admin interrupts sysup (Ctrl-C's SIGINT, SIGTERM
//! from a service manager, SIGHUP from a closed terminal): the operation in
//! progress says where it stopped and how to go on, records itself in the
//! root's history, and sysup exits with 128 + the signal number, as a shell
//! reports a process killed by it.
//!
//! How: [`install`] blocks the three signals before any other thread exists
//! (threads inherit the mask; `std::process::Command` gives children an
//! empty one), and one thread takes them with `sigwait(2)`, so the handler is
//! ordinary code — no async-signal-safety limits. An interrupt is a crash
//! as far as the root is concerned: every phase of an apply is safe to stop
//! anywhere (docs/crash-safety.md), so nothing is rolled back here.
//!
//! Invariant: at most one handler is registered at a time ([`on_interrupt`]
//! replaces it; its guard clears it).

use std::sync::Mutex;

type Handler = Box<dyn Fn(&str) -> String + Send>;

/// The handler of the operation in progress: given the signal's name, it
/// records what it must and returns the line that tells the admin.
static HANDLER: Mutex<Option<Handler>> = Mutex::new(None);

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a plain sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

fn name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "SIGHUP",
    }
}

/// Take SIGINT, SIGTERM and SIGHUP on a thread of their own. Call once, at
/// the start of `main`, before any thread is spawned. A failure leaves the
/// default dispositions (the process dies without a word, as before).
pub fn install() {
    let set = signal_set();
    // SAFETY: pthread_sigmask on the calling thread with a valid set.
    if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("sysup-signals".into())
        .spawn(move || loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: sigwait with a valid set and out-pointer.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
            }
            let line = match HANDLER.lock() {
                Ok(h) => h.as_ref().map(|f| f(name(sig))),
                Err(_) => None,
            };
            use std::io::{IsTerminal, Write};
            let mut err = std::io::stderr().lock();
            // A progress bar may be half drawn on the terminal's last line.
            let lead = if std::io::stderr().is_terminal() {
                "\n"
            } else {
                ""
            };
            let _ = writeln!(
                err,
                "{lead}sysup: interrupted by {}{}",
                name(sig),
                line.map(|l| format!(": {l}")).unwrap_or_default()
            );
            std::process::exit(128 + sig);
        });
    if spawned.is_err() {
        // SAFETY: as above: back to the default behaviour.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    }
}

/// Clears the handler it registered when dropped.
pub struct Guard(());

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(mut h) = HANDLER.lock() {
            *h = None;
        }
    }
}

/// Register what an interrupt of the operation now in progress does and
/// says, until the guard is dropped.
pub fn on_interrupt(f: impl Fn(&str) -> String + Send + 'static) -> Guard {
    if let Ok(mut h) = HANDLER.lock() {
        *h = Some(Box::new(f));
    }
    Guard(())
}
