//! `sysup history [--root DIR] [--json]`: the audit log of every apply,
//! repair, rollback, clean and config resolve (whose row names the file it
//! settled and what it took, as `--json`'s `resolved` does).

use sysup::host::history;
use sysup::host::pending::pending;
use sysup::host::state::State;

/// `--root DIR --json`: all the command takes.
pub use super::args::HostArgs as Args;

pub fn run(a: Args) -> sysup::Result<()> {
    // Reading never writes: a root without sysup's state has no history.
    let (log, pending) = match State::open_existing(&a.host.root)? {
        Some(state) => (history::read(&state)?, pending(&state, &a.host.root)?),
        None => (history::Log::default(), None),
    };
    if a.format.json {
        return super::print_json(&serde_json::json!({
            "pending": pending,
            "events": log.events,
            "damaged_lines": log.damaged,
        }));
    }
    // A pending apply first: it has no record yet.
    if let Some(p) = &pending {
        outln!("pending: {}", p.describe());
    }
    // One aligned row per record, oldest first, under a header.
    let mut rows = vec![[
        "time (UTC)",
        "user",
        "action",
        "from",
        "to",
        "changed",
        "removed",
        "result",
    ]
    .map(String::from)
    .to_vec()];
    for e in &log.events {
        rows.push(vec![
            super::utc_time(e.time),
            e.user.clone(),
            e.action.clone(),
            e.from.clone().unwrap_or_else(|| "-".into()),
            e.to.clone().unwrap_or_else(|| "-".into()),
            e.changed.to_string(),
            e.removed.to_string(),
            match (&e.error, &e.warning, &e.resolved) {
                (Some(m), _, _) => format!("{}: {m}", e.result),
                (None, Some(w), _) => format!("{} ({w})", e.result),
                (None, None, Some(r)) => format!("{} ({}: took {})", e.result, r.path, r.took),
                (None, None, None) => e.result.clone(),
            },
        ]);
    }
    if log.events.is_empty() {
        outln!("no history yet");
    } else {
        let right = [false, false, false, false, false, true, true, false];
        for line in super::table(&rows, &right) {
            outln!("{line}");
        }
    }
    if log.damaged > 0 {
        outln!(
            "({} damaged line(s) skipped: torn by a crash mid-append)",
            log.damaged
        );
    }
    Ok(())
}
