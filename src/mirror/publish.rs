//! `sysup publish` (build host, docs/design.md §6): make a directory of dists and
//! patches a mirror — scan it, make the patches `--make-patches` asks for,
//! take every file's size and SHA-256 (and a dist's tar digests, or a
//! patch's from its header), and write the [`Index`] and its minisign
//! signature.
//!
//! Invariants:
//! - every file is written under a temporary name and renamed, `INDEX` last
//!   but for its signature, and the INDEX is signed before anything is
//!   renamed, so a bad key leaves the directory as it was;
//! - the serial of a new INDEX is always greater than that of the INDEX it
//!   replaces;
//! - a dist's tar digests are reused from the previous INDEX only when the
//!   compressed file is byte-identical (same size and SHA-256); a patch must
//!   agree with the dists it joins that the directory holds.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::diff;
use crate::error::{Error, IoContext, Result};
use crate::format::name::{DistId, DistName, PatchName, DIST_SUFFIX, PATCH_SUFFIX};
use crate::format::patch::PatchHeader;
use crate::mirror::index::{
    arch, id_order, DistEntry, Index, PatchEntry, INDEX_FILE, MAX_ENTRIES, MAX_INDEX_LEN,
};
use crate::mirror::sign::{SecretKey, SIG_FILE};
use crate::util::digest::{file_sha256, Digests, HashingWriter, Sha256Reader};
use crate::util::fsutil::write_atomic;

/// Knobs of [`publish`].
#[derive(Clone, Debug, Default)]
pub struct PublishOptions {
    /// Make missing patches from each of the K previous dists of every name
    /// to its newest.
    pub make_patches: usize,
    /// Diff settings for the patches made.
    pub diff: diff::DiffOptions,
    /// Sign with this minisign secret key, writing [`SIG_FILE`].
    pub sign: Option<SecretKey>,
    /// Unix time to stamp (default: now).
    pub now: Option<u64>,
    /// Seconds after the timestamp from which hosts refuse the INDEX
    /// (`--expires`); `None`: it never expires.
    pub expires_in: Option<u64>,
}

/// What [`publish`] did.
#[derive(Clone, Debug, Serialize)]
pub struct PublishReport {
    pub dir: PathBuf,
    pub index: PathBuf,
    pub signature: Option<PathBuf>,
    pub serial: u64,
    pub previous_serial: Option<u64>,
    pub timestamp: u64,
    /// When hosts start refusing the INDEX (`--expires`), or `None`.
    pub expires: Option<u64>,
    pub dists: usize,
    pub patches: usize,
    /// Patches made by `--make-patches`.
    pub made: Vec<PathBuf>,
    /// Dists whose uncompressed digests were taken from the previous INDEX
    /// (same file name, size and SHA-256), not recomputed.
    pub reused: usize,
}

/// Seconds of a duration as `--expires` takes it: a whole number and a unit,
/// `s`, `m`, `h`, `d` or `w` (`12h`, `7d`); the reason when it is not one.
pub fn parse_duration(s: &str) -> std::result::Result<u64, String> {
    let bad = || {
        format!("'{s}' is not a duration: a whole number and a unit s, m, h, d or w (e.g. 7d, 12h)")
    };
    let unit = s.chars().last().ok_or_else(bad)?;
    let per = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return Err(bad()),
    };
    let digits = &s[..s.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    match n.checked_mul(per) {
        Some(0) => Err(format!(
            "'{s}' is no time at all: an INDEX must live a while"
        )),
        Some(secs) => Ok(secs),
        None => Err(format!("'{s}' is too long")),
    }
}

fn now_unix() -> u64 {
    crate::util::time::unix_now().unsigned_abs()
}

