//! The mirror's `INDEX` (DESIGN §6): what a publish directory holds — every
//! dist and patch with its file size and SHA-256, the size, MD5 and SHA-256
//! of the uncompressed tar it yields (and, for a patch, the tar it needs),
//! its ids and arch — under a format version, a serial that only grows, and
//! a timestamp. `docs/index-format.md` is the reference for the text.
//!
//! ```text
//! sysup-index 1
//! serial 1767398400
//! timestamp 1767398400
//! dist world-2-20260102.tar.gz id=world-2-20260102 arch=x86_64 size=… sha256=… tar-size=… tar-md5=… tar-sha256=…
//! patch world-1-20260101_2-20260102.patch from=world-1-20260101 to=world-2-20260102 arch=x86_64 size=… sha256=… from-size=… from-md5=… from-sha256=… to-size=… to-md5=… to-sha256=…
//! end 2
//! ```
//!
//! Invariants:
//! - [`Index::parse`] is strict (one spelling per value, fields in a fixed
//!   order, entries sorted and unique, an `end` line with the entry count),
//!   bounded ([`MAX_INDEX_LEN`] bytes, [`MAX_ENTRIES`] entries, [`MAX_LINE`]
//!   bytes per line) and never panics: every malformed input is an
//!   [`Error::Metadata`] naming the line;
//! - `parse(render(x)) == x` for every index this module builds;
//! - a file name in an INDEX is a bare dist or patch file name (no `/`), so
//!   joining it to a URL or a directory never leaves that directory;
//! - [`publish`] writes every file under a temporary name and renames it,
//!   `INDEX` last but for its signature, and the serial of a new INDEX is
//!   always greater than that of the INDEX it replaces.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use crate::util::digest::Sha256;
use rayon::prelude::*;
use serde::Serialize;

use crate::diff;
use crate::error::{Error, IoContext, Result};
use crate::format::name::{DistId, DistName, PatchName, DIST_SUFFIX, PATCH_SUFFIX};
use crate::format::patch::PatchHeader;
use crate::util::digest::{Digests, HashingWriter};
use crate::util::fsutil::AtomicFile;

/// File name of the index in a publish directory and on a mirror.
pub const INDEX_FILE: &str = "INDEX";
/// File name of its minisign signature.
pub const SIG_FILE: &str = "INDEX.minisig";
/// The one format version this build writes and reads.
pub const FORMAT: u32 = 1;
/// First line's keyword.
const MAGIC: &str = "sysup-index";
/// Largest INDEX accepted (bytes): about 30 000 entries of the longest kind.
pub const MAX_INDEX_LEN: u64 = 16 << 20;
/// Most entries one INDEX may list.
pub const MAX_ENTRIES: usize = 100_000;
/// Longest line accepted (bytes).
pub const MAX_LINE: usize = 4096;
/// Largest file size an entry may state (1 TiB).
pub const MAX_FILE: u64 = 1 << 40;
/// Longest arch name.
const MAX_ARCH: usize = 32;

/// One dist on the mirror.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DistEntry {
    pub id: DistId,
    pub arch: String,
    /// Size of the `.tar.gz`.
    pub size: u64,
    /// SHA-256 of the `.tar.gz`.
    #[serde(serialize_with = "crate::util::digest::hex32")]
    pub sha256: [u8; 32],
    /// The uncompressed tar it holds.
    pub tar: Digests,
}

impl DistEntry {
    /// Its file name, `<id>.tar.gz`.
    pub fn file(&self) -> String {
        self.id.file_name()
    }
}

/// One patch on the mirror.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PatchEntry {
    pub name: PatchName,
    pub arch: String,
    /// Size of the `.patch`.
    pub size: u64,
    /// SHA-256 of the `.patch`.
    #[serde(serialize_with = "crate::util::digest::hex32")]
    pub sha256: [u8; 32],
    /// The uncompressed tar it must be fed.
    pub from: Digests,
    /// The uncompressed tar it yields.
    pub to: Digests,
}

impl PatchEntry {
    /// Its file name.
    pub fn file(&self) -> String {
        self.name.file_name()
    }
}

