//! `sysup history [--root DIR] [--json]`: the audit log of every apply,
//! repair, rollback and clean.

use std::path::PathBuf;

use crate::host::history;
use crate::host::state::State;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> crate::Result<()> {
    let state = State::open(&a.root)?;
    let log = history::read(&state.history_path())?;
    if a.json {
        return super::print_json(&serde_json::json!({
            "events": log.events,
            "damaged_lines": log.damaged,
        }));
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
            match (&e.error, &e.warning) {
                (Some(m), _) => format!("{}: {m}", e.result),
                (None, Some(w)) => format!("{} ({w})", e.result),
                (None, None) => e.result.clone(),
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
