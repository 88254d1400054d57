//! `sysup update` (DESIGN §6): from a mirror's signed INDEX to an applied
//! update, in this order —
//!
//! 1. take the host lock (two updates never interleave their downloads);
//! 2. fetch `INDEX` and `INDEX.minisig`, and verify the signature with the
//!    host's public key *before* a byte of INDEX is parsed;
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
//! serial), and steps 5–6 are told, not done: per file, the bytes it would
//! fetch (less what the download directory already holds); no file list of
//! the apply, which needs the patches themselves — `--download-only` then
//! `sysup apply --dry-run` of the downloaded files tells that
//! (docs/decisions.md, "What `update --dry-run` tells").
//!
//! Before step 2 an apply that a crash interrupted is finished (or undone),
//! as `sysup apply` would do first: an update killed after it recorded the
//! new id must still run the rest of its cleanup, though the mirror now says
//! "up to date".
//!
//! Host settings come from `<root>/etc/sysup.conf`, a TOML file whose
//! `[mirror]` table this module reads (other tables belong to other
//! commands); command-line flags win over it. See docs/mirrors.md.
//!
//! Invariants: nothing fetched is used before the signature over INDEX and
//! the file's own size and SHA-256 are checked; nothing is applied that goes
//! elsewhere than its INDEX entry says; a refusal at any step leaves the root
//! untouched (only the download directory and the serial records under
//! `var/db/sysup/` may change, and a serial only after the INDEX verified and
//! was accepted); the key is read from inside the root (or from the host
//! path the admin gave with `--pubkey`), never through a link or `..` out
//! of it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::format::name::{DistId, DistName};
use crate::format::patch::PatchHeader;
use crate::host::apply::{ApplyOptions, ApplyReport};
use crate::host::checkpoint::{checkpoint, fault};
use crate::host::root::Root;
use crate::host::state::{Installed, Lock, State};
use crate::mirror::fetch::{self, Downloaded, FetchOptions, Mirror};
use crate::mirror::index::{self, id_order, Index, INDEX_FILE, MAX_INDEX_LEN, SIG_FILE};
use crate::mirror::sign::{PublicKey, MAX_SIG_LEN};

/// The host configuration file, relative to the root.
pub const CONF_FILE: &str = "etc/sysup.conf";
/// The public key used when neither `--pubkey` nor the config names one,
/// relative to the root.
pub const DEFAULT_PUBKEY: &str = "etc/sysup/minisign.pub";
/// The last accepted INDEX serial of one signing key is
/// `<SERIAL_FILE>.<key id>`, relative to the state directory; `SERIAL_FILE`
/// itself is the one record (whatever the key) of older versions, taken as
/// the configured key's and moved to its record on the next accepted INDEX.
pub const SERIAL_FILE: &str = "mirror/serial";

/// The `[mirror]` table of `<root>/etc/sysup.conf`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MirrorConf {
    /// Base URL of the mirror (`http://` or `https://`).
    pub url: Option<String>,
    /// Public key file, a path inside the root.
    pub pubkey: Option<PathBuf>,
    /// Retries per file after the first attempt.
    pub retries: Option<u32>,
    /// Seconds a connection or a read may stall before the attempt fails.
    pub timeout: Option<u64>,
    /// Bytes per second a download must bring over `speed-time` (0: off).
    pub speed_limit: Option<u64>,
    /// Seconds of the window of `speed-limit`.
    pub speed_time: Option<u64>,
    /// Seconds one file may take to download, retries included.
    pub deadline: Option<u64>,
}

/// Read the `[mirror]` table of `<root>/etc/sysup.conf` (empty when the file
/// or the table is missing). Other tables are left to their commands, but
/// unknown keys inside `[mirror]` are an error. Read-only.
pub fn read_conf(root: &Path) -> Result<MirrorConf> {
    let p = root.join(CONF_FILE);
    let text = match fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(MirrorConf::default()),
        Err(e) => return Err(Error::io("read", &p, e)),
    };
    let bad = |reason: String| Error::Metadata {
        what: "configuration",
        path: p.clone(),
        reason,
    };
    let table: toml::Table = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    match table.get("mirror") {
        None => Ok(MirrorConf::default()),
        Some(v) => v
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| bad(format!("[mirror]: {}", e.message()))),
    }
}