/// Size and SHA-256 of a `.tar.gz` and the digests of the tar inside, in one
/// pass. Refuses bytes after the gzip member: every tool must read the same tar.
fn dist_digests(path: &Path) -> Result<(u64, [u8; 32], Digests)> {
    let f = File::open(path).ctx("open", path)?;
    let r = Sha256Reader::new(BufReader::with_capacity(1 << 20, f));
    let mut gz = flate2::read::GzDecoder::new(r);
    let mut w = HashingWriter::new(io::sink());
    io::copy(&mut gz, &mut w).map_err(|e| Error::Tar {
        path: path.to_path_buf(),
        reason: format!("gunzip failed: {e}"),
    })?;
    let (tar, _) = w.finish();
    let mut r = gz.into_inner();
    let before = r.position();
    io::copy(&mut r, &mut io::sink()).ctx("read", path)?;
    if r.position() != before {
        return Err(Error::Tar {
            path: path.to_path_buf(),
            reason: format!("{} bytes follow the gzip stream", r.position() - before),
        });
    }
    let (size, sha256) = r.finish();
    Ok((size, sha256, tar))
}

/// The dists and patches of a directory, by file name.
struct Listing {
    dists: BTreeMap<String, PathBuf>,
    patches: BTreeMap<String, PathBuf>,
}

fn list_dir(dir: &Path) -> Result<Listing> {
    let mut l = Listing {
        dists: BTreeMap::new(),
        patches: BTreeMap::new(),
    };
    for e in std::fs::read_dir(dir).ctx("list", dir)? {
        let e = e.ctx("list", dir)?;
        let Some(file) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if file.starts_with('.') {
            continue; // temporary files of an atomic write
        }
        let ft = e.file_type().ctx("stat", e.path())?;
        if !(ft.is_file() || ft.is_symlink()) {
            continue;
        }
        if file.ends_with(DIST_SUFFIX) {
            DistId::from_file_name(&file)?;
            l.dists.insert(file, e.path());
        } else if file.ends_with(PATCH_SUFFIX) {
            PatchName::from_file_name(&file)?;
            l.patches.insert(file, e.path());
        }
    }
    Ok(l)
}

/// Read the INDEX already in `dir`, if any.
fn previous_index(dir: &Path) -> Result<Option<Index>> {
    let p = dir.join(INDEX_FILE);
    let f = match File::open(&p) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", &p, e)),
    };
    let mut b = Vec::new();
    f.take(MAX_INDEX_LEN + 1)
        .read_to_end(&mut b)
        .ctx("read", &p)?;
    Index::parse(&b, &p).map(Some)
}

/// Make the patches `--make-patches K` asks for: from each of the K dists
/// before the newest of every name to that newest, when missing.
fn make_patches(dir: &Path, listing: &Listing, opts: &PublishOptions) -> Result<Vec<PathBuf>> {
    let mut by_name: BTreeMap<DistName, Vec<DistId>> = BTreeMap::new();
    for f in listing.dists.keys() {
        let id = DistId::from_file_name(f)?;
        by_name.entry(id.name.clone()).or_default().push(id);
    }
    let mut made = Vec::new();
    for ids in by_name.values_mut() {
        ids.sort_by(id_order);
        let Some((newest, older)) = ids.split_last() else {
            continue;
        };
        for prev in older.iter().rev().take(opts.make_patches) {
            let name = PatchName::new(prev.clone(), newest.clone())?;
            if listing.patches.contains_key(&name.file_name()) {
                continue;
            }
            let r = diff::diff_dists(
                &listing.dists[&prev.file_name()],
                &listing.dists[&newest.file_name()],
                dir,
                &opts.diff,
            )?;
            made.push(r.patch);
        }
    }
    Ok(made)
}

