//! `sysup update` (docs/design.md §6): from a mirror's signed INDEX to an applied
//! update, in this order —
//!
//! 1. take the host lock (two updates never interleave their downloads);
//! 2. gather the trusted keys — configured, accepted before, and (when the
//!    INDEX's signature names another key) announced in the mirror's signed
//!    `KEYS` file — fetch `INDEX` and `INDEX.minisig`, verify the signature
//!    with the trusted key it names *before* a byte of INDEX is parsed, and
//!    refuse an INDEX past its `expires` time unless `--allow-expired`
//!    (`trust.rs`);
//! 3. refuse an INDEX whose serial is lower than the last one this host
//!    accepted from the same signing key (a stale mirror, or a replayed old
//!    INDEX that would freeze the host on, or roll it back to, vulnerable
//!    releases) unless `--allow-downgrade`; record the accepted serial under
//!    the key's id — a serial only orders one publisher's INDEXes, so another
//!    key has its own record, and a mirror switch under one key cannot go
//!    back;
//! 4. plan, per dist name: the cheapest chain of patches in bytes from the
//!    installed tar (matched by id *and* SHA-256) to the target, or the full
//!    dist when it is cheaper or no chain exists;
//! 5. download each file (resumable, under a speed limit and a deadline),
//!    checking size and SHA-256 against the INDEX, and each patch's header
//!    (ids and tar digests) against its INDEX entry;
//! 6. apply through the same code as `sysup apply` (which checks every
//!    digest again), still under the lock: nothing slips in between the
//!    download and the apply.
//!
//! With `dry_run`, steps 1–4 run as always but nothing is recorded (no
//! serial, no announced key kept), and steps 5–6 are told, not done: per
//! file, the bytes it would fetch (less what the download directory already
//! holds); no file list of
//! the apply, which needs the patches themselves — `--download-only` then
//! `sysup apply --dry-run` of the downloaded files tells that
//! (docs/decisions.md, "What `update --dry-run` tells").
//!
//! Before step 2 an apply that a crash interrupted is finished (or undone),
//! as `sysup apply` would do first: an update killed after it recorded the
//! new id must still run the rest of its cleanup, though the mirror now says
//! "up to date".
//!
//! Host settings come from the `[mirror]` table of the host's configuration
//! (`host::conf`); command-line flags win over it. See docs/mirrors.md.
//!
//! The steps live by job: `pubkey.rs` (the configured keys), `trust.rs`
//! (step 2), `serial.rs` (step 3), `plan.rs` (step 4), `download.rs`
//! (step 5); this file runs them in order and hands the files to the apply
//! (step 6).
//!
//! Invariants: nothing fetched is used before the signature over INDEX and
//! the file's own size and SHA-256 are checked; nothing is applied that goes
//! elsewhere than its INDEX entry says; a refusal at any step leaves the root
//! untouched (only the download directory, the serial records and the
//! accepted keys under `var/db/sysup/` may change, a serial only after the
//! INDEX verified and was accepted, a key only after the KEYS file that
//! announced it verified); configured keys are read from inside the root
//! (or from the host paths the admin gave with `--pubkey`), never through a
//! link or `..` out of it.

mod download;
mod plan;
mod pubkey;
mod serial;
mod trust;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::format::name::DistId;
use crate::host::apply::{ApplyOptions, ApplyReport};
use crate::host::checkpoint::{checkpoint, fault};
use crate::host::conf::{HostConf, MirrorConf, CONF_FILE};
use crate::host::state::{Lock, State};
use crate::mirror::fetch::{Downloaded, FetchOptions, Mirror};
use crate::mirror::index::{Index, INDEX_FILE};
use crate::util::progress::Progress;

pub use crate::host::state::SERIAL_FILE;
pub use plan::{plan, Plan, Step};
pub use pubkey::DEFAULT_PUBKEY;
pub use trust::{utc, KeyAccepted};

/// Knobs of [`update`] (command-line values; `None` falls back to the config).
#[derive(Clone, Debug, Default)]
pub struct UpdateOptions {
    pub root: PathBuf,
    pub mirror: Option<String>,
    /// Update this name to this id (default: every installed name to its newest).
    pub to: Option<DistId>,
    /// Trusted keys (`--pubkey`, repeatable); empty: the configuration's.
    pub pubkeys: Vec<PathBuf>,
    pub download_only: bool,
    /// Plan and tell what would be fetched and installed; fetch, record
    /// and apply nothing.
    pub dry_run: bool,
    pub allow_downgrade: bool,
    /// Use an INDEX whose expiry has passed (air-gapped sites).
    pub allow_expired: bool,
    pub retries: Option<u32>,
    /// Seconds (connect and per-read).
    pub timeout: Option<u64>,
    /// First retry's wait (tests shorten it).
    pub backoff: Option<std::time::Duration>,
}