/// The root-relative form of a path from the config, which names a file
/// inside the root (a leading `/` is the root's). `None` when it is empty or
/// has a `..`, which could only climb out of the root or be a mistake.
fn in_root(p: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut rel = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => rel.push(n),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (!rel.as_os_str().is_empty()).then_some(rel)
}

/// Open the key file `rel` (root-relative) of the root at `root`: its
/// directory resolved inside the root (links followed, but never out of
/// it), the file itself opened without following a link. `Ok(None)` when
/// it does not exist.
fn open_in_root(root: &Path, rel: &Path) -> Result<Option<fs::File>> {
    use std::os::unix::ffi::OsStrExt;
    let shown = root.join(rel);
    let r = Root::open(root).ctx("open root", root)?;
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel
        .file_name()
        .expect("in_root gives a file name")
        .as_bytes();
    let dir = match r.resolve_dir(parent.as_os_str().as_bytes()) {
        Ok(d) => d,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(Error::io("open directory", root.join(parent), e)),
    };
    match dir.stat(name).ctx("stat", &shown)? {
        None => Ok(None),
        Some(st) if st.is_symlink() => Err(Error::Refused(format!(
            "public key '{}' is a symbolic link: sysup reads the key only from a regular file \
             inside the root (name the file itself, or pass --pubkey FILE)",
            shown.display()
        ))),
        Some(st) if !st.is_file() => Err(Error::Refused(format!(
            "public key '{}' is not a regular file",
            shown.display()
        ))),
        Some(_) => dir.open_file(name).ctx("open", &shown).map(Some),
    }
}

/// The public key of an update: `--pubkey` (a host path, the admin's
/// choice), else the config's `pubkey`, else [`DEFAULT_PUBKEY`], both read
/// inside the root. Returns the key and the path it is shown by.
fn read_pubkey(
    root: &Path,
    cli: Option<&Path>,
    conf: Option<&Path>,
) -> Result<(PublicKey, PathBuf)> {
    if let Some(p) = cli {
        return Ok((PublicKey::read(p)?, p.to_path_buf()));
    }
    let rel = match conf {
        Some(p) => in_root(p).ok_or_else(|| {
            Error::Refused(format!(
                "pubkey '{}' in the [mirror] table of {} must name a file inside the root \
                 without '..' (e.g. \"/etc/sysup/minisign.pub\", which is <root>/etc/sysup/…)",
                p.display(),
                root.join(CONF_FILE).display()
            ))
        })?,
        None => PathBuf::from(DEFAULT_PUBKEY),
    };
    let shown = root.join(&rel);
    match open_in_root(root, &rel)? {
        Some(f) => Ok((PublicKey::read_from(f, &shown)?, shown)),
        None if conf.is_some() => Err(Error::io(
            "open",
            &shown,
            io::Error::from(io::ErrorKind::NotFound),
        )),
        None => Err(Error::Refused(format!(
            "no public key to check the mirror's INDEX with: pass --pubkey FILE, set pubkey in \
             the [mirror] table of {}, or install it as {}",
            root.join(CONF_FILE).display(),
            shown.display()
        ))),
    }
}

/// Knobs of [`update`] (command-line values; `None` falls back to the config).
#[derive(Clone, Debug, Default)]
pub struct UpdateOptions {
    pub root: PathBuf,
    pub mirror: Option<String>,
    /// Update this name to this id (default: every installed name to its newest).
    pub to: Option<DistId>,
    pub pubkey: Option<PathBuf>,
    pub download_only: bool,
    /// Plan and tell what would be fetched and installed; fetch, record
    /// and apply nothing.
    pub dry_run: bool,
    pub allow_downgrade: bool,
    pub retries: Option<u32>,
    /// Seconds (connect and per-read).
    pub timeout: Option<u64>,
    /// First retry's wait (tests shorten it).
    pub backoff: Option<std::time::Duration>,
}

/// One file of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// `dist` or `patch`.
    pub kind: &'static str,
    pub file: String,
    pub size: u64,
    #[serde(serialize_with = "crate::util::digest::hex32")]
    pub sha256: [u8; 32],
    pub from: Option<DistId>,
    pub to: DistId,
}