/// Build the INDEX of `dir` (and its signature) and write them: INDEX under
/// a temporary name then renamed, then INDEX.minisig the same way.
///
/// The serial is `max(previous serial + 1, now)`: a Unix time while the clock
/// is right, and still growing when it is not or when two publishes fall in
/// one second. Writes: made patches, `INDEX`, `INDEX.minisig`.
pub fn publish(dir: &Path, opts: &PublishOptions) -> Result<PublishReport> {
    let previous = previous_index(dir)?;
    let mut listing = list_dir(dir)?;
    let made = if opts.make_patches > 0 {
        let made = make_patches(dir, &listing, opts)?;
        if !made.is_empty() {
            listing = list_dir(dir)?;
        }
        made
    } else {
        Vec::new()
    };
    let (dists, reused) = dist_entries(&listing, previous.as_ref())?;
    let patches = patch_entries(dir, &listing, &dists, previous.as_ref())?;
    if dists.len() + patches.len() > MAX_ENTRIES {
        return Err(Error::Refused(format!(
            "{} holds more than the {MAX_ENTRIES} entries an INDEX may list",
            dir.display()
        )));
    }
    let now = opts.now.unwrap_or_else(now_unix);
    let previous_serial = previous.as_ref().map(|i| i.serial);
    let serial = previous_serial.map_or(now, |s| now.max(s + 1)).max(1);
    let expires = match opts.expires_in {
        Some(0) => return Err(Error::Refused("--expires must be longer than 0".into())),
        Some(d) => Some(now.checked_add(d).ok_or_else(|| {
            Error::Refused(format!("--expires of {d} seconds is too far in the future"))
        })?),
        None => None,
    };
    let index = Index {
        serial,
        timestamp: now,
        expires,
        dists,
        patches,
    };
    let text = index.render();
    debug_assert!(
        matches!(Index::parse(text.as_bytes(), Path::new(INDEX_FILE)), Ok(ref i) if i == &index)
    );

    // Sign before anything is renamed: a bad key must leave the directory as it was.
    let sig = opts
        .sign
        .as_ref()
        .map(|k| k.sign(text.as_bytes(), serial))
        .transpose()?;
    let (index_path, signature) = write_index(dir, &text, sig)?;
    Ok(PublishReport {
        dir: dir.to_path_buf(),
        index: index_path,
        signature,
        serial,
        previous_serial,
        timestamp: now,
        expires,
        dists: index.dists.len(),
        patches: index.patches.len(),
        made,
        reused,
    })
}

/// The entries of the dists in `listing`, sorted by file name, and how many
/// of them took their tar digests from `previous`.
fn dist_entries(listing: &Listing, previous: Option<&Index>) -> Result<(Vec<DistEntry>, usize)> {
    let prev_dists: BTreeMap<String, &DistEntry> = previous
        .iter()
        .flat_map(|i| &i.dists)
        .map(|d| (d.file(), d))
        .collect();
    let dist_results: Vec<Result<(DistEntry, bool)>> = listing
        .dists
        .par_iter()
        .map(|(file, path)| dist_entry(path, prev_dists.get(file).copied()))
        .collect();
    let mut dists = Vec::new();
    let mut reused = 0;
    for r in dist_results {
        let (d, r) = r?;
        reused += usize::from(r);
        dists.push(d);
    }
    dists.sort_by_key(|d| d.file());
    Ok((dists, reused))
}

/// The entry of the dist at `path`: its DIST head gives id and arch; its
/// tar digests are `prev`'s (and `true`) when the compressed file is
/// byte-identical to the one `prev` lists, else computed.
fn dist_entry(path: &Path, prev: Option<&DistEntry>) -> Result<(DistEntry, bool)> {
    let meta = crate::format::dist::read_dist_metadata(path)?.meta;
    arch(&meta.arch).map_err(|r| Error::Metadata {
        what: "DIST",
        path: path.to_path_buf(),
        reason: r,
    })?;
    let (size, sha256) = file_sha256(path)?;
    if let Some(p) = prev {
        if p.size == size && p.sha256 == sha256 && p.arch == meta.arch {
            return Ok((p.clone(), true));
        }
    }
    let (size2, sha2, tar) = dist_digests(path)?;
    if (size2, sha2) != (size, sha256) {
        return Err(Error::Refused(format!(
            "'{}' changed while it was being read; publish again",
            path.display()
        )));
    }
    Ok((
        DistEntry {
            id: meta.id,
            arch: meta.arch,
            size,
            sha256,
            tar,
        },
        false,
    ))
}