/// What [`update`] did.
#[derive(Clone, Debug, Serialize)]
pub struct UpdateReport {
    pub root: PathBuf,
    pub mirror: String,
    pub pubkey: PathBuf,
    /// The key's id: the serials below are this key's.
    pub key_id: String,
    pub serial: u64,
    pub previous_serial: Option<u64>,
    pub index_timestamp: u64,
    /// When the INDEX expires (`sysup publish --expires`); `None`: never.
    pub index_expires: Option<u64>,
    /// The INDEX had expired and was used because of `--allow-expired`.
    pub expired: bool,
    /// Keys accepted from the mirror's signed KEYS file in this run.
    pub keys_accepted: Vec<KeyAccepted>,
    pub plans: Vec<Plan>,
    /// In a dry run, what each download would be: `fetched` the bytes it
    /// would bring, `reused`/`resumed_from` what is already here.
    pub downloads: Vec<Downloaded>,
    /// Bytes that came over the network for dists and patches (in a dry
    /// run: would come).
    pub fetched_bytes: u64,
    /// One report per applied plan, as `sysup apply --json` prints it.
    pub applied: Vec<ApplyReport>,
    /// Nothing was fetched, recorded or applied: the report says what would be.
    pub dry_run: bool,
    /// `up-to-date`, `downloaded` (with `--download-only`), `applied`, or
    /// `would-apply` (a dry run with something to do).
    pub result: &'static str,
    /// An interrupted earlier apply this update finished (forward, to its
    /// target) before anything else.
    pub finished_interrupted: Option<DistId>,
}

/// Apply verified files through the host's apply (the `sysup apply` code),
/// which checks every digest again, under the lock the update holds.
fn apply_files(
    root: &Path,
    files: &[PathBuf],
    progress: &crate::util::progress::Progress,
    lock: &Lock,
) -> Result<ApplyReport> {
    crate::host::apply::apply_locked(
        &ApplyOptions {
            root: root.to_path_buf(),
            files: files.to_vec(),
            progress: progress.clone(),
            ..ApplyOptions::default()
        },
        lock,
    )
}

/// Run an update. See the module doc for the order of the steps. Downloads
/// (one step per file) and the apply report to `progress`.
pub fn update(opts: &UpdateOptions, progress: &Progress) -> Result<UpdateReport> {
    let root = &opts.root;
    let conf = HostConf::load(root)?.mirror;
    let url = opts.mirror.clone().or(conf.url.clone()).ok_or_else(|| {
        Error::Refused(format!(
            "no mirror: pass --mirror URL or set url in the [mirror] table of {}",
            root.join(CONF_FILE).display()
        ))
    })?;
    let configured = pubkey::read_pubkeys(root, &opts.pubkeys, &conf)?;
    let mirror = Mirror::new(&url, fetch_options(opts, &conf)?)?;

    // A dry run (and --check) on a root never updated creates nothing in it.
    let (state, _preview) = if opts.dry_run {
        State::open_for_preview(root)?
    } else {
        (State::open(root)?, None)
    };
    let lock = state.lock()?;
    let finished_interrupted = finish_interrupted(opts, &state, &lock)?;
    // 2. Trusted keys, signed INDEX (verified before parsing), expiry.
    let now = crate::util::time::unix_now().unsigned_abs();
    let mut keys = trust::trusted_keys(configured, &state, now)?;
    let trust::Signed {
        index,
        signer,
        accepted: keys_accepted,
    } = trust::signed_index(&mirror, &mut keys, &state, now, opts.dry_run)?;
    let expired = trust::check_expiry(&index, &mirror.url(INDEX_FILE), now, opts.allow_expired)?;
    let (key_id, pubkey_path) = (signer.key.key_id().to_string(), signer.shown.clone());
    // 3. Serial: no going back unasked, within this key's numbering.
    let previous_serial = serial::check_serial(opts, &state, &index, &key_id)?;
    // 4. Plans.
    let plans = plans(opts, &state, &index)?;

    // 5. Downloads.
    let steps: Vec<Step> = plans.iter().flat_map(|p| p.steps.clone()).collect();
    let mut report = UpdateReport {
        root: state.root().to_path_buf(),
        mirror: mirror.base().to_string(),
        pubkey: pubkey_path,
        key_id,
        serial: index.serial,
        previous_serial,
        index_timestamp: index.timestamp,
        index_expires: index.expires,
        expired,
        keys_accepted,
        plans,
        downloads: Vec::new(),
        fetched_bytes: 0,
        applied: Vec::new(),
        dry_run: opts.dry_run,
        result: "up-to-date",
        finished_interrupted,
    };
    if opts.dry_run {
        download::foretell(&mut report, &state, &steps)?;
        if !steps.is_empty() {
            report.result = "would-apply";
        }
        return Ok(report);
    }
    download::download(&mut report, &state, &mirror, &index, &steps, progress)?;
    if steps.is_empty() {
        return Ok(report);
    }
    if opts.download_only {
        report.result = "downloaded";
        return Ok(report);
    }

    // (tests: a pause here shows the lock is still held)
    fault("update-before-apply").ctx("apply the update to", state.root())?;
    // 6. Apply.
    apply_plans(&mut report, &state, &lock, progress)?;
    report.result = "applied";
    Ok(report)
}