/// What to fetch for one dist name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub name: DistName,
    pub installed: Option<DistId>,
    pub target: DistId,
    /// `patches`, `dist`, `up-to-date`, or `not-on-mirror`.
    pub how: &'static str,
    pub steps: Vec<Step>,
    /// Bytes of the steps.
    pub bytes: u64,
    /// Size of the target's full dist, when the mirror has it.
    pub dist_size: Option<u64>,
    /// Bytes of the cheapest patch chain, when there is one.
    pub chain_size: Option<u64>,
}

/// Node of the chain search: an id and the SHA-256 of its uncompressed tar.
type Node = (DistId, [u8; 32]);
/// Best known (bytes, steps) to a node, and the node and patch it came by.
type Best = (u64, usize, Option<(Node, usize)>);

/// Cheapest patch chain (bytes, then steps) from `start` to a node with id
/// `target` (and tar SHA-256 `target_sha`, when known). Dijkstra over the
/// INDEX's patches of that name and arch.
fn cheapest_chain<'a>(
    index: &'a Index,
    arch: &str,
    start: &Node,
    target: &DistId,
    target_sha: Option<&[u8; 32]>,
) -> Option<Vec<&'a index::PatchEntry>> {
    let mut edges: HashMap<Node, Vec<usize>> = HashMap::new();
    for (i, p) in index.patches.iter().enumerate() {
        if p.arch == arch && p.name.from.name == target.name {
            edges
                .entry((p.name.from.clone(), p.from.sha256))
                .or_default()
                .push(i);
        }
    }
    let mut best: HashMap<Node, Best> = HashMap::new();
    let mut heap = BinaryHeap::new();
    best.insert(start.clone(), (0, 0, None));
    heap.push(Reverse((0u64, 0usize, start.clone())));
    while let Some(Reverse((cost, steps, node))) = heap.pop() {
        if best.get(&node).is_some_and(|b| (b.0, b.1) < (cost, steps)) {
            continue;
        }
        if &node.0 == target && target_sha.is_none_or(|s| s == &node.1) && steps > 0 {
            let mut chain = Vec::new();
            let mut at = node;
            while let Some((_, _, Some((prev, i)))) = best.get(&at).cloned() {
                chain.push(&index.patches[i]);
                at = prev;
            }
            chain.reverse();
            return Some(chain);
        }
        for &i in edges.get(&node).map(Vec::as_slice).unwrap_or(&[]) {
            let p = &index.patches[i];
            let next: Node = (p.name.to.clone(), p.to.sha256);
            let cand = (cost.saturating_add(p.size), steps + 1);
            if best.get(&next).is_none_or(|b| cand < (b.0, b.1)) {
                best.insert(next.clone(), (cand.0, cand.1, Some((node.clone(), i))));
                heap.push(Reverse((cand.0, cand.1, next)));
            }
        }
    }
    None
}

