//! The transaction of one apply (docs/crash-safety.md): begun with the new
//! base's temporary and the journal's `begin` record, staged under it,
//! committed at its `staged` record (the commit point), then committed,
//! recorded and cleaned up from the plan — by this run, or by the next one
//! after a crash ([`resume`]). Before the commit point it is undone
//! ([`Transaction::undo`], [`undo_staging`]); after it, only rolled forward.
//!
//! Invariants: the base's temporary is created before the journal; every
//! journal record is durable before the action it describes; nothing live
//! changes before the `staged` record; every phase after it is idempotent
//! and driven by the plan alone (the journal says which phases are done);
//! the history record carries the txid and is appended once, before the
//! journal is dropped; checkpoint and failpoint names are those
//! `host/checkpoint.rs` and the crash tests know.

use std::io::{self, BufWriter, Write};

use crate::error::{Error, IoContext, Result};
use crate::format::gz;
use crate::format::manifest::Manifest;
use crate::host::checkpoint::{checkpoint, fault};
use crate::host::cleanup;
use crate::host::commit::commit;
use crate::host::conf::ApplyConf;
use crate::host::history::{self, Event};
use crate::host::journal::{Journal, Record, Status, FORMAT};
use crate::host::plan::{split, Plan};
use crate::host::reaper::Reaper;
use crate::host::root::Root;
use crate::host::statcache::StatCache;
use crate::host::state::{Installed, State};
use crate::util::fsutil::{AtomicFile, WritebackFile};
use crate::util::progress::Unit;

use super::input::Checked;
use super::report::{action_of, shown};
use super::{ApplyOptions, DEFAULT_KEEP};

/// An apply between its `begin` record and its commit point: the journal
/// it stages under, and the new base until it is kept.
pub(super) struct Transaction<'a> {
    state: &'a State,
    journal: Journal,
    /// The new base under its temporary name, until kept.
    base: Option<AtomicFile>,
}

/// The gzip writer of the new base, which the stream's tee fills.
pub(super) type BaseGz = gz::members::Writer<BufWriter<WritebackFile>>;

/// The new base's temporary in `bases/` and the gzip writer that fills it:
/// independent gzip members, those the old base holds unchanged copied from
/// it (a chain's base, read through `bases/`; its members recorded as the
/// chain's gunzip reads it), the others deflated. Made before the journal:
/// a kill in between leaves only the temporary, which the next run removes
/// (window 0); a kill while it copies or deflates, before the commit
/// point, is undone like any staging (checkpoints `base-copy`,
/// `base-deflate`).
pub(super) fn base_writer(
    state: &State,
    checked: &Checked,
    conf: &ApplyConf,
) -> Result<(AtomicFile, BaseGz)> {
    state.remove_base_temps()?;
    // Created through the descriptor of `bases/` (a new name, O_EXCL).
    let mut out = AtomicFile::create_with_mode(
        &state.bases_fd_path().join(checked.target.file_name()),
        0o600,
    )?;
    let file = out.file().try_clone().ctx("open", out.temp_path())?;
    // Written back as it grows: its fsync then has little to flush.
    let file = WritebackFile::new(file, 8 << 20);
    let engine = conf.base_compression.engine();
    // Storing costs less than checking a copy: only deflated bases copy.
    if let (gz::Engine::Stored, Some(index)) = (engine, &checked.base_index) {
        index.stop_holding();
    }
    let old = match (checked.from_base, &checked.base_index) {
        (Some(inst), Some(index)) if engine != gz::Engine::Stored => {
            state.open_base(&inst.id).ok().map(|file| gz::members::Old {
                file,
                index: index.clone(),
            })
        }
        _ => None,
    };
    let gz = gz::members::Writer::new(
        BufWriter::with_capacity(1 << 20, file),
        engine,
        old,
        checkpoint,
    );
    Ok((out, gz))
}

