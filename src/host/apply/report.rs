//! What an apply reports, from its plan: one function, [`report_of`], for
//! the real run and the dry run, so what a dry run lists is what the apply
//! then does; the report of a run that only finished an interrupted one;
//! and what the plan removes ([`obsolete_of`]).
//!
//! Invariants: counts come from the plan and cleanup's report, lists from
//! staging; sysup's own state is never among the obsolete paths.

use crate::format::dist::Metadata;
use crate::format::manifest::Manifest;
use crate::host::cleanup;
use crate::host::plan::{Counts, Obsolete, Plan};
use crate::host::state::State;

use super::{ApplyOptions, ApplyReport};

/// Entries staging writes, by how they stand now (root-relative).
pub(super) struct Lists {
    pub added: Vec<Vec<u8>>,
    pub changed: Vec<Vec<u8>>,
}

/// Paths as the report shows them.
pub(super) fn shown(paths: &[Vec<u8>]) -> Vec<String> {
    paths
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

/// What history and the report call an apply whose plan says no action.
pub(super) fn action_of(plan: &Plan) -> &'static str {
    match &plan.from {
        None => "install",
        Some(f) if f == &plan.target => "repair",
        Some(_) => "upgrade",
    }
}

/// The report of a run from its plan, staging's lists and what cleanup
/// did — or, in a dry run, foretold: one function for both, so a dry run
/// says what the real run reports.
pub(super) fn report_of(
    state: &State,
    opts: &ApplyOptions,
    plan: &Plan,
    lists: Lists,
    cleanup: cleanup::Report,
    dry_run: bool,
) -> ApplyReport {
    ApplyReport {
        root: state.root().to_path_buf(),
        action: opts
            .action
            .clone()
            .unwrap_or_else(|| action_of(plan).into()),
        from: plan.from.clone(),
        to: plan.target.clone(),
        dry_run,
        finished_interrupted: None,
        counts: Counts {
            removed: cleanup.removed.len() as u64,
            ..plan.counts.clone()
        },
        added: shown(&lists.added),
        changed: shown(&lists.changed),
        config_kept: shown(&plan.config_kept),
        config_merged: shown(&plan.config_merged),
        config_conflicted: shown(&plan.config_conflicted),
        removed: cleanup.removed,
        kept: cleanup.kept,
        upgrade_ran: cleanup.upgrade_ran,
        upgrade_skipped: cleanup.upgrade_skipped,
        pruned: cleanup.pruned,
        tar: Some(plan.tar),
        notes: vec![],
        restart: None,
    }
}

/// The report of a run that found this very command interrupted and
/// finished it: what its part of the cleanup removed and kept.
pub(super) fn report_of_resumed(
    state: &State,
    opts: &ApplyOptions,
    plan: &Plan,
    cleanup: cleanup::Report,
) -> ApplyReport {
    let removed = cleanup.removed.len() as u64;
    let nothing_staged = Lists {
        added: vec![],
        changed: vec![],
    };
    ApplyReport {
        action: "resume".into(),
        from: None,
        finished_interrupted: Some(plan.target.clone()),
        counts: Counts {
            removed,
            ..Counts::default()
        },
        tar: None,
        ..report_of(state, opts, plan, nothing_staged, cleanup, false)
    }
}

/// Paths the new dist no longer ships: the old MANIFEST minus the new, plus
/// its OBSOLETE list, never sysup's state, deepest first.
pub(super) fn obsolete_of(
    old_meta: Option<&Metadata>,
    new_manifest: &Manifest,
    obsolete_list: Vec<String>,
) -> Vec<Obsolete> {
    let mut obsolete: Vec<Obsolete> = Vec::new();
    if let Some(old) = old_meta {
        for e in old.manifest.entries() {
            // `var`, `var/db` an old dist shipped hold sysup's state
            if new_manifest.get(&e.path).is_none() && !crate::host::state::touches_state(&e.path) {
                obsolete.push(Obsolete {
                    path: e.path.clone(),
                    config_sha256: if e.config { e.sha256 } else { None },
                });
            }
        }
    }
    for p in obsolete_list {
        let p = p.into_bytes();
        if new_manifest.get(&p).is_none()
            && !obsolete.iter().any(|o| o.path == p)
            && crate::format::manifest::is_safe_rel(&p)
            && !crate::host::state::touches_state(&p)
        {
            obsolete.push(Obsolete {
                path: p,
                config_sha256: None,
            });
        }
    }
    obsolete.sort_by(|a, b| b.path.cmp(&a.path));
    obsolete
}
