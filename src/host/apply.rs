//! `sysup apply` (docs/design.md §4): install a dist, or a chain of patches, onto a
//! root — check, stream and stage, verify, commit, record, clean up — such
//! that killing it at any instant and running the same command again
//! converges on the target.
//!
//! The stream is `gunzip(base or dist) → patch → … → patch → tee`, where the
//! tee feeds the gzip writer of the new base and the tar reader that stages
//! members. A dist is hashed (MD5+SHA-256) in the tee; a chain's result is
//! verified by its last patch (size+SHA-256 against the header's to-digests,
//! whose MD5 is recorded); the base a chain starts from is identified by its
//! records and guarded by gzip's CRC-32, not hashed again (docs/decisions.md,
//! "`sysup apply` does not hash the base it reads"). Nothing but the base's gzip output and staged
//! names is written before the journal's `staged` record; nothing outside
//! the plan is changed after it.
//!
//! A dry run is staging without a transaction: it makes every decision the
//! real run makes — staging's per entry, the same plan, cleanup's removals
//! foretold by cleanup's own walk — and writes nothing; both runs' reports
//! come from [`report::report_of`], so what a dry run lists is what the
//! apply then does.
//!
//! The steps live in their own files: [`input`] (what is applied, checked
//! against the host), [`stream`] (stream, stage, verify, plan),
//! [`transaction`] (begin → commit point → commit, record, cleanup, or
//! undo) and [`report`].
//!
//! A journal found at start means an earlier run stopped: one with a plan is
//! finished first (rolled forward: everything in it was verified), one
//! without is undone (its staged names removed), then this run proceeds.

mod input;
mod report;
mod stream;
mod transaction;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{IoContext, Result};
use crate::format::name::DistId;
use crate::host::checkpoint::checkpoint;
use crate::host::cleanup;
use crate::host::conf::ApplyConf;
use crate::host::history::{self, Event};
use crate::host::journal::Journal;
use crate::host::plan::Counts;
use crate::host::root::Root;
use crate::host::state::{Lock, State};
use crate::util::digest::Digests;
use crate::util::progress::Progress;

use input::{already_installed, classify, Checked, Input};
use report::{report_of, report_of_resumed};
use stream::Made;
use transaction::{resume, Transaction};

/// Bases kept per name by default (the installed one and the previous).
pub const DEFAULT_KEEP: usize = 2;

/// What to apply where.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    pub root: PathBuf,
    /// One dist, or a chain of patches in order.
    pub files: Vec<PathBuf>,
    pub dry_run: bool,
    /// Bases to keep per name (default [`DEFAULT_KEEP`]).
    pub keep: Option<usize>,
    /// Minimum age in days before a base may be pruned.
    pub min_age_days: u64,
    /// Record the run in history as this action (default: install/upgrade/repair).
    pub action: Option<String>,
    /// Steps reported as they run: the compressed base or dist consumed
    /// while streaming and staging, then commit and cleanup.
    pub progress: Progress,
}

/// What an apply did.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub root: PathBuf,
    pub action: String,
    pub from: Option<DistId>,
    pub to: DistId,
    pub dry_run: bool,
    /// An interrupted earlier apply that this run finished first.
    pub finished_interrupted: Option<DistId>,
    pub counts: Counts,
    /// Entries written where nothing stood, root-relative, in tar order.
    pub added: Vec<String>,
    /// Entries written, or given new attributes, over what stood there.
    /// `counts.changed` is `added`, `changed`, `config_kept` and
    /// `config_merged` together.
    pub changed: Vec<String>,
    /// Locally modified config files kept; the new versions are `<path>.sysupnew`.
    pub config_kept: Vec<String>,
    /// Config files changed both locally and by the dist, merged three ways
    /// and installed (docs/config-merge.md).
    pub config_merged: Vec<String>,
    /// Of `config_kept`: those whose three-way merge conflicted; the merge
    /// with conflict markers is `<path>.sysupmerge`.
    pub config_conflicted: Vec<String>,
    pub removed: Vec<String>,
    pub kept: Vec<String>,
    pub upgrade_ran: bool,
    /// Why the dist's upgrade step was not run, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade_skipped: Option<String>,
    pub pruned: Vec<String>,
    pub tar: Option<Digests>,
    /// Things the admin should know about how the input was taken (a patch
    /// chain whose target was already installed, run as a repair instead).
    pub notes: Vec<String>,
    /// What needs a restart or a reboot now (host/restart.rs); `None` in a
    /// dry run, which changes nothing that runs.
    pub restart: Option<crate::host::restart::Restart>,
}