/// The entries of the patches in `listing`, sorted by file name; `dists`
/// are the directory's dist entries.
fn patch_entries(
    dir: &Path,
    listing: &Listing,
    dists: &[DistEntry],
    previous: Option<&Index>,
) -> Result<Vec<PatchEntry>> {
    let prev_patches: BTreeMap<String, &PatchEntry> = previous
        .iter()
        .flat_map(|i| &i.patches)
        .map(|p| (p.file(), p))
        .collect();
    let patch_results: Vec<Result<PatchEntry>> = listing
        .patches
        .par_iter()
        .map(|(file, path)| patch_entry(dir, file, path, dists, prev_patches.get(file).copied()))
        .collect();
    let mut patches = patch_results.into_iter().collect::<Result<Vec<_>>>()?;
    patches.sort_by_key(|p| p.file());
    Ok(patches)
}

/// The entry of the patch `file` at `path`, checked against its header and
/// the dists it joins; `prev` is the previous INDEX's entry of that file.
fn patch_entry(
    dir: &Path,
    file: &str,
    path: &Path,
    dists: &[DistEntry],
    prev: Option<&PatchEntry>,
) -> Result<PatchEntry> {
    let h = PatchHeader::read_file(path)?;
    let named = PatchName::from_file_name(file)?;
    if h.name != named {
        return Err(Error::Mismatch(format!(
            "'{}' is named for {named} but its header says {}",
            path.display(),
            h.name
        )));
    }
    let (size, sha256) = file_sha256(path)?;
    // The patch must agree with the dists it joins, when they are here.
    for (side, id) in [(&h.from, &named.from), (&h.to, &named.to)] {
        if let Some(d) = dists.iter().find(|d| &d.id == id) {
            if d.tar != side.tar {
                return Err(Error::Mismatch(format!(
                    "'{}' was made for another build of {id} than '{}' (tar digests differ); \
                     remake the patch",
                    path.display(),
                    d.file()
                )));
            }
        }
    }
    let arch = patch_arch(
        dir,
        path,
        &named,
        dists,
        prev.filter(|p| p.sha256 == sha256),
    )?;
    Ok(PatchEntry {
        name: named,
        arch,
        size,
        sha256,
        from: h.from.tar,
        to: h.to.tar,
    })
}

/// The arch of the patch `named` (at `path`): that of a dist it joins, else
/// that of `prev` (the same file in the previous INDEX), else the one arch
/// of every dist of its name in the directory.
fn patch_arch(
    dir: &Path,
    path: &Path,
    named: &PatchName,
    dists: &[DistEntry],
    prev: Option<&PatchEntry>,
) -> Result<String> {
    [&named.to, &named.from]
        .iter()
        .find_map(|id| dists.iter().find(|d| &d.id == *id).map(|d| d.arch.clone()))
        .or_else(|| prev.map(|p| p.arch.clone()))
        .or_else(|| {
            // Every dist of that name here is of one arch: so is the patch.
            let mut archs = dists
                .iter()
                .filter(|d| d.id.name == named.from.name)
                .map(|d| &d.arch);
            let first = archs.next()?;
            archs.all(|a| a == first).then(|| first.clone())
        })
        .ok_or_else(|| {
            Error::Refused(format!(
                "cannot tell the arch of '{}': neither {} nor {} is in {}, nor \
                 another dist of that name",
                path.display(),
                named.from.file_name(),
                named.to.file_name(),
                dir.display()
            ))
        })
}

/// Write `text` as `dir/INDEX`, then `sig` as its signature — or, unsigned,
/// remove an old signature. Returns the paths written.
fn write_index(dir: &Path, text: &str, sig: Option<String>) -> Result<(PathBuf, Option<PathBuf>)> {
    let index_path = dir.join(INDEX_FILE);
    write_atomic(&index_path, text.as_bytes(), 0o644)?;
    let p = dir.join(SIG_FILE);
    let signature = match sig {
        Some(sig) => {
            write_atomic(&p, sig.as_bytes(), 0o644)?;
            Some(p)
        }
        None => {
            // An old signature beside a new INDEX would only fail later, on hosts.
            match std::fs::remove_file(&p) {
                Ok(()) => crate::util::fsutil::fsync_dir(dir)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", &p, e)),
            }
            None
        }
    };
    Ok((index_path, signature))
}
