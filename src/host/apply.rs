//! `sysup apply` (DESIGN §4): install a dist, or a chain of patches, onto a
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
//! "Hashing streams"). Nothing but the base's gzip output and staged
//! names is written before the journal's `staged` record; nothing outside
//! the plan is changed after it.
//!
//! A dry run makes every decision the real run makes — staging's per entry,
//! the same plan, cleanup's removals foretold by cleanup's own walk — and
//! writes nothing; both runs' reports come from [`report_of`], so what a dry
//! run lists is what the apply then does.
//!
//! A journal found at start means an earlier run stopped: one with a plan is
//! finished first (rolled forward: everything in it was verified), one
//! without is undone (its staged names removed), then this run proceeds.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::format::archive::member;
use crate::format::archive::segment::{Item, Segmenter};
use crate::format::dist::{
    self, DistMeta, Metadata, DIST_MEMBER, MANIFEST_MEMBER, META_DIR, OBSOLETE_MEMBER,
    UPGRADE_MEMBER,
};
use crate::format::gz;
use crate::format::manifest::{Kind, Manifest};
use crate::format::name::{DistId, PatchName};
use crate::format::patch::PatchHeader;
use crate::host::checkpoint::{checkpoint, fault, fault_write};
use crate::host::cleanup;
use crate::host::commit::commit;
use crate::host::conf::ApplyConf;
use crate::host::history::{self, Event};
use crate::host::journal::{Journal, Record, Status, FORMAT};
use crate::host::plan::{split, Counts, Obsolete, Plan};
use crate::host::policy::Policy;
use crate::host::reaper::Reaper;
use crate::host::root::Root;
use crate::host::stage::{Mode, Stager};
use crate::host::statcache::StatCache;
use crate::host::state::{Installed, Lock, State};
use crate::patch::PatchReader;
use crate::util::digest::{Digests, Sha256};
use crate::util::fsutil::{AtomicFile, WritebackFile};
use crate::util::hashing::BackgroundHasher;
use crate::util::progress::{Progress, Unit};
use crate::util::readahead::ReadAhead;

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
    /// `counts.changed` is `added`, `changed` and `config_kept` together.
    pub changed: Vec<String>,
    /// Locally modified config files kept; the new versions are `<path>.sysupnew`.
    pub config_kept: Vec<String>,
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
}

enum Input {
    Dist {
        path: PathBuf,
        id: DistId,
    },
    Chain {
        patches: Vec<(PathBuf, PatchHeader)>,
    },
}

impl Input {
    fn target(&self) -> &DistId {
        match self {
            Input::Dist { id, .. } => id,
            Input::Chain { patches } => &patches.last().expect("non-empty chain").1.to.id,
        }
    }
    fn label(&self) -> String {
        match self {
            Input::Dist { path, .. } => path.display().to_string(),
            Input::Chain { patches } => patches.last().expect("non-empty").0.display().to_string(),
        }
    }
}

fn classify(files: &[PathBuf]) -> Result<Input> {
    let Some(first) = files.first() else {
        return Err(Error::Refused(
            "nothing to apply: give a dist or a chain of patches".into(),
        ));
    };
    let is_patch = |p: &Path| {
        p.to_string_lossy()
            .ends_with(crate::format::name::PATCH_SUFFIX)
    };
    if !is_patch(first) {
        if files.len() > 1 {
            return Err(Error::Refused(
                "give one dist (a full install) or one or more patches (a chain), not both".into(),
            ));
        }
        let name = first
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Opened first: a path that does not exist is said as such, not as
        // a name that does not parse.
        File::open(first).ctx("open", first)?;
        let id = DistId::from_file_name(&name).map_err(|e| {
            Error::Refused(format!(
                "'{}' is not named as a dist (<name>-<rev>-<YYYYMMDD>.tar.gz): {e}",
                first.display()
            ))
        })?;
        return Ok(Input::Dist {
            path: first.clone(),
            id,
        });
    }
    let mut patches: Vec<(PathBuf, PatchHeader)> = Vec::new();
    for f in files {
        if !is_patch(f) {
            return Err(Error::Refused(format!(
                "'{}' is not a patch; a chain is patches only",
                f.display()
            )));
        }
        let h = PatchHeader::read_file(f)?;
        let named = PatchName::from_file_name(
            &f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        )?;
        if named != h.name {
            return Err(Error::Mismatch(format!(
                "'{}' is named for {named} but its header says {}",
                f.display(),
                h.name
            )));
        }
        if let Some((prev, ph)) = patches.last() {
            if ph.to.id != h.from.id || ph.to.tar != h.from.tar {
                return Err(Error::Mismatch(format!(
                    "broken chain: '{}' makes {} but '{}' applies to {}",
                    prev.display(),
                    ph.to.id,
                    f.display(),
                    h.from.id
                )));
            }
        }
        patches.push((f.clone(), h));
    }
    Ok(Input::Chain { patches })
}