impl<'a> Transaction<'a> {
    /// Create the journal and make its `begin` record durable. A `begin`
    /// that fails leaves no journal behind: nothing was staged.
    pub(super) fn begin(
        state: &'a State,
        base: AtomicFile,
        checked: &Checked,
        opts: &ApplyOptions,
    ) -> Result<Transaction<'a>> {
        let mut journal = Journal::create(state)?;
        let target = &checked.target;
        // A kept base is named by the target alone: its path changes with
        // the root's mount point.
        let kept_base = opts.files.len() == 1 && opts.files[0] == state.base_path(target);
        let begun = journal.append(
            &Record::Begin {
                format: FORMAT,
                txid: checked.txid.clone(),
                target: target.clone(),
                from: checked.from(),
                inputs: if kept_base {
                    vec![]
                } else {
                    opts.files.clone()
                },
                kept_base,
                started_at: history::now(),
            },
            true,
        );
        if let Err(e) = begun {
            drop(journal);
            let _ = Journal::remove(state);
            return Err(e);
        }
        Ok(Transaction {
            state,
            journal,
            base: Some(base),
        })
    }

    /// The journal staging records its directories and names in.
    pub(super) fn journal(&mut self) -> &mut Journal {
        &mut self.journal
    }

    /// Finish the new base: complete and durable under its temporary name,
    /// which is returned (the record phase finds it in `bases/`).
    pub(super) fn keep_base(&mut self, gz: BaseGz) -> Result<String> {
        let Some(out) = self.base.take() else {
            return Ok(String::new());
        };
        gz.finish()
            .and_then(|mut w| w.flush())
            .ctx("write", out.temp_path())?;
        fault("base-fsync").ctx("fsync", out.temp_path())?;
        Ok(out
            .keep()?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default())
    }

    /// The commit point: the verified plan, durable in the `staged` record.
    pub(super) fn stage_plan(&mut self, plan: &Plan) -> Result<()> {
        checkpoint("staged-before-journal");
        self.journal.append(
            &Record::Staged {
                plan: Box::new(plan.clone()),
            },
            true,
        )
    }

    /// Undo everything before the commit point, as a re-run would: staged
    /// names removed, directories' mtimes restored, base temp dropped.
    pub(super) fn undo(self, root: &Root) -> Result<()> {
        let Transaction {
            state,
            journal,
            base,
        } = self;
        drop(journal);
        if let Some(st) = Journal::load(state)? {
            undo_staging(root, state, &st)?;
        }
        drop(base);
        Ok(())
    }

    /// Past the commit point: commit, record and clean up the plan.
    pub(super) fn finish(
        self,
        root: &Root,
        plan: &Plan,
        manifest: &Manifest,
        opts: &ApplyOptions,
    ) -> Result<cleanup::Report> {
        let state = self.state;
        drop(self);
        checkpoint("journal-staged");
        finish(root, state, None, plan, Some(manifest), opts)
    }
}

/// Undo an apply that stopped before its `staged` record: remove its staged
/// names, the directories it created, and its base temporaries.
pub(super) fn undo_staging(root: &Root, state: &State, st: &Status) -> Result<()> {
    let Some(txid) = &st.txid else {
        // no whole `begin` record: nothing was staged
        return Journal::remove(state);
    };
    let prefix = format!(".sysup-{txid}-").into_bytes();
    let open = |dir: &[u8]| match root.resolve_dir(dir) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(Error::io("open directory", root.display(dir), e)),
    };
    for (dir, _) in &st.dirs {
        let Some(d) = open(dir)? else { continue };
        for name in d
            .list()
            .map_err(|e| Error::io("list", root.display(dir), e))?
        {
            if name.starts_with(&prefix) {
                d.remove_all(&name)
                    .map_err(|e| Error::io("remove", root.display(&name), e))?;
            }
        }
    }
    for path in &st.news {
        let (dir, name) = split(path);
        if let Some(d) = open(dir)? {
            d.unlink(name)
                .map_err(|e| Error::io("remove", root.display(path), e))?;
        }
    }
    let mut made = st.mkdirs.clone();
    made.sort_by(|a, b| b.cmp(a));
    for path in &made {
        let (dir, name) = split(path);
        if let Some(d) = open(dir)? {
            let _ = d.rmdir(name); // only if empty: it may hold other things by now
        }
    }
    // staging created and removed names in these directories: as they were
    // (only where it shows: on a read-only filesystem nothing was created,
    // and setting the same time would fail the undo)
    for (dir, mtime) in &st.dirs {
        if let Some(d) = open(dir)? {
            let now = d
                .own_mtime()
                .map_err(|e| Error::io("stat", root.display(dir), e))?;
            if now != *mtime {
                d.set_own_mtime(*mtime)
                    .map_err(|e| Error::io("set mtime of", root.display(dir), e))?;
            }
        }
    }
    state.remove_base_temps()?;
    Journal::remove(state)
}