/// What every step of one run reads: where, and with which settings.
struct Run<'a> {
    root: &'a Root,
    state: &'a State,
    opts: &'a ApplyOptions,
    conf: &'a ApplyConf,
}

/// What `sysup update` runs first, under the lock it holds: an apply that a
/// crash interrupted is finished (or undone), as the next apply would do
/// first. Without it, an update killed after recording the new id would find
/// the host "up to date" and never run the rest of its cleanup.
/// Writes: the interrupted apply's remaining phases; stale temporary files.
pub fn finish_interrupted(root_path: &Path, lock: &Lock) -> Result<Option<DistId>> {
    let root = Root::open(root_path).ctx("open root", root_path)?;
    let state = State::open(root_path)?;
    let opts = ApplyOptions {
        root: root_path.to_path_buf(),
        ..ApplyOptions::default()
    };
    let done = resume(&root, &state, &opts)?.map(|(plan, _)| plan.target);
    state.remove_stale_temps(lock)?;
    Ok(done)
}

/// What an interrupt (Ctrl-C) of an apply does: records the attempt in
/// history as `interrupted`, and says whether anything went live — before
/// the journal's commit point nothing did and the next run removes the
/// staging; past it the root is between two ids and the same command
/// finishes it, forward.
fn on_interrupt_record(opts: &ApplyOptions, target: &DistId) -> crate::util::interrupt::Guard {
    let (root, target) = (opts.root.clone(), target.clone());
    let action = opts.action.clone().unwrap_or_else(|| "apply".into());
    crate::util::interrupt::on_interrupt(move |signal| {
        let Ok(Some(state)) = State::open_existing(&root) else {
            return format!("nothing of {target} went live");
        };
        let committed = matches!(Journal::load(&state), Ok(Some(st)) if st.plan.is_some());
        let (said, line) = if committed {
            (
                format!("interrupted by {signal} past its commit point"),
                format!(
                    "the apply of {target} is past its commit point: run the same command again to finish it"
                ),
            )
        } else {
            (
                format!("interrupted by {signal} before its commit point; nothing went live"),
                format!(
                    "nothing of {target} went live; the next sysup run removes what was staged"
                ),
            )
        };
        record_unfinished(&state, &action, &target, "interrupted", said);
        line
    })
}

/// Append the history record of an apply to `target` that did not finish
/// (`result`: `error` or `interrupted`, with `why`). Best effort: the
/// failure itself is what the caller reports.
fn record_unfinished(state: &State, action: &str, target: &DistId, result: &str, why: String) {
    let installed = state.installed(&target.name).ok().flatten();
    let _ = history::append(
        state,
        &Event {
            from: installed.map(|i| i.id.to_string()),
            to: Some(target.to_string()),
            result: result.into(),
            error: Some(why),
            ..Event::new(action, target.name.to_string())
        },
    );
}

/// Apply `opts.files` to `opts.root`.
pub fn apply(opts: &ApplyOptions) -> Result<ApplyReport> {
    apply_with(opts, None)
}

/// [`apply`] for a caller that already holds the root's lock: `sysup update`
/// keeps it from reading the INDEX to the end of the apply, so no other
/// sysup slips in between its download and its apply.
pub fn apply_locked(opts: &ApplyOptions, lock: &Lock) -> Result<ApplyReport> {
    apply_with(opts, Some(lock))
}