/// A parsed or built INDEX.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Index {
    /// Grows with every publish; hosts refuse a lower one than they accepted.
    pub serial: u64,
    /// Unix time of the publish.
    pub timestamp: u64,
    /// Sorted by file name.
    pub dists: Vec<DistEntry>,
    /// Sorted by file name.
    pub patches: Vec<PatchEntry>,
}

/// Order of two ids of one name, oldest first: by date, then by rev compared
/// as a version (digit runs numerically: `9 < 10`, `6.4.1 < 6.10`).
pub fn id_order(a: &DistId, b: &DistId) -> Ordering {
    a.date
        .cmp(&b.date)
        .then_with(|| version_cmp(a.rev.as_str(), b.rev.as_str()))
}

/// Compare two revs as versions: runs of digits by value, the rest by bytes.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let digit = b[i].is_ascii_digit();
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() == digit {
                i += 1;
            }
            out.push((digit, &s[start..i]));
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let o = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

impl Index {
    /// The INDEX text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{MAGIC} {FORMAT}");
        let _ = writeln!(s, "serial {}", self.serial);
        let _ = writeln!(s, "timestamp {}", self.timestamp);
        for d in &self.dists {
            let _ = writeln!(
                s,
                "dist {} id={} arch={} size={} sha256={} tar-size={} tar-md5={} tar-sha256={}",
                d.file(),
                d.id,
                d.arch,
                d.size,
                hex::encode(d.sha256),
                d.tar.size,
                d.tar.md5_hex(),
                d.tar.sha256_hex()
            );
        }
        for p in &self.patches {
            let _ = writeln!(
                s,
                "patch {} from={} to={} arch={} size={} sha256={} from-size={} from-md5={} \
                 from-sha256={} to-size={} to-md5={} to-sha256={}",
                p.file(),
                p.name.from,
                p.name.to,
                p.arch,
                p.size,
                hex::encode(p.sha256),
                p.from.size,
                p.from.md5_hex(),
                p.from.sha256_hex(),
                p.to.size,
                p.to.md5_hex(),
                p.to.sha256_hex()
            );
        }
        let _ = writeln!(s, "end {}", self.dists.len() + self.patches.len());
        s
    }

    /// Parse INDEX bytes; `source` (a path or URL) names them in errors.
    pub fn parse(bytes: &[u8], source: &Path) -> Result<Index> {
        let fail = |line: usize, reason: String| Error::Metadata {
            what: "INDEX",
            path: source.to_path_buf(),
            reason: if line == 0 {
                reason
            } else {
                format!("line {line}: {reason}")
            },
        };
        if bytes.len() as u64 > MAX_INDEX_LEN {
            return Err(fail(
                0,
                format!(
                    "{} bytes is more than the {MAX_INDEX_LEN} allowed",
                    bytes.len()
                ),
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| fail(0, format!("not UTF-8: {e}")))?;
        if !text.ends_with('\n') {
            return Err(fail(0, "does not end with a newline (truncated?)".into()));
        }
        let mut lines = text[..text.len() - 1]
            .split('\n')
            .enumerate()
            .map(|(i, l)| (i + 1, l));
        let mut next = |want: &str| -> Result<(usize, &str)> {
            let (n, l) = lines
                .next()
                .ok_or_else(|| fail(0, format!("ends before its {want} line (truncated?)")))?;
            if l.len() > MAX_LINE {
                return Err(fail(n, format!("longer than {MAX_LINE} bytes")));
            }
            Ok((n, l))
        };

        let (n, l) = next("header")?;
        let version = l
            .strip_prefix(MAGIC)
            .and_then(|v| v.strip_prefix(' '))
            .ok_or_else(|| fail(n, format!("not a sysup INDEX: expected '{MAGIC} {FORMAT}'")))?;
        let version = number(version).map_err(|r| fail(n, format!("format version: {r}")))?;
        if version != u64::from(FORMAT) {
            return Err(fail(
                n,
                format!("format {version} is not supported (this sysup reads {FORMAT})"),
            ));
        }
        let (n, l) = next("serial")?;
        let serial = keyword(l, "serial")
            .and_then(number)
            .map_err(|r| fail(n, format!("serial: {r}")))?;
        if serial == 0 {
            return Err(fail(n, "serial: must be greater than 0".into()));
        }
        let (n, l) = next("timestamp")?;
        let timestamp = keyword(l, "timestamp")
            .and_then(number)
            .map_err(|r| fail(n, format!("timestamp: {r}")))?;

        let mut dists: Vec<DistEntry> = Vec::new();
        let mut patches: Vec<PatchEntry> = Vec::new();
        loop {
            let (n, l) = next("end")?;
            let (kind, rest) = l.split_once(' ').unwrap_or((l, ""));
            match kind {
                "dist" => {
                    if !patches.is_empty() {
                        return Err(fail(n, "dists must come before patches".into()));
                    }
                    let d = parse_dist(rest).map_err(|r| fail(n, r))?;
                    if let Some(prev) = dists.last() {
                        if prev.file() >= d.file() {
                            return Err(fail(
                                n,
                                "dists are not sorted by file name, or repeat".into(),
                            ));
                        }
                    }
                    dists.push(d);
                }
                "patch" => {
                    let p = parse_patch(rest).map_err(|r| fail(n, r))?;
                    if let Some(prev) = patches.last() {
                        if prev.file() >= p.file() {
                            return Err(fail(
                                n,
                                "patches are not sorted by file name, or repeat".into(),
                            ));
                        }
                    }
                    patches.push(p);
                }
                "end" => {
                    let count = number(rest).map_err(|r| fail(n, format!("end: {r}")))?;
                    let have = (dists.len() + patches.len()) as u64;
                    if count != have {
                        return Err(fail(
                            n,
                            format!("end says {count} entries, the INDEX lists {have}"),
                        ));
                    }
                    if lines.next().is_some() {
                        return Err(fail(n + 1, "text after the end line".into()));
                    }
                    break;
                }
                "" => return Err(fail(n, "empty line".into())),
                other => return Err(fail(n, format!("unknown entry kind '{other}'"))),
            }
            if dists.len() + patches.len() > MAX_ENTRIES {
                return Err(fail(n, format!("more than {MAX_ENTRIES} entries")));
            }
        }
        Ok(Index {
            serial,
            timestamp,
            dists,
            patches,
        })
    }

    /// The dist entry of `id`, if listed.
    pub fn dist(&self, id: &DistId) -> Option<&DistEntry> {
        self.dists.iter().find(|d| &d.id == id)
    }

    /// Every name the INDEX lists a dist or patch for.
    pub fn names(&self) -> BTreeSet<DistName> {
        self.dists
            .iter()
            .map(|d| d.id.name.clone())
            .chain(self.patches.iter().map(|p| p.name.from.name.clone()))
            .collect()
    }

    /// The newest id of `name` the INDEX can deliver for `arch` (as a dist or
    /// as the result of a patch), by [`id_order`].
    pub fn newest(&self, name: &DistName, arch: &str) -> Option<DistId> {
        self.dists
            .iter()
            .filter(|d| &d.id.name == name && d.arch == arch)
            .map(|d| &d.id)
            .chain(
                self.patches
                    .iter()
                    .filter(|p| &p.name.to.name == name && p.arch == arch)
                    .map(|p| &p.name.to),
            )
            .max_by(|a, b| id_order(a, b))
            .cloned()
    }
}

/// `s` without its leading `word `.
fn keyword<'a>(s: &'a str, word: &str) -> std::result::Result<&'a str, String> {
    s.strip_prefix(word)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| format!("expected '{word} <value>'"))
}