/// Plan the update of `name` from what is `installed` to `to` (default: the
/// newest the INDEX has for the installed arch). Pure: reads nothing else.
pub fn plan(
    index: &Index,
    name: &DistName,
    installed: Option<&Installed>,
    to: Option<&DistId>,
) -> Result<Plan> {
    let arch = match (installed, to) {
        (Some(i), _) => i.arch.clone(),
        (None, Some(t)) => index.dist(t).map(|d| d.arch.clone()).ok_or_else(|| {
            Error::Refused(format!(
                "nothing of {name} is installed and the mirror has no full dist of {t} \
                     to start from"
            ))
        })?,
        (None, None) => {
            return Err(Error::Refused(format!(
                "nothing of {name} is installed: pass --to ID for a first install"
            )))
        }
    };
    let mut p = Plan {
        name: name.clone(),
        installed: installed.map(|i| i.id.clone()),
        target: installed.map_or_else(|| to.cloned().expect("checked above"), |i| i.id.clone()),
        how: "up-to-date",
        steps: Vec::new(),
        bytes: 0,
        dist_size: None,
        chain_size: None,
    };
    let target = match to {
        Some(t) => t.clone(),
        None => match index.newest(name, &arch) {
            Some(t) => t,
            None => {
                p.how = "not-on-mirror";
                return Ok(p);
            }
        },
    };
    if let Some(i) = installed {
        // Never go back unasked; a mirror behind this host is not news.
        let behind = to.is_none() && id_order(&target, &i.id) != std::cmp::Ordering::Greater;
        if i.id == target || behind {
            return Ok(p);
        }
    }
    p.target = target.clone();
    let dist = index.dist(&target);
    if let Some(d) = dist {
        if d.arch != arch {
            return Err(Error::Mismatch(format!(
                "{target} is built for {}, but {name} here is {arch}",
                d.arch
            )));
        }
    }
    p.dist_size = dist.map(|d| d.size);
    let chain = installed.and_then(|i| {
        cheapest_chain(
            index,
            &arch,
            &(i.id.clone(), i.tar.sha256),
            &target,
            dist.map(|d| &d.tar.sha256),
        )
    });
    p.chain_size = chain.as_ref().map(|c| c.iter().map(|s| s.size).sum());
    let chain_wins = match (&p.chain_size, dist) {
        (Some(c), Some(d)) => *c < d.size,
        (Some(_), None) => true,
        (None, _) => false,
    };
    match (chain.filter(|_| chain_wins), dist) {
        (Some(c), _) => {
            p.how = "patches";
            p.steps = c
                .into_iter()
                .map(|s| Step {
                    kind: "patch",
                    file: s.file(),
                    size: s.size,
                    sha256: s.sha256,
                    from: Some(s.name.from.clone()),
                    to: s.name.to.clone(),
                })
                .collect();
        }
        (_, Some(d)) => {
            p.how = "dist";
            p.steps = vec![Step {
                kind: "dist",
                file: d.file(),
                size: d.size,
                sha256: d.sha256,
                from: None,
                to: d.id.clone(),
            }];
        }
        (None, None) => {
            return Err(Error::Refused(format!(
                "the mirror has no way from {} to {target}: no full dist of {target} for {arch} \
                 and no chain of patches from the installed tar",
                p.installed
                    .as_ref()
                    .map_or("nothing".to_string(), |i| i.to_string()),
            )))
        }
    }
    p.bytes = p.steps.iter().map(|s| s.size).sum();
    Ok(p)
}

/// The name, inside `mirror/`, of the record of serials accepted from the
/// key `key_id`.
fn serial_name(key_id: &str) -> String {
    format!("serial.{key_id}")
}

/// The last INDEX serial this host accepted from the key `key_id`, and
/// whether it comes from the single record of an older version (which
/// stands for whatever key is configured now, until it is moved). Read-only.
pub fn accepted_serial(state: &State, key_id: &str) -> Result<(Option<u64>, bool)> {
    // through the state's descriptors, never a link (state.rs)
    let Some(dir) = state.mirror_dir(false)? else {
        return Ok((None, false));
    };
    match read_serial(state, &dir, &serial_name(key_id))? {
        Some(s) => Ok((Some(s), false)),
        None => Ok((read_serial(state, &dir, "serial")?, true)),
    }
}