fn apply_with(opts: &ApplyOptions, held: Option<&Lock>) -> Result<ApplyReport> {
    let input = classify(&opts.files)?;
    let root = Root::open(&opts.root).ctx("open root", &opts.root)?;
    // A dry run of a first install creates nothing, not even the state directory.
    let (state, _preview) = if opts.dry_run {
        State::open_for_preview(&opts.root)?
    } else {
        (State::open(&opts.root)?, None)
    };
    let own;
    let lock = match held {
        Some(l) => l,
        None => {
            own = state.lock()?;
            &own
        }
    };
    if !opts.dry_run {
        // none of these is part of a pending plan (its base temp is in bases/)
        state.remove_stale_temps(lock)?;
    }
    let _interrupt = (!opts.dry_run).then(|| on_interrupt_record(opts, input.target()));
    // An earlier run that stopped: finish or undo it first.
    let resumed = resume(&root, &state, opts)?;
    let finished_interrupted = resumed.as_ref().map(|(plan, _)| plan.target.clone());
    let repair = already_installed(&state, &input)?;
    let patch_not_needed = repair.is_some();
    let input = repair.unwrap_or(input);
    let target = input.target().clone();
    // Said unless the run finished below was this very command.
    let notes = if patch_not_needed && finished_interrupted.as_ref() != Some(&target) {
        vec![format!(
            "{target} is already installed: the patch was not needed; the tree was checked against its MANIFEST and repaired from the kept base"
        )]
    } else {
        vec![]
    };
    if let Some((plan, report)) = resumed.filter(|(plan, _)| plan.target == target) {
        // The interrupted run was this very command: it is done now.
        return Ok(with_restart(
            &state,
            report_of_resumed(&state, opts, &plan, report),
        ));
    }
    match run(&root, &state, &input, opts) {
        Ok(mut r) => {
            r.finished_interrupted = finished_interrupted;
            r.notes = notes;
            Ok(with_restart(&state, r))
        }
        Err(e) => {
            if !opts.dry_run {
                let action = opts.action.clone().unwrap_or_else(|| "apply".into());
                record_unfinished(&state, &action, &target, "error", e.to_string());
            }
            Err(e)
        }
    }
}

/// The report with its restart report, taken after the apply (not in a
/// dry run). It never fails: what it cannot read is a note in it.
fn with_restart(state: &State, mut r: ApplyReport) -> ApplyReport {
    if !r.dry_run {
        r.restart = Some(crate::host::restart::report(state, &r.removed));
    }
    r
}

/// Check, then stage — in a transaction, or, in a dry run, without one.
fn run(root: &Root, state: &State, input: &Input, opts: &ApplyOptions) -> Result<ApplyReport> {
    let installed = state.installed(&input.target().name)?;
    // The host's own settings, refused now if wrong: nothing is written yet.
    let conf = ApplyConf::load(state.root())?;
    let (checked, reader) = Checked::open(state, input, installed.as_ref(), opts)?;
    checkpoint("check-done");
    let run = Run {
        root,
        state,
        opts,
        conf: &conf,
    };
    if opts.dry_run {
        return run.dry(&checked, reader);
    }
    let (base, gz) = transaction::base_writer(state, &checked, &conf)?;
    let seg = stream::open(reader, &checked, Some(gz))?;
    let mut txn = Transaction::begin(state, base, &checked, opts)?;
    // Everything from here to the `staged` record is undone on any error.
    let staged = run
        .stage(&checked, seg, Some(&mut txn))
        .and_then(|made| txn.stage_plan(&made.plan).map(|()| made));
    let Made {
        plan,
        lists,
        manifest,
    } = match staged {
        Ok(made) => made,
        Err(e) => {
            txn.undo(root)?;
            return Err(checked.blame(state, e));
        }
    };
    let report = txn.finish(root, &plan, &manifest, opts)?;
    drop(manifest);
    Ok(report_of(state, opts, &plan, lists, report, false))
}

impl Run<'_> {
    /// A dry run: staging without a transaction. The same checks, the same
    /// decisions and the same plan, then what cleanup will remove and keep,
    /// told by cleanup's own rules from that plan; nothing written.
    fn dry(&self, checked: &Checked, reader: Box<dyn std::io::Read + Send>) -> Result<ApplyReport> {
        let seg = stream::open(reader, checked, None)?;
        let (made, foretold) = self
            .stage(checked, seg, None)
            .and_then(|made| {
                let foretold =
                    cleanup::foretell(self.root, &made.plan, &made.manifest, &made.lists.changed)?;
                Ok((made, foretold))
            })
            .map_err(|e| checked.blame(self.state, e))?;
        Ok(report_of(
            self.state, self.opts, &made.plan, made.lists, foretold, true,
        ))
    }
}