/// A decimal number in its one spelling (no sign, no leading zeros).
fn number(s: &str) -> std::result::Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return Err(format!("'{}' is not a decimal number", clip(s)));
    }
    s.parse().map_err(|_| format!("'{}' is too large", clip(s)))
}

/// At most 64 characters of `s`, for messages.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Lower-case hex of exactly N bytes.
fn hexn<const N: usize>(s: &str) -> std::result::Result<[u8; N], String> {
    let mut out = [0u8; N];
    if s.len() != 2 * N || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!(
            "'{}' is not {} lower-case hex digits",
            clip(s),
            2 * N
        ));
    }
    hex::decode_to_slice(s, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

fn arch(s: &str) -> std::result::Result<String, String> {
    if s.is_empty()
        || s.len() > MAX_ARCH
        || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(format!(
            "arch '{}' is not [A-Za-z0-9_]{{1,{MAX_ARCH}}}",
            clip(s)
        ));
    }
    Ok(s.to_string())
}

/// Space-separated `key=value` fields, each expected in order.
struct Fields<'a> {
    it: std::str::Split<'a, char>,
}

impl<'a> Fields<'a> {
    fn new(s: &'a str) -> Self {
        Fields { it: s.split(' ') }
    }
    fn bare(&mut self, what: &str) -> std::result::Result<&'a str, String> {
        match self.it.next() {
            Some(v) if !v.is_empty() && !v.contains('=') => Ok(v),
            _ => Err(format!("expected the {what}")),
        }
    }
    fn get(&mut self, key: &str) -> std::result::Result<&'a str, String> {
        self.it
            .next()
            .and_then(|f| f.strip_prefix(key))
            .and_then(|f| f.strip_prefix('='))
            .ok_or_else(|| format!("expected '{key}=' here"))
    }
    fn size(&mut self, key: &str) -> std::result::Result<u64, String> {
        let n = number(self.get(key)?).map_err(|r| format!("{key}: {r}"))?;
        if n > MAX_FILE {
            return Err(format!("{key}: {n} is more than the {MAX_FILE} allowed"));
        }
        Ok(n)
    }
    fn digests(&mut self, prefix: &str) -> std::result::Result<Digests, String> {
        let size = self.size(&format!("{prefix}-size"))?;
        let md5 = hexn::<16>(self.get(&format!("{prefix}-md5"))?)
            .map_err(|r| format!("{prefix}-md5: {r}"))?;
        let sha256 = hexn::<32>(self.get(&format!("{prefix}-sha256"))?)
            .map_err(|r| format!("{prefix}-sha256: {r}"))?;
        Ok(Digests { size, md5, sha256 })
    }
    fn end(mut self) -> std::result::Result<(), String> {
        match self.it.next() {
            None => Ok(()),
            Some(f) => Err(format!("unexpected '{}' at the end", clip(f))),
        }
    }
}

