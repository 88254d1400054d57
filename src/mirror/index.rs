//! The mirror's `INDEX` (docs/design.md §6): what a publish directory holds — every
//! dist and patch with its file size and SHA-256, the size, MD5 and SHA-256
//! of the uncompressed tar it yields (and, for a patch, the tar it needs),
//! its ids and arch — under a format version, a serial that only grows, and
//! a timestamp. `docs/index-format.md` is the reference for the text.
//!
//! ```text
//! sysup-index 1
//! serial 1767398400
//! timestamp 1767398400
//! expires 1768003200
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
//! - the `expires` line is optional (an INDEX without one never expires, as
//!   every INDEX did before `sysup publish --expires`) and, when there, comes
//!   right after `timestamp` and is later than it.
//!
//! `sysup publish` builds and writes an INDEX (the `publish` module beside
//! this one, which uses this one); its signature is [`crate::mirror::sign`]'s.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::name::{DistId, DistName, PatchName};
use crate::util::digest::Digests;

/// The signature's file name, beside the INDEX (defined with the signatures).
pub use crate::mirror::sign::SIG_FILE;

/// File name of the index in a publish directory and on a mirror.
pub const INDEX_FILE: &str = "INDEX";
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
    /// Unix time from which hosts refuse this INDEX (`sysup publish
    /// --expires`); `None`: it never expires.
    pub expires: Option<u64>,
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
        if let Some(e) = self.expires {
            let _ = writeln!(s, "expires {e}");
        }
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
        let fail = |reason: String| parse_error(source, 0, reason);
        if bytes.len() as u64 > MAX_INDEX_LEN {
            return Err(fail(format!(
                "{} bytes is more than the {MAX_INDEX_LEN} allowed",
                bytes.len()
            )));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| fail(format!("not UTF-8: {e}")))?;
        if !text.ends_with('\n') {
            return Err(fail("does not end with a newline (truncated?)".into()));
        }
        let mut lines = Lines {
            it: text[..text.len() - 1].split('\n').enumerate().peekable(),
            source,
        };
        let (serial, timestamp) = lines.head()?;
        let expires = lines.expires(timestamp)?;
        let (dists, patches) = lines.entries()?;
        Ok(Index {
            serial,
            timestamp,
            expires,
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

/// An INDEX parse error at `line` (0: of the whole text).
fn parse_error(source: &Path, line: usize, reason: String) -> Error {
    Error::Metadata {
        what: "INDEX",
        path: source.to_path_buf(),
        reason: if line == 0 {
            reason
        } else {
            format!("line {line}: {reason}")
        },
    }
}

/// The lines of an INDEX text (its final newline cut), numbered from 1.
struct Lines<'a> {
    it: std::iter::Peekable<std::iter::Enumerate<std::str::Split<'a, char>>>,
    source: &'a Path,
}

impl<'a> Lines<'a> {
    fn fail(&self, line: usize, reason: String) -> Error {
        parse_error(self.source, line, reason)
    }

    /// The next line, which must be there (the `want` line) and at most
    /// [`MAX_LINE`] bytes long.
    fn next(&mut self, want: &str) -> Result<(usize, &'a str)> {
        let (n, l) = self
            .it
            .next()
            .map(|(i, l)| (i + 1, l))
            .ok_or_else(|| self.fail(0, format!("ends before its {want} line (truncated?)")))?;
        if l.len() > MAX_LINE {
            return Err(self.fail(n, format!("longer than {MAX_LINE} bytes")));
        }
        Ok((n, l))
    }

    /// The header, serial and timestamp lines: (serial, timestamp).
    fn head(&mut self) -> Result<(u64, u64)> {
        let (n, l) = self.next("header")?;
        let version = l
            .strip_prefix(MAGIC)
            .and_then(|v| v.strip_prefix(' '))
            .ok_or_else(|| {
                self.fail(n, format!("not a sysup INDEX: expected '{MAGIC} {FORMAT}'"))
            })?;
        let version = number(version).map_err(|r| self.fail(n, format!("format version: {r}")))?;
        if version != u64::from(FORMAT) {
            return Err(self.fail(
                n,
                format!("format {version} is not supported (this sysup reads {FORMAT})"),
            ));
        }
        let (n, l) = self.next("serial")?;
        let serial = keyword(l, "serial")
            .and_then(number)
            .map_err(|r| self.fail(n, format!("serial: {r}")))?;
        if serial == 0 {
            return Err(self.fail(n, "serial: must be greater than 0".into()));
        }
        let (n, l) = self.next("timestamp")?;
        let timestamp = keyword(l, "timestamp")
            .and_then(number)
            .map_err(|r| self.fail(n, format!("timestamp: {r}")))?;
        Ok((serial, timestamp))
    }

    /// The optional `expires` line after the timestamp: a time later than
    /// it.
    fn expires(&mut self, timestamp: u64) -> Result<Option<u64>> {
        if !matches!(self.it.peek(), Some((_, l)) if l.starts_with("expires ")) {
            return Ok(None);
        }
        let (n, l) = self.next("expires")?;
        let expires = keyword(l, "expires")
            .and_then(number)
            .map_err(|r| self.fail(n, format!("expires: {r}")))?;
        if expires <= timestamp {
            return Err(self.fail(
                n,
                format!("expires {expires} is not later than timestamp {timestamp}"),
            ));
        }
        Ok(Some(expires))
    }

    /// The entry lines up to and with the `end` line, which must be last.
    fn entries(&mut self) -> Result<(Vec<DistEntry>, Vec<PatchEntry>)> {
        let mut dists: Vec<DistEntry> = Vec::new();
        let mut patches: Vec<PatchEntry> = Vec::new();
        loop {
            let (n, l) = self.next("end")?;
            let (kind, rest) = l.split_once(' ').unwrap_or((l, ""));
            match kind {
                "dist" => {
                    if !patches.is_empty() {
                        return Err(self.fail(n, "dists must come before patches".into()));
                    }
                    parse_dist(rest)
                        .and_then(|d| push_sorted(&mut dists, d, DistEntry::file, "dists"))
                        .map_err(|r| self.fail(n, r))?;
                }
                "patch" => parse_patch(rest)
                    .and_then(|p| push_sorted(&mut patches, p, PatchEntry::file, "patches"))
                    .map_err(|r| self.fail(n, r))?,
                "end" => {
                    let count = number(rest).map_err(|r| self.fail(n, format!("end: {r}")))?;
                    let have = (dists.len() + patches.len()) as u64;
                    if count != have {
                        return Err(self.fail(
                            n,
                            format!("end says {count} entries, the INDEX lists {have}"),
                        ));
                    }
                    if self.it.next().is_some() {
                        return Err(self.fail(n + 1, "text after the end line".into()));
                    }
                    return Ok((dists, patches));
                }
                "" => return Err(self.fail(n, "empty line".into())),
                other => return Err(self.fail(n, format!("unknown entry kind '{other}'"))),
            }
            if dists.len() + patches.len() > MAX_ENTRIES {
                return Err(self.fail(n, format!("more than {MAX_ENTRIES} entries")));
            }
        }
    }
}

/// Append `item` to `list`, which stays sorted by file name without repeats.
fn push_sorted<T>(
    list: &mut Vec<T>,
    item: T,
    file: fn(&T) -> String,
    what: &str,
) -> std::result::Result<(), String> {
    if let Some(prev) = list.last() {
        if file(prev) >= file(&item) {
            return Err(format!("{what} are not sorted by file name, or repeat"));
        }
    }
    list.push(item);
    Ok(())
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

/// An arch name as an INDEX spells it: `[A-Za-z0-9_]{1,32}`.
pub(crate) fn arch(s: &str) -> std::result::Result<String, String> {
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

#[cfg(test)]
mod tests;
