//! `sysup rollback [--root DIR] [NAME] [--to ID]`: back to a kept previous
//! base — a full apply of it, whose MANIFEST becomes the truth (files added
//! since are removed, config files handled as in apply). Run again after a
//! crash, it finishes that rollback rather than going back one more step.

use std::path::PathBuf;

use sysup::error::Error;
use sysup::format::name::{DistId, DistName};
use sysup::host::apply::{apply, ApplyOptions};
use sysup::host::history;
use sysup::host::journal::Journal;
use sysup::host::state::State;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The root to act on (default: this system).
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Dist name (default: world).
    pub name: Option<String>,
    /// The kept id to go back to (default: the newest kept one older than the installed).
    #[arg(long)]
    pub to: Option<String>,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Kept bases per dist name after the rollback.
    #[arg(long)]
    pub keep: Option<usize>,
}

/// The target when this is a rollback run again after a crash killed it past
/// its commit point: its apply of a kept base is pending, and running it
/// again finishes that one rather than going back a further step. Read-only.
fn pending(state: &State, name: &DistName) -> sysup::Result<Option<DistId>> {
    let Some(st) = Journal::load(state)? else {
        return Ok(None);
    };
    Ok(st
        .plan
        .map(|p| p.target)
        .filter(|t| &t.name == name && st.kept_base))
}

/// Why nothing older is kept, said fully: when the last record of `name` is
/// a rollback to what is installed, that rollback is done (a crash after it
/// finished looks like this too). Read-only.
fn nothing_older(state: &State, name: &DistName, installed: &DistId) -> Error {
    let done = history::read(state)
        .ok()
        .and_then(|log| {
            log.events
                .into_iter()
                .rev()
                .find(|e| e.name == name.to_string() && e.result == "ok")
        })
        .is_some_and(|e| {
            e.action == "rollback" && e.to.as_deref() == Some(installed.to_string().as_str())
        });
    let note = if done {
        // it may have been killed before removing a temporary of its own
        if let Err(e) = state
            .lock()
            .and_then(|lock| state.remove_stale_temps(&lock))
        {
            return e;
        }
        format!(" ({installed} is installed: the last rollback finished)")
    } else {
        String::new()
    };
    Error::Refused(format!(
        "no base older than {installed} is kept for {name}{note}"
    ))
}

pub fn run(a: Args, ui: &super::progress::Ui) -> sysup::Result<()> {
    let state = State::open(&a.root)?;
    let name: DistName = a.name.as_deref().unwrap_or("world").parse()?;
    let inst = state
        .installed(&name)?
        .ok_or_else(|| Error::Refused(format!("nothing is installed for {name}")))?;
    let kept = state.bases(&name)?;
    let target: DistId = match &a.to {
        Some(t) => {
            let id: DistId = t.parse()?;
            if !kept.iter().any(|k| k.id == id) {
                return Err(Error::Refused(format!(
                    "{id} is not kept in {}",
                    state.bases_dir().display()
                )));
            }
            id
        }
        None => match pending(&state, &name)? {
            Some(id) => id,
            None => kept
                .iter()
                .rev()
                .map(|k| &k.id)
                .find(|id| (id.date, &id.rev) < (inst.id.date, &inst.id.rev))
                .cloned()
                .ok_or_else(|| nothing_older(&state, &name, &inst.id))?,
        },
    };
    let r = ui.with_progress(|progress| {
        apply(&ApplyOptions {
            root: a.root,
            files: vec![state.base_path(&target)],
            keep: a.keep,
            action: Some("rollback".into()),
            progress: progress.clone(),
            ..Default::default()
        })
    })?;
    if a.json {
        return super::print_json(&r);
    }
    super::apply::print_report(&r, ui.quiet)
}