/// Reads `inner`, counting it, hashing it (a dist; a patch chain's last
/// reader verifies its own output) and copying it into the new base's gzip
/// writer.
struct Tee<R> {
    inner: R,
    hasher: Option<BackgroundHasher>,
    size: u64,
    gz: Option<gz::Writer<BufWriter<WritebackFile>>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.size += n as u64;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        if let Some(g) = &mut self.gz {
            fault_write(g, &buf[..n], "base-write")?;
        }
        Ok(n)
    }
}

/// Whether `e` says the stream's content is not what it should be: a staged
/// file's digest, or a patch's wrong-base verdict. (Readers hand such errors
/// up unwrapped: see [`Error::from_io`].)
fn blames_the_input(e: &Error) -> bool {
    matches!(e, Error::DigestMismatch { .. } | Error::WrongBase { .. })
}

/// Whether `e` could be a chain thrown off course by its base: a patch that
/// stops making sense midway (its body was verified when it was opened), or
/// a new tar or metadata that does not parse. With the base not hashed as it
/// is read, [`base_differs`] decides.
fn could_be_the_base(e: &Error) -> bool {
    matches!(
        e,
        Error::Patch { .. }
            | Error::CorruptPatch { .. }
            | Error::Tar { .. }
            | Error::Metadata { .. }
    )
}

/// Whether the base file on disk no longer gunzips to the tar recorded for
/// it (size and MD5; unreadable counts as differing). Read only after a
/// chain failed, so an apply that succeeds never pays for it.
fn base_differs(base: &Path, recorded: &Digests) -> bool {
    use md5::{Digest as _, Md5};
    let Ok(r) = dist::open_gz(base) else {
        return true;
    };
    // One byte past the recorded size is enough to know it is longer.
    let mut h = Md5::new();
    match io::copy(&mut r.take(recorded.size + 1), &mut h) {
        Ok(n) => n != recorded.size || <[u8; 16]>::from(h.finalize()) != recorded.md5,
        Err(_) => true,
    }
}

fn txid_for(from: Option<&DistId>, target: &DistId) -> String {
    let mut h = Sha256::new();
    h.update(format!("{from:?}->{target}").as_bytes());
    hex::encode(&h.finalize()[..5])
}

fn read_meta_member(
    seg: &mut Segmenter<impl Read>,
    size: u64,
    cap: u64,
    label: &str,
    what: &str,
) -> Result<Vec<u8>> {
    if size > cap {
        return Err(Error::Tar {
            path: label.into(),
            reason: format!("{what} claims {size} bytes, more than the {cap} allowed"),
        });
    }
    let mut v = Vec::with_capacity(size as usize);
    seg.data()
        .read_to_end(&mut v)
        .map_err(|e| Error::from_io(e, "read", Path::new(label)))?;
    Ok(v)
}

/// Bytes the staging of `new` may write, given `old` and the mode.
fn space_needed(new: &Manifest, old: Option<&Manifest>, mode: Mode) -> u64 {
    new.entries()
        .iter()
        .filter(|e| e.kind == Kind::File)
        .filter(|e| match (mode, old.and_then(|o| o.get(&e.path))) {
            (Mode::Repair, _) => false,
            (Mode::Upgrade, Some(o)) => {
                o.sha256 != e.sha256
                    || o.mode != e.mode
                    || o.uid != e.uid
                    || o.gid != e.gid
                    || o.mtime != e.mtime
            }
            _ => true,
        })
        .map(|e| e.size)
        .sum()
}