/// A bare file name: no directory part, checked by its parser.
fn bare_file(f: &str) -> std::result::Result<&str, String> {
    if f.contains('/') || f.starts_with('.') {
        return Err(format!("file name '{}' is not a bare file name", clip(f)));
    }
    Ok(f)
}

fn parse_dist(rest: &str) -> std::result::Result<DistEntry, String> {
    let mut f = Fields::new(rest);
    let file = bare_file(f.bare("dist file name")?)?;
    let named = DistId::from_file_name(file).map_err(|e| e.to_string())?;
    let id: DistId = f.get("id")?.parse().map_err(|e: Error| e.to_string())?;
    if id != named || id.file_name() != file {
        return Err(format!("id {id} does not match file name '{file}'"));
    }
    let arch = arch(f.get("arch")?)?;
    let size = f.size("size")?;
    let sha256 = hexn::<32>(f.get("sha256")?).map_err(|r| format!("sha256: {r}"))?;
    let tar = f.digests("tar")?;
    f.end()?;
    Ok(DistEntry {
        id,
        arch,
        size,
        sha256,
        tar,
    })
}

fn parse_patch(rest: &str) -> std::result::Result<PatchEntry, String> {
    let mut f = Fields::new(rest);
    let file = bare_file(f.bare("patch file name")?)?;
    let name = PatchName::from_file_name(file).map_err(|e| e.to_string())?;
    if name.file_name() != file {
        return Err(format!(
            "'{file}' is not a patch file name in its one spelling"
        ));
    }
    let from: DistId = f.get("from")?.parse().map_err(|e: Error| e.to_string())?;
    let to: DistId = f.get("to")?.parse().map_err(|e: Error| e.to_string())?;
    if from != name.from || to != name.to {
        return Err(format!("from/to ids do not match file name '{file}'"));
    }
    if from == to {
        return Err(format!("'{file}' patches a dist to itself"));
    }
    let arch = arch(f.get("arch")?)?;
    let size = f.size("size")?;
    let sha256 = hexn::<32>(f.get("sha256")?).map_err(|r| format!("sha256: {r}"))?;
    let from_d = f.digests("from")?;
    let to_d = f.digests("to")?;
    f.end()?;
    Ok(PatchEntry {
        name,
        arch,
        size,
        sha256,
        from: from_d,
        to: to_d,
    })
}

