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
    for e in &log.events {
        let when = crate::name::Date::from_unix(e.time);
        let secs = e.time.rem_euclid(86_400);
        println!(
            "{when} {:02}:{:02}:{:02}  {:<8} {:<9} {:<26} → {:<26} {:>5} changed {:>4} removed  {}{}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            e.user,
            e.action,
            e.from.as_deref().unwrap_or("-"),
            e.to.as_deref().unwrap_or("-"),
            e.changed,
            e.removed,
            e.result,
            e.error.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
        );
    }
    if log.damaged > 0 {
        println!(
            "({} damaged line(s) skipped: torn by a crash mid-append)",
            log.damaged
        );
    }
    Ok(())
}