/// About how big the tar of `manifest` is: each entry's header and data,
/// in 512-byte blocks, and the trailer. Long names, extended attributes and
/// `.sysup/` add a little more.
fn tar_size(manifest: &Manifest) -> u64 {
    let data = |e: &crate::format::manifest::Entry| match e.kind {
        Kind::File => e.size + crate::format::archive::segment::pad_len(e.size),
        _ => 0,
    };
    manifest
        .entries()
        .iter()
        .map(|e| 512 + data(e))
        .sum::<u64>()
        + 1024
}

/// Undo an apply that stopped before its `staged` record: remove its staged
/// names, the directories it created, and its base temporaries.
fn undo_staging(root: &Root, state: &State, st: &Status) -> Result<()> {
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
        let _ = StatCache::record(root, state, &plan.target, m, &plan.config_kept);
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
            time: history::now(),
            user: history::current_user(),
            action,
            name: plan.target.name.to_string(),
            from: plan.from.as_ref().map(ToString::to_string),
            to: Some(plan.target.to_string()),
            changed: plan.counts.changed,
            removed: report.removed.len() as u64,
            result: "ok".into(),
            error: None,
            warning: report.upgrade_skipped.clone(),
            txid: Some(plan.txid.clone()),
        },
    )?;
    checkpoint("cleanup-before-journal-drop");
    Journal::remove(state)?;
    progress.done();
    Ok(report)
}

fn action_of(plan: &Plan) -> &'static str {
    match &plan.from {
        None => "install",
        Some(f) if f == &plan.target => "repair",
        Some(_) => "upgrade",
    }
}