// ---------------------------------------------------------------------------
// Publishing (build host)
// ---------------------------------------------------------------------------

/// Knobs of [`publish`].
#[derive(Clone, Debug, Default)]
pub struct PublishOptions {
    /// Make missing patches from each of the K previous dists of every name
    /// to its newest.
    pub make_patches: usize,
    /// Diff settings for the patches made.
    pub diff: diff::DiffOptions,
    /// Sign with this minisign secret key, writing [`SIG_FILE`].
    pub sign: Option<crate::mirror::sign::SecretKey>,
    /// Unix time to stamp (default: now).
    pub now: Option<u64>,
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
    pub dists: usize,
    pub patches: usize,
    /// Patches made by `--make-patches`.
    pub made: Vec<PathBuf>,
    /// Dists whose uncompressed digests were taken from the previous INDEX
    /// (same file name, size and SHA-256), not recomputed.
    pub reused: usize,
}

fn now_unix() -> u64 {
    crate::util::time::unix_now().unsigned_abs()
}

/// A reader that SHA-256s everything read through it.
struct Sha256Reader<R> {
    inner: R,
    sha: Sha256,
    n: u64,
}

impl<R: Read> Read for Sha256Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

/// SHA-256 and size of a whole file.
pub fn file_sha256(path: &Path) -> Result<(u64, [u8; 32])> {
    let f = File::open(path).ctx("open", path)?;
    let mut r = Sha256Reader {
        inner: BufReader::with_capacity(1 << 20, f),
        sha: Sha256::new(),
        n: 0,
    };
    io::copy(&mut r, &mut io::sink()).ctx("read", path)?;
    Ok((r.n, r.sha.finalize()))
}