/// Record phase: the new base into `bases/`, then the installed record.
fn record(state: &State, plan: &Plan) -> Result<()> {
    // Both names are in `bases/`, reached through its descriptor: the plan
    // holds no path of the host, so a root mounted elsewhere finishes too.
    let dest = state.base_path(&plan.target);
    let bases = state.bases_fd();
    let name = plan.target.file_name();
    let temp = plan.base_temp.as_bytes();
    let temp_shown = state.bases_dir().join(&plan.base_temp);
    if bases.stat(temp).ctx("stat", &temp_shown)?.is_some() {
        fault("record-base-rename")
            .and_then(|()| bases.rename(temp, bases, name.as_bytes()))
            .ctx("rename the new base to", &dest)?;
        bases.sync().ctx("fsync directory", state.bases_dir())?;
    }
    checkpoint("record-base");
    let base_size = match bases.stat(name.as_bytes()).ctx("stat", &dest)? {
        Some(st) if st.is_file() => st.size,
        _ => {
            return Err(Error::io(
                "stat",
                &dest,
                io::Error::from_raw_os_error(libc::ENOENT),
            ))
        }
    };
    state.write_installed(&Installed {
        id: plan.target.clone(),
        arch: plan.arch.clone(),
        installed_at: history::now(),
        tar: plan.tar,
        base_size,
    })
}

/// Commit, record and clean up a verified plan (also when resuming).
fn finish(
    root: &Root,
    state: &State,
    journal_st: Option<&Status>,
    plan: &Plan,
    manifest: Option<&Manifest>,
    opts: &ApplyOptions,
) -> Result<cleanup::Report> {
    let progress = &opts.progress;
    // Frees the files the commit replaces while record and cleanup go on;
    // dropped (every one freed) when this returns.
    let mut reaper = Reaper::new();
    if !journal_st.is_some_and(|s| s.committed) {
        progress.step(format!("commit {}", plan.target), None, Unit::Items);
        commit(root, plan, &mut reaper)?;
        Journal::reopen(state)?.append(&Record::Committed, true)?;
        checkpoint("committed");
    }
    if !journal_st.is_some_and(|s| s.recorded) {
        record(state, plan)?;
        Journal::reopen(state)?.append(&Record::Recorded, true)?;
        checkpoint("recorded");
    }
    // What the next upgrade may trust unread, taken before the dist's own
    // upgrade step runs (it may change files). Without it (an error here, a
    // resumed apply) the next upgrade reads every file: nothing is lost.
    if let Some(m) = manifest {
        let not_shipped = [&plan.config_kept[..], &plan.config_merged[..]].concat();
        let _ = StatCache::record(root, state, &plan.target, m, &not_shipped);
    }
    progress.step(format!("clean up {}", plan.target), None, Unit::Items);
    let report = cleanup::cleanup(
        root,
        state,
        plan,
        opts.keep.unwrap_or(DEFAULT_KEEP),
        opts.min_age_days,
    )?;
    // The plan's own action: a command that finishes another's interrupted
    // apply (`verify --repair` after a killed upgrade) records that apply.
    let action = plan
        .action
        .clone()
        .unwrap_or_else(|| action_of(plan).into());
    history::append(
        state,
        &Event {
            from: plan.from.as_ref().map(ToString::to_string),
            to: Some(plan.target.to_string()),
            changed: plan.counts.changed,
            removed: report.removed.len() as u64,
            warning: report.upgrade_skipped.clone(),
            txid: Some(plan.txid.clone()),
            config_merged: shown(&plan.config_merged),
            config_kept: shown(&plan.config_kept),
            config_conflicted: shown(&plan.config_conflicted),
            ..Event::new(action, plan.target.name.to_string())
        },
    )?;
    checkpoint("cleanup-before-journal-drop");
    Journal::remove(state)?;
    progress.done();
    Ok(report)
}

/// Finish (roll forward) or undo (remove its staging) an apply that a crash
/// or an error interrupted; returns the plan of one it finished and what
/// its cleanup did.
/// Writes: the interrupted apply's remaining phases, or the undo.
pub(super) fn resume(
    root: &Root,
    state: &State,
    opts: &ApplyOptions,
) -> Result<Option<(Plan, cleanup::Report)>> {
    let Some(st) = Journal::load(state)? else {
        return Ok(None);
    };
    match &st.plan {
        Some(plan) if !opts.dry_run => {
            let report = finish(root, state, Some(&st), plan, None, opts)?;
            Ok(Some((plan.clone(), report)))
        }
        Some(plan) => Err(Error::Refused(format!(
            "an interrupted apply to {} is pending; run it again without --dry-run to finish it",
            plan.target
        ))),
        None if !opts.dry_run => undo_staging(root, state, &st).map(|()| None),
        None => Ok(None),
    }
}