/// Finish (roll forward) or undo (remove its staging) an apply that a crash
/// or an error interrupted; returns the plan of one it finished and what
/// its cleanup did.
/// Writes: the interrupted apply's remaining phases, or the undo.
fn resume(
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

/// A chain of patches whose target is already installed (a run that
/// finished — perhaps killed just before it exited — run again): applying it
/// is a repair from the kept base, as re-applying an installed dist is, not
/// a wrong base.
fn already_installed(state: &State, input: &Input) -> Result<Option<Input>> {
    let Input::Chain { patches } = input else {
        return Ok(None);
    };
    let to = &patches.last().expect("non-empty chain").1.to;
    Ok(match state.installed(&to.id.name)? {
        Some(i) if i.id == to.id && i.tar == to.tar && state.base_path(&i.id).exists() => {
            Some(Input::Dist {
                path: state.base_path(&i.id),
                id: i.id,
            })
        }
        _ => None,
    })
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
            time: history::now(),
            user: history::current_user(),
            action: action.to_string(),
            name: target.name.to_string(),
            from: installed.map(|i| i.id.to_string()),
            to: Some(target.to_string()),
            changed: 0,
            removed: 0,
            result: result.into(),
            error: Some(why),
            warning: None,
            txid: None,
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
    let state = State::open(&opts.root)?;
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
        // The interrupted run was this very command: it is done now. What
        // this run's part of the cleanup removed and kept is reported.
        return Ok(ApplyReport {
            root: state.root().to_path_buf(),
            action: "resume".into(),
            from: None,
            to: target,
            dry_run: false,
            finished_interrupted,
            counts: Counts {
                removed: report.removed.len() as u64,
                ..Counts::default()
            },
            added: vec![],
            changed: vec![],
            config_kept: plan
                .config_kept
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect(),
            removed: report.removed,
            kept: report.kept,
            upgrade_ran: report.upgrade_ran,
            upgrade_skipped: report.upgrade_skipped,
            pruned: report.pruned,
            tar: None,
            notes: vec![],
        });
    }
    match run(&root, &state, &input, opts) {
        Ok(mut r) => {
            r.finished_interrupted = finished_interrupted;
            r.notes = notes;
            Ok(r)
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

fn run(root: &Root, state: &State, input: &Input, opts: &ApplyOptions) -> Result<ApplyReport> {
    let target = input.target().clone();
    let label = input.label();
    let installed = state.installed(&target.name)?;
    // The host's own settings, refused now if wrong: nothing is written yet.
    let conf = ApplyConf::load(state.root())?;
    // Progress: compressed bytes of the dist or base consumed by the stream.
    let stream_step = |gz: &Path| {
        let size = std::fs::metadata(gz).map(|m| m.len()).ok();
        opts.progress
            .step(format!("apply {target}"), size, Unit::Bytes);
    };
    // Check: the chain starts at the recorded base, whose file is intact.
    let (reader, from_base): (Box<dyn Read + Send>, Option<&Installed>) = match input {
        Input::Dist { path, .. } => {
            stream_step(path);
            (
                Box::new(dist::open_gz_counted(path, &opts.progress)?),
                installed.as_ref(),
            )
        }
        Input::Chain { patches } => {
            let Some(inst) = installed.as_ref() else {
                return Err(Error::Refused(format!(
                    "nothing is installed for {} in {}: install a full dist first, then patches apply to it",
                    target.name,
                    state.root().display()
                )));
            };
            let first = &patches[0].1;
            if first.from.id != inst.id || first.from.tar != inst.tar {
                return Err(Error::NotForInstalled {
                    patch: patches[0].0.clone(),
                    reason: format!(
                        "it applies to {} (md5 {}), but {} is installed (md5 {})",
                        first.from.id,
                        first.from.tar.md5_hex(),
                        inst.id,
                        inst.tar.md5_hex()
                    ),
                });
            }
            let base = state.base_path(&inst.id);
            stream_step(&base);
            // gunzip on a thread of its own. No link hashes its input: the
            // first reads the recorded base — its id and MD5 were matched
            // above, gzip's CRC-32 catches damage on disk, and a base that
            // is not the from-tar cannot make the to-tar the last link
            // verifies; each later link reads the output the link before
            // verified.
            let gunzip =
                ReadAhead::spawn("sysup-gunzip", dist::open_gz_named(&base, &opts.progress)?)
                    .map_err(|e| Error::io("start reading", &base, e))?;
            let mut r: Box<dyn Read + Send> =
                Box::new(PatchReader::open(&patches[0].0, gunzip)?.trusting_input());
            for (p, _) in &patches[1..] {
                r = Box::new(PatchReader::open(p, r)?.trusting_input());
            }
            (r, Some(inst))
        }
    };
    let from = from_base.map(|i| i.id.clone());
    let mode = match &from {
        None => Mode::Fresh,
        Some(f) if f == &target => Mode::Repair,
        Some(_) => Mode::Upgrade,
    };
    let old_meta: Option<Metadata> = match from_base {
        Some(i) => {
            let base = state.base_path(&i.id);
            match dist::read_metadata(dist::open_gz(&base)?, &base) {
                Ok(m) => Some(m),
                Err(e) => {
                    return Err(Error::Refused(format!(
                        "the recorded base '{}' cannot be read ({e}); apply a full dist to recover",
                        base.display()
                    )))
                }
            }
        }
        None => None,
    };
    let txid = txid_for(from.as_ref(), &target);
    checkpoint("check-done");

    // Stream and stage.
    let mut base_out = if opts.dry_run {
        None
    } else {
        state.remove_base_temps()?;
        // Created through the descriptor of `bases/` (a new name, O_EXCL).
        Some(AtomicFile::create_with_mode(
            &state.bases_fd_path().join(target.file_name()),
            0o600,
        )?)
    };
    let gz = match &mut base_out {
        Some(f) => {
            let file = f.file().try_clone().ctx("open", f.temp_path())?;
            // Written back as it grows: its fsync then has little to flush.
            let file = WritebackFile::new(file, 8 << 20);
            Some(gz::Writer::with_engine(
                BufWriter::with_capacity(1 << 20, file),
                conf.base_compression.engine(),
            ))
        }
        None => None,
    };
    // The new tar is made (gunzip, patches) on a thread of its own while this
    // one stages it; a dist is hashed here (on hashing threads), a chain's
    // last patch verifies what it makes.
    let reader = ReadAhead::spawn("sysup-stream", reader)
        .map_err(|e| Error::io("start reading", Path::new(&label), e))?;
    let tee = Tee {
        inner: BufReader::with_capacity(1 << 20, reader),
        hasher: match input {
            Input::Dist { .. } => Some(BackgroundHasher::new()),
            Input::Chain { .. } => None,
        },
        size: 0,
        gz,
    };
    let mut seg = Segmenter::new(tee, label.clone());
    let mut journal = if opts.dry_run {
        None
    } else {
        let mut j = Journal::create(state)?;
        // A kept base is named by the target alone: its path changes with
        // the root's mount point.
        let kept_base = opts.files.len() == 1 && opts.files[0] == state.base_path(&target);
        let begun = j.append(
            &Record::Begin {
                format: FORMAT,
                txid: txid.clone(),
                target: target.clone(),
                from: from.clone(),
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
            // Nothing was staged: a journal of nothing must not stay behind.
            drop(j);
            let _ = Journal::remove(state);
            return Err(e);
        }
        Some(j)
    };
    // Everything from here to the `staged` record is undone on any error:
    // staged names removed, directories' mtimes restored, base temp dropped.
    let staging = (|| -> Result<Outcome> {
        let result = stream_and_stage(
            root,
            state,
            &mut seg,
            &label,
            &target,
            mode,
            old_meta.as_ref(),
            from_base,
            journal.as_mut(),
            &txid,
            opts,
            &conf,
        );
        let (meta, new_manifest, obsolete_list, upgrade, staged) = result?;
        // Verify: every byte of the result against the chain's to-digests.
        let tee = seg.into_inner();
        let tar = match input {
            Input::Dist { .. } => {
                let h = tee.hasher.expect("a dist is hashed");
                h.finish().digests().expect("with SHA-256")
            }
            Input::Chain { patches } => {
                // The stream was read to EOF, which the last patch returns
                // only once its output matched these digests.
                let want = patches.last().expect("non-empty").1.to.tar;
                if want.size != tee.size {
                    return Err(Error::DigestMismatch {
                        what: "size of the result of the patch chain".into(),
                        path: label.into(),
                        expected: want.size.to_string(),
                        actual: tee.size.to_string(),
                    });
                }
                want
            }
        };
        // The base: complete and durable under its temporary name (none in
        // a dry run).
        let base_temp = match (tee.gz, base_out.take()) {
            (Some(gz), Some(base_out)) => {
                gz.finish()
                    .and_then(|mut w| w.flush())
                    .ctx("write", base_out.temp_path())?;
                fault("base-fsync").ctx("fsync", base_out.temp_path())?;
                // Its name alone: the record phase finds it in `bases/`.
                base_out
                    .keep()?
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }
            _ => String::new(),
        };
        let mut staged = staged;
        let lists = Lists {
            added: std::mem::take(&mut staged.added),
            changed: std::mem::take(&mut staged.changed),
        };

        // The plan: what commit, record and cleanup do.
        let mut dir_mtimes: Vec<(Vec<u8>, i64)> = new_manifest
            .entries()
            .iter()
            .filter(|e| e.kind == Kind::Dir)
            .map(|e| (e.path.clone(), e.mtime))
            .collect();
        dir_mtimes.sort_by(|a, b| b.0.cmp(&a.0));
        let plan = Plan {
            txid: txid.clone(),
            target: target.clone(),
            from: from.clone(),
            arch: meta.arch.clone(),
            tar,
            base_temp,
            dist_dirs: new_manifest
                .entries()
                .iter()
                .filter(|e| e.kind == Kind::Dir)
                .map(|e| e.path.clone())
                .collect(),
            dir_renames: staged.dir_renames,
            renames: staged.renames,
            critical: staged.critical,
            dir_attrs: staged.dir_attrs,
            attrs: staged.attrs,
            dir_mtimes,
            kernel: staged.kernel,
            obsolete: obsolete_of(old_meta.as_ref(), &new_manifest, obsolete_list),
            config_kept: staged.config_kept,
            upgrade,
            counts: staged.counts,
            action: opts.action.clone(),
        };
        if opts.dry_run {
            // What cleanup will remove and keep, told by cleanup's own rules
            // from the same plan the real run journals.
            let foretold = cleanup::foretell(root, &plan, &new_manifest, &lists.changed)?;
            return Ok(Outcome::Dry(Box::new(report_of(
                state, opts, &plan, lists, foretold, true,
            ))));
        }
        checkpoint("staged-before-journal");
        journal.as_mut().expect("not a dry run").append(
            &Record::Staged {
                plan: Box::new(plan.clone()),
            },
            true,
        )?;
        Ok(Outcome::Plan(Box::new(plan), lists, new_manifest))
    })();
    let (plan, lists, new_manifest) = match staging {
        Ok(Outcome::Dry(report)) => return Ok(*report),
        Ok(Outcome::Plan(plan, lists, m)) => (*plan, lists, m),
        Err(e) => {
            drop(journal);
            if !opts.dry_run {
                if let Some(st) = Journal::load(state)? {
                    undo_staging(root, state, &st)?;
                }
            }
            // The patches' bodies were verified before one byte was read and
            // the chain starts at the recorded id and digests: a result that
            // is not the target means the base file is not what was recorded.
            // A chain that broke down midway (a patch that stopped making
            // sense, a new tar that does not parse) is blamed on the base
            // only once the base is read again and found to differ.
            return Err(match from_base {
                Some(inst)
                    if matches!(input, Input::Chain { .. })
                        && (blames_the_input(&e)
                            || could_be_the_base(&e)
                                && base_differs(&state.base_path(&inst.id), &inst.tar)) =>
                {
                    Error::BadBase {
                        base: state.base_path(&inst.id),
                        target: target.to_string(),
                        source: Box::new(e),
                    }
                }
                _ => e,
            });
        }
    };
    drop(journal);
    checkpoint("journal-staged");
    let report = finish(root, state, None, &plan, Some(&new_manifest), opts)?;
    drop(new_manifest);
    Ok(report_of(state, opts, &plan, lists, report, false))
}

/// Entries staging writes, by how they stand now (root-relative).
struct Lists {
    added: Vec<Vec<u8>>,
    changed: Vec<Vec<u8>>,
}

/// Paths as the report shows them.
fn shown(paths: &[Vec<u8>]) -> Vec<String> {
    paths
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

/// The report of a run from its plan, staging's lists and what cleanup
/// did — or, in a dry run, foretold: one function for both, so a dry run
/// says what the real run reports.
fn report_of(
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
        removed: cleanup.removed,
        kept: cleanup.kept,
        upgrade_ran: cleanup.upgrade_ran,
        upgrade_skipped: cleanup.upgrade_skipped,
        pruned: cleanup.pruned,
        tar: Some(plan.tar),
        notes: vec![],
    }
}

/// Paths the new dist no longer ships: the old MANIFEST minus the new, plus
/// its OBSOLETE list, never sysup's state, deepest first.
fn obsolete_of(
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

/// How the staging part of a run ended.
enum Outcome {
    Dry(Box<ApplyReport>),
    /// The plan, staging's lists, and the new MANIFEST for the stat cache.
    Plan(Box<Plan>, Lists, Manifest),
}

type Streamed = (
    DistMeta,
    Manifest,
    Vec<String>,
    Option<Vec<u8>>,
    crate::host::stage::Staged,
);

/// Read the `.sysup/` head, check it, then stage every member.
#[allow(clippy::too_many_arguments)]
fn stream_and_stage<R: Read>(
    root: &Root,
    state: &State,
    seg: &mut Segmenter<Tee<R>>,
    label: &str,
    target: &DistId,
    mode: Mode,
    old: Option<&Metadata>,
    installed: Option<&Installed>,
    journal: Option<&mut Journal>,
    txid: &str,
    opts: &ApplyOptions,
    conf: &ApplyConf,
) -> Result<Streamed> {
    let next = |seg: &mut Segmenter<Tee<R>>| -> Result<Option<(member::MemberMeta, u64)>> {
        match seg.next_item()? {
            Some(Item::Member(m)) => {
                let meta = member::parse(&m.header).map_err(|reason| Error::Tar {
                    path: label.into(),
                    reason: format!("member at byte {}: {reason}", m.offset),
                })?;
                Ok(Some((meta, m.size)))
            }
            Some(Item::Trailer(_)) | None => Ok(None),
        }
    };
    let not_dist = |why: &str| Error::Tar {
        path: label.into(),
        reason: format!("not a sysup dist: {why}"),
    };
    // .sysup/DIST
    let Some((m, size)) = next(seg)? else {
        return Err(not_dist("empty"));
    };
    if m.path != DIST_MEMBER.as_bytes() {
        return Err(not_dist("the first member is not .sysup/DIST"));
    }
    let meta = DistMeta::parse(
        Path::new(label),
        &read_meta_member(seg, size, 64 * 1024, label, "DIST")?,
    )?;
    if &meta.id != target {
        return Err(Error::Mismatch(format!(
            "'{label}' holds {} but {target} was expected",
            meta.id
        )));
    }
    let host_arch = installed
        .map(|i| i.arch.clone())
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    if meta.arch != host_arch {
        return Err(Error::Mismatch(format!(
            "{} is for {}, but {} is {}",
            meta.id,
            meta.arch,
            state.root().display(),
            host_arch
        )));
    }
    // .sysup/MANIFEST
    let Some((m, size)) = next(seg)? else {
        return Err(not_dist("no MANIFEST"));
    };
    if m.path != MANIFEST_MEMBER.as_bytes() {
        return Err(not_dist("the second member is not .sysup/MANIFEST"));
    }
    if size > 512 << 20 {
        return Err(Error::Tar {
            path: label.into(),
            reason: format!("MANIFEST claims {size} bytes, more than the 512 MiB allowed"),
        });
    }
    // Parsed as it streams, never held as text: a hostile MANIFEST (a gzip
    // bomb) is refused at its first bad line, or its first entry past DIST's count.
    let manifest = Manifest::read(Path::new(label), BufReader::new(seg.data()), meta.entries)?;
    if manifest.entries().len() as u64 != meta.entries {
        return Err(not_dist("DIST and MANIFEST disagree on the entry count"));
    }
    // What the host itself allows (device nodes), before anything is written.
    Policy::new(conf)?.check(&manifest, label)?;
    // Free space, before anything of the tree is written.
    if !opts.dry_run {
        let need = space_needed(&manifest, old.map(|o| &o.manifest), mode);
        let have = crate::util::fsutil::free_bytes(state.root())?;
        let base_guess = conf.base_compression.estimate(tar_size(&manifest));
        if need + base_guess + (need + base_guess) / 50 > have {
            return Err(Error::Refused(format!(
                "not enough free space on {}: staging {} from '{label}' needs about {}, {} are free",
                state.root().display(),
                target,
                crate::util::fsutil::human_size(need + base_guess),
                crate::util::fsutil::human_size(have)
            )));
        }
    }
    crate::host::kernel_dirs::check(root, state, &meta, &manifest, old, label)?;
    let kernel = match (mode, &meta.kernel) {
        (Mode::Fresh | Mode::Upgrade, Some(k)) => Some(k.clone()),
        _ => None,
    };
    crate::host::stage::refuse_state_paths(label, &manifest, &[], meta.kernel.as_ref())?;
    let stats = match (mode, installed, old) {
        (Mode::Upgrade, Some(i), Some(o)) => {
            StatCache::load(state, &i.id, o.manifest.entries().len())
        }
        _ => StatCache::default(),
    };
    let mut stager = Stager::new(
        root,
        journal,
        txid.to_string(),
        mode,
        &manifest,
        old.map(|o| &o.manifest),
        kernel,
    )
    .with_stats(&stats);
    let mut obsolete = Vec::new();
    let mut seen_obsolete = false;
    let mut upgrade = None;
    let mut in_tree = false;
    while let Some((m, size)) = next(seg)? {
        if m.path.starts_with(META_DIR.as_bytes()) {
            if in_tree {
                // `sysup info` reads the head only: metadata hidden after the
                // tree (an upgrade step) would run unseen.
                return Err(not_dist(&format!(
                    "metadata member '{}' after the tree",
                    String::from_utf8_lossy(&m.path)
                )));
            }
            match std::str::from_utf8(&m.path).unwrap_or_default() {
                OBSOLETE_MEMBER if !seen_obsolete && upgrade.is_none() => {
                    seen_obsolete = true;
                    let text = read_meta_member(seg, size, 64 << 20, label, "OBSOLETE")?;
                    obsolete = String::from_utf8(text)
                        .map_err(|_| not_dist("OBSOLETE is not UTF-8"))?
                        .lines()
                        .filter(|l| !l.is_empty())
                        .map(str::to_string)
                        .collect();
                    crate::host::stage::refuse_state_paths(label, &manifest, &obsolete, None)?;
                }
                UPGRADE_MEMBER if upgrade.is_none() => {
                    upgrade = Some(read_meta_member(seg, size, 16 << 20, label, "upgrade")?);
                }
                _ => {
                    return Err(not_dist(&format!(
                        "unexpected metadata member '{}'",
                        String::from_utf8_lossy(&m.path)
                    )))
                }
            }
            continue;
        }
        in_tree = true;
        stager.member(label, &m, &mut seg.data())?;
    }
    // The stream must have been read to its very end (the digests cover it all).
    let mut rest = Vec::new();
    seg.data()
        .read_to_end(&mut rest)
        .map_err(|e| Error::from_io(e, "read", Path::new(label)))?;
    let staged = stager.finish(label)?;
    Ok((meta, manifest, obsolete, upgrade, staged))
}
