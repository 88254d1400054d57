//! `sysup verify --repair`: finish an interrupted apply, then re-apply each
//! installed base — the same code path as `sysup apply` of the installed
//! dist — under one lock.
//!
//! Invariants: an interrupted apply goes forward to its target first
//! (recorded as what it was), and the repair is then of what that
//! installed, never back to the id installed before it; each base is named
//! to the apply by its path in `bases/`, which apply reads as the kept base.

use std::path::Path;

use crate::error::Result;
use crate::host::apply::{apply_locked, finish_interrupted, ApplyOptions, ApplyReport};
use crate::host::state::State;
use crate::util::progress::Progress;

/// Repair `root` (whose state is `state`): one report per installed dist,
/// the one an interrupted apply went forward to marked as such. Empty when
/// nothing is installed.
/// Writes: the root and its state, as `sysup apply` does.
pub fn repair(state: &State, root: &Path, progress: &Progress) -> Result<Vec<ApplyReport>> {
    let lock = state.lock()?;
    let finished = finish_interrupted(root, &lock)?;
    let mut reports = Vec::new();
    for inst in state.installed_all()? {
        let mut r = apply_locked(
            &ApplyOptions {
                root: root.to_path_buf(),
                files: vec![state.base_path(&inst.id)],
                action: Some("repair".into()),
                progress: progress.clone(),
                ..Default::default()
            },
            &lock,
        )?;
        if finished.as_ref() == Some(&inst.id) {
            r.finished_interrupted = finished.clone();
        }
        reports.push(r);
    }
    Ok(reports)
}