/// One serial record, `name` in `mirror/`. Read-only.
fn read_serial(state: &State, dir: &crate::host::root::Dir, name: &str) -> Result<Option<u64>> {
    let p = state.dir().join("mirror").join(name);
    let read = dir.open_file(name.as_bytes()).and_then(|mut f| {
        let mut t = String::new();
        io::Read::read_to_string(&mut f, &mut t).map(|_| t)
    });
    match read {
        Ok(t) => t.trim().parse().map(Some).map_err(|_| Error::Metadata {
            what: "serial record",
            path: p,
            reason: format!(
                "'{}' is not a number; remove the file to trust the next INDEX",
                t.trim()
            ),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(Error::Refused(format!(
            "'{}' is a symbolic link: sysup's own state is never reached through a link; \
             remove it and run again",
            p.display()
        ))),
        Err(e) => Err(Error::io("read", &p, e)),
    }
}

/// Record `serial` as accepted from the key `key_id`; with `drop_legacy`
/// (the key's previous serial came from it), then remove the single record
/// of an older version, now that the key's own holds the newer one.
/// Writes `mirror/serial.<key id>` atomically (0600), through the state's
/// descriptors; may remove `mirror/serial`.
fn record_serial(state: &State, key_id: &str, serial: u64, drop_legacy: bool) -> Result<()> {
    let dir = state.mirror_dir(true)?.expect("created");
    let shown = state.dir().join("mirror");
    crate::host::state::write_atomic_at(
        &dir,
        &shown,
        &serial_name(key_id),
        format!("{serial}\n").as_bytes(),
        0o600,
    )?;
    if !drop_legacy {
        return Ok(());
    }
    match dir.unlink(b"serial") {
        Ok(()) => dir.sync().map_err(|e| Error::io("sync", &shown, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", shown.join("serial"), e)),
    }
}

/// Check a downloaded patch's header against its signed INDEX entry: the
/// plan followed the entry, the apply would follow the header. On a
/// mismatch the file is deleted. Read-only otherwise.
fn check_patch_header(entry: &index::PatchEntry, path: &Path, url: &str) -> Result<()> {
    let h = match PatchHeader::read_file(path) {
        Ok(h) => h,
        Err(e) => {
            let _ = fs::remove_file(path);
            return Err(e);
        }
    };
    let (hf, ht, ef, et) = (&h.from.tar, &h.to.tar, &entry.from, &entry.to);
    let fields: [(&str, String, String); 9] = [
        ("from", h.from.id.to_string(), entry.name.from.to_string()),
        ("to", h.to.id.to_string(), entry.name.to.to_string()),
        ("name", h.name.to_string(), entry.name.to_string()),
        ("from-size", hf.size.to_string(), ef.size.to_string()),
        ("from-md5", hf.md5_hex(), ef.md5_hex()),
        ("from-sha256", hf.sha256_hex(), ef.sha256_hex()),
        ("to-size", ht.size.to_string(), et.size.to_string()),
        ("to-md5", ht.md5_hex(), et.md5_hex()),
        ("to-sha256", ht.sha256_hex(), et.sha256_hex()),
    ];
    match fields.into_iter().find(|(_, got, want)| got != want) {
        None => Ok(()),
        Some((field, got, want)) => {
            fs::remove_file(path).ctx("remove", path)?;
            Err(Error::Refused(format!(
                "'{url}' does not match its signed INDEX entry: the patch's header says \
                 {field} {got}, the INDEX says {field} {want}; it would not lead where the \
                 INDEX says (deleted; nothing was applied)"
            )))
        }
    }
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
pub fn update(
    opts: &UpdateOptions,
    progress: &crate::util::progress::Progress,
) -> Result<UpdateReport> {
    let root = &opts.root;
    let conf = read_conf(root)?;
    let url = opts.mirror.clone().or(conf.url).ok_or_else(|| {
        Error::Refused(format!(
            "no mirror: pass --mirror URL or set url in the [mirror] table of {}",
            root.join(CONF_FILE).display()
        ))
    })?;
    let (pk, pubkey_path) = read_pubkey(root, opts.pubkey.as_deref(), conf.pubkey.as_deref())?;
    let mut fopts = FetchOptions::default();
    if let Some(r) = opts.retries.or(conf.retries) {
        fopts.retries = r;
    }
    if let Some(t) = opts.timeout.or(conf.timeout) {
        fopts.connect_timeout = std::time::Duration::from_secs(t.max(1));
        fopts.read_timeout = std::time::Duration::from_secs(t.max(1));
    }
    if let Some(b) = opts.backoff {
        fopts.backoff = b;
    }
    let zero = |key: &str| {
        Error::Refused(format!(
            "{key} = 0 in the [mirror] table of {} cannot be met: give a number of seconds \
             (for no speed limit, set speed-limit = 0)",
            root.join(CONF_FILE).display()
        ))
    };
    if let Some(l) = conf.speed_limit {
        fopts.speed_limit = l;
    }
    match conf.speed_time {
        Some(0) => return Err(zero("speed-time")),
        Some(t) => fopts.speed_time = std::time::Duration::from_secs(t),
        None => {}
    }
    match conf.deadline {
        Some(0) => return Err(zero("deadline")),
        Some(d) => fopts.deadline = std::time::Duration::from_secs(d),
        None => {}
    }
    let mirror = Mirror::new(&url, fopts)?;

    let state = State::open(root)?;
    let lock = state.lock()?;
    // An interrupted apply goes forward to its target first, and is said.
    let finished_interrupted = if opts.dry_run {
        // Told against what is installed now: an apply still pending would
        // change that first, so it is finished first, for real.
        if let Some(p) = crate::host::pending::pending(&state, root)? {
            return Err(Error::Refused(format!(
                "an interrupted apply to {} is pending: finish it first (`{}`, or `sysup \
                 update` without --dry-run), then run the dry run again",
                p.target, p.command
            )));
        }
        None
    } else {
        crate::host::apply::finish_interrupted(state.root(), &lock)?
    };

    // 2. Signed INDEX: verify before parsing.
    let index_url = PathBuf::from(mirror.url(INDEX_FILE));
    let sig_url = PathBuf::from(mirror.url(SIG_FILE));
    let index_bytes = mirror
        .fetch_small(INDEX_FILE, MAX_INDEX_LEN)?
        .ok_or_else(|| {
            Error::Refused(format!(
                "the mirror has no INDEX at {}",
                index_url.display()
            ))
        })?;
    let sig = mirror.fetch_small(SIG_FILE, MAX_SIG_LEN)?.ok_or_else(|| {
        Error::Refused(format!(
            "the mirror has no signature at {}: an unsigned INDEX is never used",
            sig_url.display()
        ))
    })?;
    pk.verify(&index_bytes, &sig, &sig_url)?;
    let index = Index::parse(&index_bytes, &index_url)?;

    // 3. Serial: no going back unasked, within this key's numbering.
    let key_id = pk.key_id().to_string();
    let (previous_serial, legacy) = accepted_serial(&state, &key_id)?;
    if let Some(prev) = previous_serial {
        if index.serial < prev && !opts.allow_downgrade {
            return Err(Error::Refused(format!(
                "the mirror's INDEX has serial {}, lower than serial {prev} this host already \
                 accepted from key {key_id}: the mirror is stale, or replays an old INDEX to \
                 hold this host back; refused (pass --allow-downgrade if the publisher really \
                 went back)",
                index.serial
            )));
        }
    }
    if (previous_serial != Some(index.serial) || legacy) && !opts.dry_run {
        record_serial(&state, &key_id, index.serial, legacy)?;
    }

    // 4. Plans.
    let mut plans = Vec::new();
    match &opts.to {
        Some(to) => plans.push(plan(
            &index,
            &to.name,
            state.installed(&to.name)?.as_ref(),
            Some(to),
        )?),
        None => {
            let installed = state.installed_all()?;
            if installed.is_empty() {
                return Err(Error::Refused(format!(
                    "nothing is installed in {}: pass --to ID for a first install",
                    state.root().display()
                )));
            }
            for i in &installed {
                plans.push(plan(&index, &i.id.name, Some(i), None)?);
            }
        }
    }

    // 5. Downloads, in the download directory reached through its
    // descriptor (`/proc/self/fd/N`); reports name it by its path.
    let dl_dir = state.download_fd_path();
    let steps: Vec<Step> = plans.iter().flat_map(|p| p.steps.clone()).collect();
    let mut report = UpdateReport {
        root: state.root().to_path_buf(),
        mirror: mirror.base().to_string(),
        pubkey: pubkey_path,
        key_id,
        serial: index.serial,
        previous_serial,
        index_timestamp: index.timestamp,
        plans,
        downloads: Vec::new(),
        fetched_bytes: 0,
        applied: Vec::new(),
        dry_run: opts.dry_run,
        result: "up-to-date",
        finished_interrupted,
    };
    if opts.dry_run {
        for s in &steps {
            let mut d = fetch::foretell(&dl_dir, &s.file, s.size, &s.sha256)?;
            d.path = state.download_dir().join(&s.file);
            report.downloads.push(d);
        }
        report.fetched_bytes = report.downloads.iter().map(|d| d.fetched).sum();
        if !steps.is_empty() {
            report.result = "would-apply";
        }
        return Ok(report);
    }
    fetch::prune_partials(&dl_dir, &steps.iter().map(|s| s.sha256).collect::<Vec<_>>())?;
    prune_finished(&dl_dir, &steps)?;
    check_space(&dl_dir, &state.download_dir(), &steps)?;
    for s in &steps {
        let mut d = mirror.download(&s.file, s.size, &s.sha256, &dl_dir, progress)?;
        d.path = state.download_dir().join(&s.file);
        if let Some(entry) = index.patches.iter().find(|p| p.file() == s.file) {
            check_patch_header(entry, &dl_dir.join(&s.file), &mirror.url(&s.file))?;
        }
        report.downloads.push(d);
    }
    report.fetched_bytes = report.downloads.iter().map(|d| d.fetched).sum();
    if steps.is_empty() {
        return Ok(report);
    }
    if opts.download_only {
        report.result = "downloaded";
        return Ok(report);
    }

    // (tests: a pause here shows the lock is still held)
    fault("update-before-apply").ctx("apply the update to", state.root())?;
    // 6. Apply, one name at a time, then drop what was applied.
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
            .push(apply_files(state.root(), &files, progress, &lock)?);
        checkpoint("update-applied");
        for (s, f) in p.steps.iter().zip(&files) {
            state
                .download_fd()
                .unlink(s.file.as_bytes())
                .map_err(|e| Error::io("remove", f, e))?;
        }
    }
    report.result = "applied";
    Ok(report)
}

/// Remove finished downloads that no step of this update needs: an update
/// killed between its apply and their removal leaves them, and the next one
/// finds the host up to date.
/// Writes: removes `*.tar.gz` and `*.patch` files in `dir`.
fn prune_finished(dir: &Path, steps: &[Step]) -> Result<()> {
    for e in fs::read_dir(dir).ctx("list", dir)? {
        let e = e.ctx("list", dir)?;
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = name.ends_with(".tar.gz") || name.ends_with(crate::format::name::PATCH_SUFFIX);
        if ours && !steps.iter().any(|s| s.file == name) {
            fs::remove_file(e.path()).ctx("remove", e.path())?;
        }
    }
    Ok(())
}

/// Refuse before downloading when the download directory's filesystem
/// cannot hold what is still to fetch.
/// (`shown` names `dir` in the message.)
fn check_space(dir: &Path, shown: &Path, steps: &[Step]) -> Result<()> {
    let mut need = 0u64;
    for s in steps {
        let have = fs::metadata(dir.join(&s.file))
            .or_else(|_| fs::metadata(dir.join(format!("{}.partial", hex::encode(s.sha256)))))
            .map_or(0, |m| m.len().min(s.size));
        need += s.size - have;
    }
    let free = crate::util::fsutil::free_bytes(dir)?;
    if need > free {
        return Err(Error::Refused(format!(
            "the update needs {need} more bytes in {}, which has {free} free; nothing was \
             downloaded",
            shown.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::index::{DistEntry, PatchEntry};
    use crate::util::digest::Digests;

    fn tar(id: &str) -> Digests {
        Digests::of(id.as_bytes())
    }
    fn dist(id: &str, size: u64) -> DistEntry {
        DistEntry {
            id: id.parse().unwrap(),
            arch: "x86_64".into(),
            size,
            sha256: [0; 32],
            tar: tar(id),
        }
    }
    fn patch(from: &str, to: &str, size: u64) -> PatchEntry {
        let from_id: DistId = format!("world-{from}").parse().unwrap();
        let to_id: DistId = format!("world-{to}").parse().unwrap();
        PatchEntry {
            name: crate::format::name::PatchName::new(from_id.clone(), to_id.clone()).unwrap(),
            arch: "x86_64".into(),
            size,
            sha256: [1; 32],
            from: tar(&from_id.to_string()),
            to: tar(&to_id.to_string()),
        }
    }
    fn installed(id: &str) -> Installed {
        Installed {
            id: id.parse().unwrap(),
            arch: "x86_64".into(),
            installed_at: 0,
            tar: tar(id),
            base_size: 0,
        }
    }
    fn index(dists: Vec<DistEntry>, mut patches: Vec<PatchEntry>) -> Index {
        patches.sort_by_key(|p| p.file());
        Index {
            serial: 1,
            timestamp: 1,
            dists,
            patches,
        }
    }
    fn files(p: &Plan) -> Vec<&str> {
        p.steps.iter().map(|s| s.file.as_str()).collect()
    }

    #[test]
    fn picks_the_cheapest_chain_or_the_dist() {
        let i = index(
            vec![dist("world-4-20260104", 1000)],
            vec![
                patch("1-20260101", "2-20260102", 100),
                patch("2-20260102", "3-20260103", 100),
                patch("3-20260103", "4-20260104", 100),
                patch("1-20260101", "3-20260103", 150),
                patch("2-20260102", "4-20260104", 900),
            ],
        );
        let w = DistName::World;
        let p = plan(&i, &w, Some(&installed("world-1-20260101")), None).unwrap();
        assert_eq!(p.how, "patches");
        assert_eq!(
            files(&p),
            [
                "world-1-20260101_3-20260103.patch",
                "world-3-20260103_4-20260104.patch"
            ]
        );
        assert_eq!(p.bytes, 250);
        // a chain dearer than the dist loses
        let i2 = index(vec![dist("world-4-20260104", 200)], i.patches.clone());
        let p = plan(&i2, &w, Some(&installed("world-1-20260101")), None).unwrap();
        assert_eq!(
            (p.how, files(&p)),
            ("dist", vec!["world-4-20260104.tar.gz"])
        );
        // no chain from an id the patches do not start at
        let p = plan(&i, &w, Some(&installed("world-0-20251231")), None).unwrap();
        assert_eq!(p.how, "dist");
    }

    #[test]
    fn a_chain_must_start_at_the_installed_tar() {
        let i = index(vec![], vec![patch("1-20260101", "2-20260102", 10)]);
        let mut inst = installed("world-1-20260101");
        inst.tar = tar("another build");
        let e = plan(&i, &DistName::World, Some(&inst), None).unwrap_err();
        assert!(
            e.to_string().contains("no way from world-1-20260101"),
            "{e}"
        );
    }

    #[test]
    fn up_to_date_and_never_backwards_unasked() {
        let i = index(vec![dist("world-2-20260102", 10)], vec![]);
        let w = DistName::World;
        let p = plan(&i, &w, Some(&installed("world-2-20260102")), None).unwrap();
        assert_eq!(p.how, "up-to-date");
        let p = plan(&i, &w, Some(&installed("world-3-20260103")), None).unwrap();
        assert_eq!(p.how, "up-to-date");
        let to: DistId = "world-2-20260102".parse().unwrap();
        let p = plan(&i, &w, Some(&installed("world-3-20260103")), Some(&to)).unwrap();
        assert_eq!(p.how, "dist");
        let e = plan(&i, &w, None, None).unwrap_err().to_string();
        assert!(e.contains("--to"), "{e}");
        let p = plan(&i, &w, None, Some(&to)).unwrap();
        assert_eq!(p.how, "dist");
    }

    #[test]
    fn conf_reads_the_mirror_table_only() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_conf(d.path()).unwrap(), MirrorConf::default());
        fs::create_dir(d.path().join("etc")).unwrap();
        fs::write(
            d.path().join(CONF_FILE),
            "[mirror]\nurl = \"http://m/\"\npubkey = \"/etc/k.pub\"\n[clean]\nkeep = 3\n",
        )
        .unwrap();
        let c = read_conf(d.path()).unwrap();
        assert_eq!(c.url.as_deref(), Some("http://m/"));
        assert_eq!(
            in_root(c.pubkey.as_ref().unwrap()),
            Some(PathBuf::from("etc/k.pub"))
        );
        for bad in ["../../x", "/../x", "etc/../../x", "", "/"] {
            assert_eq!(in_root(Path::new(bad)), None, "{bad}");
        }
        assert_eq!(in_root(Path::new("./k")), Some(PathBuf::from("k")));
        fs::write(
            d.path().join(CONF_FILE),
            "[mirror]\nurl = \"x\"\nbogus = 1\n",
        )
        .unwrap();
        let e = read_conf(d.path()).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
    }
}
