//! `sysup rollback`: back to a kept previous base — a full apply of it,
//! whose MANIFEST becomes the truth (files added since are removed, config
//! files handled as in apply).
//!
//! Invariants: the target is a base this host keeps — by default the newest
//! one older than the installed id; run again after a crash killed a
//! rollback past its commit point, it finishes that rollback (the pending
//! apply of a kept base) rather than going back one more step. Choosing the
//! target reads only; the apply is `sysup apply`'s, with its guarantees.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::format::name::{DistId, DistName};
use crate::host::apply::{apply, ApplyOptions, ApplyReport};
use crate::host::history;
use crate::host::journal::Journal;
use crate::host::state::State;
use crate::util::progress::Progress;

/// What to roll back.
#[derive(Clone, Debug, Default)]
pub struct RollbackOptions {
    pub root: PathBuf,
    /// The dist name (default: world).
    pub name: Option<DistName>,
    /// The kept id to go back to (default: the newest kept one older than
    /// the installed, or the one a crashed rollback was going to).
    pub to: Option<DistId>,
    /// Kept bases per dist name after the rollback.
    pub keep: Option<usize>,
}

/// Roll the root back (see the module doc); the apply reports to
/// `progress`. Returns the apply's report (action `rollback`).
pub fn rollback(opts: &RollbackOptions, progress: &Progress) -> Result<ApplyReport> {
    let state = State::open(&opts.root)?;
    let target = target(&state, opts)?;
    apply(&ApplyOptions {
        root: opts.root.clone(),
        files: vec![state.base_path(&target)],
        keep: opts.keep,
        action: Some("rollback".into()),
        progress: progress.clone(),
        ..Default::default()
    })
}

/// The id to go back to: `--to` when it is kept, else the pending target of
/// a crashed rollback, else the newest kept base older than the installed.
/// Read-only (but see [`nothing_older`]).
fn target(state: &State, opts: &RollbackOptions) -> Result<DistId> {
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => "world".parse()?,
    };
    let inst = state
        .installed(&name)?
        .ok_or_else(|| Error::Refused(format!("nothing is installed for {name}")))?;
    let kept = state.bases(&name)?;
    if let Some(id) = &opts.to {
        if !kept.iter().any(|k| &k.id == id) {
            return Err(Error::Refused(format!(
                "{id} is not kept in {}",
                state.bases_dir().display()
            )));
        }
        return Ok(id.clone());
    }
    if let Some(id) = pending(state, &name)? {
        return Ok(id);
    }
    kept.iter()
        .rev()
        .map(|k| &k.id)
        .find(|id| (id.date, &id.rev) < (inst.id.date, &inst.id.rev))
        .cloned()
        .ok_or_else(|| nothing_older(state, &name, &inst.id))
}

/// The target when this is a rollback run again after a crash killed it past
/// its commit point: its apply of a kept base is pending, and running it
/// again finishes that one rather than going back a further step. Read-only.
fn pending(state: &State, name: &DistName) -> Result<Option<DistId>> {
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
/// finished looks like this too), and a temporary file it may have been
/// killed before removing is removed.
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