/// How to fetch from the mirror: the command line's retries and timeout,
/// else the `[mirror]` table's, with its speed limit and deadline; the
/// built-in defaults for what neither sets.
fn fetch_options(opts: &UpdateOptions, conf: &MirrorConf) -> Result<FetchOptions> {
    let mut fopts = FetchOptions::default();
    if let Some(r) = opts.retries.or(conf.retries) {
        fopts.retries = r;
    }
    if let Some(t) = opts.timeout.or(conf.timeout) {
        fopts.connect_timeout = Duration::from_secs(t.max(1));
        fopts.read_timeout = Duration::from_secs(t.max(1));
    }
    if let Some(b) = opts.backoff {
        fopts.backoff = b;
    }
    let zero = |key: &str| {
        Error::Refused(format!(
            "{key} = 0 in the [mirror] table of {} cannot be met: give a number of seconds \
             (for no speed limit, set speed-limit = 0)",
            opts.root.join(CONF_FILE).display()
        ))
    };
    if let Some(l) = conf.speed_limit {
        fopts.speed_limit = l;
    }
    match conf.speed_time {
        Some(0) => return Err(zero("speed-time")),
        Some(t) => fopts.speed_time = Duration::from_secs(t),
        None => {}
    }
    match conf.deadline {
        Some(0) => return Err(zero("deadline")),
        Some(d) => fopts.deadline = Duration::from_secs(d),
        None => {}
    }
    Ok(fopts)
}

/// Before anything else, an interrupted apply goes forward to its target
/// and is said (its id returned). A dry run is told against what is
/// installed now, which a pending apply would change first: it is refused
/// until that apply is finished, for real.
fn finish_interrupted(opts: &UpdateOptions, state: &State, lock: &Lock) -> Result<Option<DistId>> {
    if !opts.dry_run {
        return crate::host::apply::finish_interrupted(state.root(), lock);
    }
    if let Some(p) = crate::host::pending::pending(state, &opts.root)? {
        return Err(Error::Refused(format!(
            "an interrupted apply to {} is pending: finish it first (`{}`, or `sysup \
             update` without --dry-run), then run the dry run again",
            p.target, p.command
        )));
    }
    Ok(None)
}

/// One plan per name: the `--to` target's, else each installed name's to
/// its newest.
fn plans(opts: &UpdateOptions, state: &State, index: &Index) -> Result<Vec<Plan>> {
    if let Some(to) = &opts.to {
        let installed = state.installed(&to.name)?;
        return Ok(vec![plan(index, &to.name, installed.as_ref(), Some(to))?]);
    }
    let installed = state.installed_all()?;
    if installed.is_empty() {
        return Err(Error::Refused(format!(
            "nothing is installed in {}: pass --to ID for a first install",
            state.root().display()
        )));
    }
    installed
        .iter()
        .map(|i| plan(index, &i.id.name, Some(i), None))
        .collect()
}

/// Apply the downloaded files, one name at a time, then drop what was
/// applied. Writes: the root (through the apply), the download directory.
fn apply_plans(
    report: &mut UpdateReport,
    state: &State,
    lock: &Lock,
    progress: &Progress,
) -> Result<()> {
    for p in report.plans.iter().filter(|p| !p.steps.is_empty()) {
        // Named by their paths, as the admin would name them (the journal
        // shows them); apply's own State::open refuses a link among them.
        let files: Vec<PathBuf> = p
            .steps
            .iter()
            .map(|s| state.download_dir().join(&s.file))
            .collect();
        report
            .applied
            .push(apply_files(state.root(), &files, progress, lock)?);
        checkpoint("update-applied");
        for (s, f) in p.steps.iter().zip(&files) {
            state
                .download_fd()
                .unlink(s.file.as_bytes())
                .map_err(|e| Error::io("remove", f, e))?;
        }
    }
    Ok(())
}