/// Size and SHA-256 of a `.tar.gz` and the digests of the tar inside, in one
/// pass. Refuses bytes after the gzip member: every tool must read the same tar.
fn dist_digests(path: &Path) -> Result<(u64, [u8; 32], Digests)> {
    let f = File::open(path).ctx("open", path)?;
    let r = Sha256Reader {
        inner: BufReader::with_capacity(1 << 20, f),
        sha: Sha256::new(),
        n: 0,
    };
    let mut gz = flate2::read::GzDecoder::new(r);
    let mut w = HashingWriter::new(io::sink());
    io::copy(&mut gz, &mut w).map_err(|e| Error::Tar {
        path: path.to_path_buf(),
        reason: format!("gunzip failed: {e}"),
    })?;
    let (tar, _) = w.finish();
    let mut r = gz.into_inner();
    let before = r.n;
    io::copy(&mut r, &mut io::sink()).ctx("read", path)?;
    if r.n != before {
        return Err(Error::Tar {
            path: path.to_path_buf(),
            reason: format!("{} bytes follow the gzip stream", r.n - before),
        });
    }
    Ok((r.n, r.sha.finalize(), tar))
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

    // Dists: DIST head for id and arch; digests reused from the previous
    // INDEX only when the compressed file is byte-identical (same SHA-256).
    let prev_dists: BTreeMap<String, &DistEntry> = previous
        .iter()
        .flat_map(|i| &i.dists)
        .map(|d| (d.file(), d))
        .collect();
    let dist_results: Vec<Result<(DistEntry, bool)>> = listing
        .dists
        .par_iter()
        .map(|(file, path)| {
            let meta = crate::format::dist::read_dist_metadata(path)?.meta;
            arch(&meta.arch).map_err(|r| Error::Metadata {
                what: "DIST",
                path: path.clone(),
                reason: r,
            })?;
            let (size, sha256) = file_sha256(path)?;
            if let Some(p) = prev_dists.get(file) {
                if p.size == size && p.sha256 == sha256 && p.arch == meta.arch {
                    return Ok(((*p).clone(), true));
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
        })
        .collect();
    let mut dists = Vec::new();
    let mut reused = 0;
    for r in dist_results {
        let (d, r) = r?;
        reused += usize::from(r);
        dists.push(d);
    }
    dists.sort_by_key(|d| d.file());

    let prev_patches: BTreeMap<String, &PatchEntry> = previous
        .iter()
        .flat_map(|i| &i.patches)
        .map(|p| (p.file(), p))
        .collect();
    let patch_results: Vec<Result<PatchEntry>> = listing
        .patches
        .par_iter()
        .map(|(file, path)| {
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
            let arch = [&named.to, &named.from]
                .iter()
                .find_map(|id| dists.iter().find(|d| &d.id == *id).map(|d| d.arch.clone()))
                .or_else(|| {
                    prev_patches
                        .get(file)
                        .filter(|p| p.sha256 == sha256)
                        .map(|p| p.arch.clone())
                })
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
                })?;
            Ok(PatchEntry {
                name: named,
                arch,
                size,
                sha256,
                from: h.from.tar,
                to: h.to.tar,
            })
        })
        .collect();
    let mut patches = patch_results.into_iter().collect::<Result<Vec<_>>>()?;
    patches.sort_by_key(|p| p.file());

    if dists.len() + patches.len() > MAX_ENTRIES {
        return Err(Error::Refused(format!(
            "{} holds more than the {MAX_ENTRIES} entries an INDEX may list",
            dir.display()
        )));
    }
    let now = opts.now.unwrap_or_else(now_unix);
    let previous_serial = previous.as_ref().map(|i| i.serial);
    let serial = previous_serial.map_or(now, |s| now.max(s + 1)).max(1);
    let index = Index {
        serial,
        timestamp: now,
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
    let index_path = dir.join(INDEX_FILE);
    let mut f = AtomicFile::create(&index_path)?;
    let tmp = f.temp_path().to_path_buf();
    f.file().write_all(text.as_bytes()).ctx("write", &tmp)?;
    f.commit()?;
    let signature = match sig {
        Some(sig) => {
            let p = dir.join(SIG_FILE);
            let mut f = AtomicFile::create(&p)?;
            let tmp = f.temp_path().to_path_buf();
            f.file().write_all(sig.as_bytes()).ctx("write", &tmp)?;
            f.commit()?;
            Some(p)
        }
        None => {
            // An old signature beside a new INDEX would only fail later, on hosts.
            let p = dir.join(SIG_FILE);
            match std::fs::remove_file(&p) {
                Ok(()) => crate::util::fsutil::fsync_dir(dir)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", &p, e)),
            }
            None
        }
    };
    Ok(PublishReport {
        dir: dir.to_path_buf(),
        index: index_path,
        signature,
        serial,
        previous_serial,
        timestamp: now,
        dists: index.dists.len(),
        patches: index.patches.len(),
        made,
        reused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Index {
        let d = |s: &str| Digests::of(s.as_bytes());
        Index {
            serial: 1_767_398_400,
            timestamp: 1_767_398_401,
            dists: vec![
                DistEntry {
                    id: "kernel-GENERIC-1-20260101".parse().unwrap(),
                    arch: "x86_64".into(),
                    size: 10,
                    sha256: [1; 32],
                    tar: d("k1"),
                },
                DistEntry {
                    id: "world-2-20260102".parse().unwrap(),
                    arch: "x86_64".into(),
                    size: 20,
                    sha256: [2; 32],
                    tar: d("w2"),
                },
            ],
            patches: vec![PatchEntry {
                name: "world-1-20260101_2-20260102".parse().unwrap(),
                arch: "x86_64".into(),
                size: 5,
                sha256: [3; 32],
                from: d("w1"),
                to: d("w2"),
            }],
        }
    }

    fn parse(s: &str) -> Result<Index> {
        Index::parse(s.as_bytes(), Path::new("INDEX"))
    }

    #[test]
    fn render_parses_back() {
        let i = sample();
        let text = i.render();
        assert!(
            text.starts_with("sysup-index 1\nserial 1767398400\n"),
            "{text}"
        );
        assert_eq!(parse(&text).unwrap(), i);
    }

    #[test]
    fn strictness() {
        let good = sample().render();
        let cases: Vec<(String, &str)> = vec![
            (good.replace("sysup-index 1", "sysup-index 2"), "format 2"),
            (
                good.replace("serial 1767398400", "serial 01767398400"),
                "serial",
            ),
            (good.replace("serial 1767398400", "serial 0"), "serial"),
            (good.replace("end 3", "end 2"), "end says 2"),
            (good.replace("end 3\n", ""), "truncated"),
            (good[..good.len() - 1].to_string(), "newline"),
            (good.replace(" arch=x86_64", " arch=x86-64"), "arch"),
            (
                good.replace(" arch=x86_64 size=5", " size=5 arch=x86_64"),
                "arch=",
            ),
            (good.replace("size=20", "size=+20"), "size"),
            (good.replace("sha256=0202", "sha256=0A02"), "hex"),
            (
                good.replace("id=world-2-20260102", "id=world-3-20260102"),
                "does not match",
            ),
            (
                good.replace("patch world-1-20260101_2", "patch ../world-1-20260101_2"),
                "bare",
            ),
            (
                good.replace("to=world-2-20260102", "to=world-3-20260102"),
                "do not match",
            ),
            (format!("{good}extra\n"), "after the end"),
            (good.replace("\nserial", "\n\nserial"), "serial"),
            (good.replace("end 3", "bogus 3"), "unknown entry kind"),
            (good.replace("\n", "\r\n"), ""),
            (good.replace("tar-sha256=", "tar-sha256=00 "), "hex"),
            (good.replace("x86_64 size=20", "x86_64  size=20"), "size="),
        ];
        for (text, want) in cases {
            let e = parse(&text).expect_err(want).to_string();
            assert!(e.contains(want), "{want:?} not in {e:?}");
            assert!(e.contains("INDEX"), "{e}");
        }
        // order and uniqueness
        let mut i = sample();
        i.dists.swap(0, 1);
        assert!(parse(&i.render())
            .unwrap_err()
            .to_string()
            .contains("sorted"));
        let mut i = sample();
        i.dists[1] = i.dists[0].clone();
        assert!(parse(&i.render())
            .unwrap_err()
            .to_string()
            .contains("repeat"));
        // too big
        let big = vec![b'a'; MAX_INDEX_LEN as usize + 1];
        assert!(Index::parse(&big, Path::new("INDEX")).is_err());
    }

    #[test]
    fn versions_order_naturally() {
        assert_eq!(version_cmp("9", "10"), Ordering::Less);
        assert_eq!(version_cmp("6.4.1", "6.10"), Ordering::Less);
        assert_eq!(version_cmp("1.0", "1.0"), Ordering::Equal);
        assert_eq!(version_cmp("1.0~rc1", "1.0"), Ordering::Greater);
        assert_eq!(version_cmp("01", "1"), Ordering::Less); // equal values: bytes decide
        let a: DistId = "world-10-20260101".parse().unwrap();
        let b: DistId = "world-9-20260102".parse().unwrap();
        assert_eq!(id_order(&a, &b), Ordering::Less, "date first");
    }

    #[test]
    fn newest_looks_at_dists_and_patch_targets() {
        let i = sample();
        let w = DistName::World;
        assert_eq!(
            i.newest(&w, "x86_64").unwrap().to_string(),
            "world-2-20260102"
        );
        assert_eq!(i.newest(&w, "aarch64"), None);
        assert_eq!(i.names().len(), 2);
    }

    proptest! {
        #[test]
        fn any_bytes_parse_or_error_without_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Index::parse(&b, Path::new("INDEX"));
        }

        #[test]
        fn mutated_indexes_parse_or_error_without_panic(at in 0usize..2000, byte in any::<u8>(), cut in 0usize..2000) {
            let mut b = sample().render().into_bytes();
            let at = at % b.len();
            b[at] = byte;
            let _ = Index::parse(&b, Path::new("INDEX"));
            b.truncate(cut % (b.len() + 1));
            let _ = Index::parse(&b, Path::new("INDEX"));
        }

        #[test]
        fn version_cmp_is_a_total_order(a in "[0-9a-z.+~]{1,8}", b in "[0-9a-z.+~]{1,8}") {
            prop_assert_eq!(version_cmp(&a, &b), version_cmp(&b, &a).reverse());
            prop_assert_eq!(version_cmp(&a, &b) == Ordering::Equal, a == b);
        }
    }
}
