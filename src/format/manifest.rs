//! MANIFEST (DESIGN §2): the list of every entry a dist installs, with the
//! metadata a host needs to verify and repair an installed tree — path, type,
//! mode, owner, mtime, size, SHA-256 of content, link target, device numbers,
//! extended attributes and the `critical`/`config` flags.
//!
//! Text format, one entry per line, sorted by path (byte order), after a
//! `#sysup-manifest 1` line:
//!
//! ```text
//! usr/bin/ping type=file mode=4755 uid=0 gid=0 mtime=1700000000 size=12 sha256=… xattr.security.capability=0100…
//! usr/lib/x/libc.so.6 type=file mode=0755 … flags=critical
//! ```
//!
//! Paths, link targets and xattr names are escaped: bytes outside `!`..`~`,
//! `\` and `=` are written `\xHH`, so a field never contains a space,
//! newline or non-UTF-8 byte, and every byte string round-trips.
//!
//! Invariants: `parse(render(m)) == m`; a parsed manifest has unique, safe,
//! relative paths (no `.`/`..` components, no empty components, no leading
//! `/`, no NUL or newline byte, at most [`MAX_PATH`] bytes and [`MAX_DEPTH`]
//! components; link targets at most [`MAX_PATH`] bytes too), none below
//! another entry that is not a directory, each file has a SHA-256, each link
//! a target; anything else is an error naming the line. Reading is bounded:
//! [`Manifest::read`] holds entries, never the whole text, and stops at the
//! first line over [`MAX_LINE`] bytes or the first entry over the count the
//! dist announced (at most [`MAX_ENTRIES`]); its time is linear in the
//! text (the check that nothing is below a non-directory included).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

/// The first line of every MANIFEST.
pub const HEADER: &str = "#sysup-manifest 1";
/// Most entries a MANIFEST may hold: a host holds every entry in memory
/// (about 200 bytes each), and a MANIFEST at the cap must fit the 256 MiB
/// that reading any dist may take. Real roots hold a few hundred thousand.
pub const MAX_ENTRIES: u64 = 1 << 20;
/// Longest path or link target, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH: usize = 4096;
/// Most components of a path.
pub const MAX_DEPTH: usize = 256;
/// Longest MANIFEST line: a 4096-byte path escaped, a link, and 64 KiB of
/// extended attribute values in hex fit with room to spare.
pub const MAX_LINE: usize = 1 << 20;

/// What kind of filesystem object an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// A hard link to an earlier file entry (`link` holds that entry's path).
    Hardlink,
    Char,
    Block,
    Fifo,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Hardlink => "hardlink",
            Kind::Char => "char",
            Kind::Block => "block",
            Kind::Fifo => "fifo",
        }
    }
    /// The `S_IFMT` bits of the object this kind installs (a hard link is a
    /// regular file).
    pub fn file_type(self) -> u32 {
        match self {
            Kind::File | Kind::Hardlink => libc::S_IFREG,
            Kind::Dir => libc::S_IFDIR,
            Kind::Symlink => libc::S_IFLNK,
            Kind::Char => libc::S_IFCHR,
            Kind::Block => libc::S_IFBLK,
            Kind::Fifo => libc::S_IFIFO,
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "file" => Kind::File,
            "dir" => Kind::Dir,
            "symlink" => Kind::Symlink,
            "hardlink" => Kind::Hardlink,
            "char" => Kind::Char,
            "block" => Kind::Block,
            "fifo" => Kind::Fifo,
            _ => return None,
        })
    }
}

/// One installed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Official path, relative to the root (bytes: names need not be UTF-8).
    pub path: Vec<u8>,
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// Content size (files and hardlinks; 0 otherwise).
    pub size: u64,
    /// SHA-256 of content (files and hardlinks).
    pub sha256: Option<[u8; 32]>,
    /// Symlink target, or the official path a hardlink points to.
    pub link: Option<Vec<u8>>,
    /// Device numbers of char/block devices.
    pub dev: Option<(u32, u32)>,
    /// Extended attributes, sorted by name.
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Stored as `<path>.new` and renamed last on the host.
    pub critical: bool,
    /// Replaced on the host only when unmodified.
    pub config: bool,
}

impl Entry {
    /// A blank entry of a kind; callers fill in the rest.
    pub fn new(path: Vec<u8>, kind: Kind) -> Entry {
        Entry {
            path,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: 0,
            sha256: None,
            link: None,
            dev: None,
            xattrs: BTreeMap::new(),
            critical: false,
            config: false,
        }
    }

    /// The path as a lossy string, for messages.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }

    /// The path as an OS path (exact bytes).
    pub fn os_path(&self) -> &Path {
        bytes_path(&self.path)
    }

    /// The tar member name this entry is stored under (`<path>.new` when critical).
    pub fn member_name(&self) -> Vec<u8> {
        let mut m = self.path.clone();
        if self.critical {
            m.extend_from_slice(b".new");
        }
        m
    }
}

/// A byte string as a `Path` (Unix: exact bytes).
pub fn bytes_path(b: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(b))
}

/// Escape a byte string into a single whitespace-free field.
pub fn escape(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        if (b'!'..=b'~').contains(&c) && c != b'\\' && c != b'=' {
            s.push(c as char);
        } else {
            let _ = write!(s, "\\x{c:02x}");
        }
    }
    s
}

/// Undo [`escape`].
pub fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) != Some(&b'x') || i + 4 > b.len() {
                return None;
            }
            let h = std::str::from_utf8(&b[i + 2..i + 4]).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Whether a relative path is safe to join onto a root: non-empty, no leading
/// `/`, no empty, `.` or `..` components, no NUL, no newline.
pub fn is_safe_rel(p: &[u8]) -> bool {
    !p.is_empty()
        && p[0] != b'/'
        && bad_byte(p).is_none()
        && p.split(|&c| c == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

/// The first byte sysup refuses in a path, named: a NUL (no filesystem
/// can hold it) or a newline (it forges lines in every line-based listing
/// an admin reads — `find`, logs, `sysup verify` — as dpkg also refuses).
pub fn bad_byte(p: &[u8]) -> Option<&'static str> {
    p.iter().find_map(|&c| match c {
        0 => Some("a NUL byte"),
        b'\n' => Some("a newline"),
        _ => None,
    })
}

/// A dist's MANIFEST: entries sorted by official path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    entries: Vec<Entry>,
}

impl Manifest {
    /// Build from entries in any order; refuses duplicate or unsafe paths.
    pub fn new(mut entries: Vec<Entry>) -> Result<Manifest> {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        for w in entries.windows(2) {
            if w[0].path == w[1].path {
                return Err(Error::Refused(format!(
                    "duplicate path '{}' in manifest",
                    w[0].display()
                )));
            }
        }
        Ok(Manifest { entries })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The index of the entry at official path `path`.
    pub fn position(&self, path: &[u8]) -> Option<usize> {
        self.entries
            .binary_search_by(|e| e.path.as_slice().cmp(path))
            .ok()
    }

    /// Look an entry up by official path.
    pub fn get(&self, path: &[u8]) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.path.as_slice().cmp(path))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// The MANIFEST text.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(self.entries.len() * 128);
        s.push_str(HEADER);
        s.push('\n');
        for e in &self.entries {
            render_entry(&mut s, e);
            s.push('\n');
        }
        s
    }

    /// Parse MANIFEST text; `path` names the source in errors.
    pub fn parse(path: &Path, text: &[u8]) -> Result<Manifest> {
        Manifest::read(path, text, MAX_ENTRIES)
    }

    /// Parse MANIFEST text line by line as it is read from `r`, holding the
    /// entries but never the text, so a hostile MANIFEST (a gzip bomb of
    /// zeros, a line without end) is refused at its first bad line. More
    /// than `max_entries` entries (the count the dist's DIST announced;
    /// never more than [`MAX_ENTRIES`]) is an error at the first extra one.
    pub fn read(path: &Path, mut r: impl BufRead, max_entries: u64) -> Result<Manifest> {
        let err = |line: usize, reason: String| Error::Metadata {
            what: "MANIFEST",
            path: PathBuf::from(path),
            reason: if line == 0 {
                reason
            } else {
                format!("line {line}: {reason}")
            },
        };
        let max_entries = max_entries.min(MAX_ENTRIES);
        let mut entries: Vec<Entry> = Vec::new();
        let mut below = NonDirPrefixes::default();
        let mut buf = Vec::new();
        for n in 1.. {
            buf.clear();
            (&mut r)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(|e| Error::from_io(e, "read", path))?;
            if buf.is_empty() {
                if n == 1 {
                    return Err(err(1, format!("expected '{HEADER}'")));
                }
                break;
            }
            if buf.last() == Some(&b'\n') {
                buf.pop();
            } else if buf.len() > MAX_LINE {
                return Err(err(n, format!("longer than {MAX_LINE} bytes")));
            }
            let line = std::str::from_utf8(&buf).map_err(|_| err(n, "not UTF-8 text".into()))?;
            if n == 1 {
                if line != HEADER {
                    return Err(err(1, format!("expected '{HEADER}'")));
                }
                continue;
            }
            if line.is_empty() {
                continue;
            }
            if entries.len() as u64 >= max_entries {
                return Err(err(
                    n,
                    format!("more than the {max_entries} entries the dist announced"),
                ));
            }
            let e = parse_entry(line).map_err(|r| err(n, r))?;
            let prev = entries.last().map_or(&b""[..], |last| &last.path);
            if prev >= e.path.as_slice() && !entries.is_empty() {
                return Err(err(
                    0,
                    format!("paths not sorted or duplicated at '{}'", e.display()),
                ));
            }
            // Nothing below a non-directory of the same MANIFEST: whoever
            // writes `a/b/x` must never have to go through `a` the symlink.
            if let Some((len, kind)) = below.check(prev, &e.path) {
                return Err(err(
                    n,
                    format!(
                        "'{}' is below '{}', which is a {}",
                        escape(&e.path),
                        escape(&e.path[..len]),
                        kind.as_str()
                    ),
                ));
            }
            below.push(&e);
            entries.push(e);
        }
        Ok(Manifest { entries })
    }
}

/// The check that nothing is listed below a non-directory, in time linear
/// in the MANIFEST's size (the ancestors' lookups it replaces grew with the
/// cube of a path's depth).
///
/// Entries come sorted, so every listed entry that is a proper byte-prefix
/// of a path `p` is also a byte-prefix of (or equal to) the entry just
/// before `p`: anything sorting between `a` and `a/x` starts with `a`. The
/// stack holds the listed non-directories that are byte-prefixes of the
/// previous entry, shortest first; those longer than the common prefix of
/// the previous entry and `p` are dropped, and the rest are byte-prefixes of
/// `p`, so `p` is below one of them exactly when `p` has a `/` right after
/// it. Their lengths are also marked in `at`, so each `/` of `p` costs one
/// look-up.
#[derive(Default)]
struct NonDirPrefixes {
    stack: Vec<usize>,
    /// `at[len]`: the kind of the stacked entry of that length.
    at: Vec<Option<Kind>>,
}

impl NonDirPrefixes {
    /// The length and kind of a listed non-directory above `path`, given
    /// the previous entry's path.
    fn check(&mut self, prev: &[u8], path: &[u8]) -> Option<(usize, Kind)> {
        let common = prev.iter().zip(path).take_while(|(a, b)| a == b).count();
        while self.stack.last().is_some_and(|&len| len > common) {
            let len = self.stack.pop().unwrap_or_default();
            self.at[len] = None;
        }
        if self.stack.is_empty() {
            return None;
        }
        path.iter()
            .enumerate()
            .filter(|(_, &c)| c == b'/')
            .find_map(|(i, _)| self.at.get(i).copied().flatten().map(|k| (i, k)))
    }

    /// Note an entry that passed [`NonDirPrefixes::check`].
    fn push(&mut self, e: &Entry) {
        if e.kind == Kind::Dir {
            return;
        }
        let len = e.path.len();
        if self.at.len() <= len {
            self.at.resize(len + 1, None);
        }
        self.at[len] = Some(e.kind);
        self.stack.push(len);
    }
}

/// Why a path or link target is too long or too deep for a MANIFEST, if it
/// is; `what` is "path" or "link".
pub fn shape_error(what: &str, p: &[u8]) -> Option<String> {
    if p.len() > MAX_PATH {
        return Some(format!(
            "{what} of {} bytes is longer than the {MAX_PATH} bytes allowed: '{}…'",
            p.len(),
            escape(&p[..64])
        ));
    }
    let depth = p.split(|&c| c == b'/').count();
    if what == "path" && depth > MAX_DEPTH {
        return Some(format!(
            "path '{}…' is {depth} levels deep, more than the {MAX_DEPTH} allowed",
            escape(&p[..p.len().min(64)])
        ));
    }
    None
}

fn render_entry(s: &mut String, e: &Entry) {
    let _ = write!(
        s,
        "{} type={} mode={:04o} uid={} gid={} mtime={}",
        escape(&e.path),
        e.kind.as_str(),
        e.mode,
        e.uid,
        e.gid,
        e.mtime
    );
    if matches!(e.kind, Kind::File | Kind::Hardlink) {
        let _ = write!(s, " size={}", e.size);
    }
    if let Some(h) = &e.sha256 {
        let _ = write!(s, " sha256={}", hex::encode(h));
    }
    if let Some(l) = &e.link {
        let _ = write!(s, " link={}", escape(l));
    }
    if let Some((ma, mi)) = e.dev {
        let _ = write!(s, " dev={ma},{mi}");
    }
    for (k, v) in &e.xattrs {
        let _ = write!(s, " xattr.{}={}", escape(k.as_bytes()), hex::encode(v));
    }
    match (e.critical, e.config) {
        (true, true) => s.push_str(" flags=critical,config"),
        (true, false) => s.push_str(" flags=critical"),
        (false, true) => s.push_str(" flags=config"),
        (false, false) => {}
    }
}

fn parse_entry(line: &str) -> std::result::Result<Entry, String> {
    let mut fields = line.split(' ');
    let path = fields.next().unwrap_or_default();
    let path = unescape(path).ok_or_else(|| format!("bad escape in path '{path}'"))?;
    if let Some(why) = shape_error("path", &path) {
        return Err(why);
    }
    if let Some(what) = bad_byte(&path) {
        return Err(format!("path '{}' contains {what}", escape(&path)));
    }
    if !is_safe_rel(&path) {
        return Err(format!("unsafe path '{}'", String::from_utf8_lossy(&path)));
    }
    let mut e = Entry::new(path, Kind::File);
    let mut kind = None;
    let mut keys: Vec<&str> = Vec::new();
    for f in fields {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| format!("field '{f}' is not key=value"))?;
        if keys.contains(&k) {
            return Err(format!("key '{k}' given twice"));
        }
        keys.push(k);
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{k}: bad number '{v}'"))
        };
        match k {
            "type" => kind = Some(Kind::parse(v).ok_or_else(|| format!("unknown type '{v}'"))?),
            "mode" => {
                e.mode = u32::from_str_radix(v, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| format!("bad mode '{v}'"))?
            }
            "uid" => e.uid = num(v)?,
            "gid" => e.gid = num(v)?,
            "mtime" => e.mtime = v.parse().map_err(|_| format!("bad mtime '{v}'"))?,
            "size" => e.size = num(v)?,
            "sha256" => {
                let mut h = [0u8; 32];
                hex::decode_to_slice(v, &mut h).map_err(|_| format!("bad sha256 '{v}'"))?;
                e.sha256 = Some(h);
            }
            "link" => {
                let l = unescape(v).ok_or_else(|| format!("bad escape in link '{v}'"))?;
                if l.contains(&0) {
                    return Err(format!("link target '{v}' contains a NUL byte"));
                }
                if let Some(why) = shape_error("link", &l) {
                    return Err(why);
                }
                e.link = Some(l);
            }
            "dev" => {
                let (a, b) = v.split_once(',').ok_or_else(|| format!("bad dev '{v}'"))?;
                let a = a.parse().map_err(|_| format!("bad dev '{v}'"))?;
                let b = b.parse().map_err(|_| format!("bad dev '{v}'"))?;
                e.dev = Some((a, b));
            }
            "flags" => {
                for flag in v.split(',') {
                    match flag {
                        "critical" => e.critical = true,
                        "config" => e.config = true,
                        _ => return Err(format!("unknown flag '{flag}'")),
                    }
                }
            }
            _ if k.starts_with("xattr.") => {
                let name = unescape(&k[6..])
                    .and_then(|n| String::from_utf8(n).ok())
                    .ok_or_else(|| format!("bad xattr name '{k}'"))?;
                let val = hex::decode(v).map_err(|_| format!("bad xattr value for '{name}'"))?;
                e.xattrs.insert(name, val);
            }
            _ => return Err(format!("unknown key '{k}'")),
        }
    }
    e.kind = kind.ok_or("missing type")?;
    // Only the fields of its kind: a fifo with a size or a directory with
    // device numbers says two things at once (and would not render back).
    let owns = |key: &str| match key {
        "size" | "sha256" | "flags" => matches!(e.kind, Kind::File | Kind::Hardlink),
        "link" => matches!(e.kind, Kind::Symlink | Kind::Hardlink),
        "dev" => matches!(e.kind, Kind::Char | Kind::Block),
        _ => true,
    };
    if let Some(k) = keys.iter().find(|k| !owns(k)) {
        return Err(format!(
            "'{}' is a {} and cannot have '{k}'",
            e.display(),
            e.kind.as_str()
        ));
    }
    match e.kind {
        Kind::File | Kind::Hardlink if e.sha256.is_none() => {
            return Err(format!("'{}' has no sha256", e.display()))
        }
        Kind::Symlink | Kind::Hardlink if e.link.is_none() => {
            return Err(format!("'{}' has no link target", e.display()))
        }
        Kind::Char | Kind::Block if e.dev.is_none() => {
            return Err(format!("'{}' has no dev numbers", e.display()))
        }
        _ => {}
    }
    if e.kind == Kind::Hardlink && !e.link.as_deref().is_some_and(is_safe_rel) {
        return Err(format!("'{}' is a hardlink to an unsafe path", e.display()));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<Entry> {
        let mut f = Entry::new(b"usr/bin/ping".to_vec(), Kind::File);
        f.mode = 0o4755;
        f.size = 3;
        f.mtime = 1_700_000_000;
        f.sha256 = Some([7; 32]);
        f.xattrs
            .insert("security.capability".into(), vec![1, 0, 0, 2]);
        let mut l = Entry::new(b"lib".to_vec(), Kind::Symlink);
        l.link = Some(b"usr/lib".to_vec());
        l.mode = 0o777;
        let mut c = Entry::new(b"usr/lib/libc.so.6".to_vec(), Kind::File);
        c.sha256 = Some([1; 32]);
        c.critical = true;
        let mut d = Entry::new(b"dev/null".to_vec(), Kind::Char);
        d.dev = Some((1, 3));
        d.mode = 0o666;
        let mut w = Entry::new(b"etc/we ird\t\xff=\\name".to_vec(), Kind::File);
        w.sha256 = Some([2; 32]);
        w.config = true;
        vec![f, l, c, d, w]
    }

    #[test]
    fn render_parse_round_trip() {
        let m = Manifest::new(sample()).unwrap();
        let text = m.render();
        assert!(text.lines().all(|l| !l.contains('\t')));
        assert_eq!(text.lines().count(), 6, "one line per entry:\n{text}");
        let back = Manifest::parse(Path::new("M"), text.as_bytes()).unwrap();
        assert_eq!(back, m);
        assert!(back
            .get(b"usr/bin/ping")
            .unwrap()
            .xattrs
            .contains_key("security.capability"));
    }

    #[test]
    fn bad_manifests_are_refused_with_the_line() {
        let p = Path::new("x/MANIFEST");
        for (text, needle) in [
            ("nope\n", "line 1"),
            ("#sysup-manifest 1\n../etc type=dir mode=0755 uid=0 gid=0 mtime=0\n", "unsafe"),
            ("#sysup-manifest 1\na type=file mode=0644 uid=0 gid=0 mtime=0 size=1\n", "sha256"),
            ("#sysup-manifest 1\na type=blob mode=0644 uid=0 gid=0 mtime=0\n", "unknown type"),
            ("#sysup-manifest 1\nb type=dir mode=0755 uid=0 gid=0 mtime=0\na type=dir mode=0755 uid=0 gid=0 mtime=0\n", "sorted"),
            ("#sysup-manifest 1\na type=dir mode=17777 uid=0 gid=0 mtime=0\n", "mode"),
            ("#sysup-manifest 1\na type=hardlink mode=0644 uid=0 gid=0 mtime=0 size=0 sha256=0000000000000000000000000000000000000000000000000000000000000000 link=/etc/shadow\n", "unsafe"),
            // found by fuzzing (manifest_parse): fields of another kind
            ("#sysup-manifest 1\np type=fifo mode=0600 uid=0 gid=0 mtime=0 size=300\n", "is a fifo and cannot have 'size'"),
            ("#sysup-manifest 1\nd type=dir mode=0755 uid=0 gid=0 mtime=0 dev=1,3\n", "cannot have 'dev'"),
            ("#sysup-manifest 1\na type=dir mode=0755 uid=0 gid=0 mtime=0 mode=0700\n", "key 'mode' given twice"),
        ] {
            let e = Manifest::parse(p, text.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("x/MANIFEST"), "{e}");
        }
    }

    #[test]
    fn nul_and_newline_are_refused_by_name() {
        let p = Path::new("x/MANIFEST");
        for (line, needle) in [
            (
                "etc/a\\x0ab type=dir mode=0755 uid=0 gid=0 mtime=0",
                "contains a newline",
            ),
            (
                "etc/a\\x00b type=dir mode=0755 uid=0 gid=0 mtime=0",
                "contains a NUL byte",
            ),
            (
                "l type=symlink mode=0777 uid=0 gid=0 mtime=0 link=a\\x00b",
                "NUL byte",
            ),
        ] {
            let text = format!("{HEADER}\n{line}\n");
            let e = Manifest::parse(p, text.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("line 2"), "{e}");
        }
    }

    #[test]
    fn reading_stops_at_the_first_bad_line_of_an_endless_stream() {
        // a "gzip bomb" of zeros, and of one endless line: refused at once
        let e = Manifest::read(
            Path::new("M"),
            std::io::BufReader::new(std::io::repeat(0)),
            10,
        )
        .unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let endless = std::io::Cursor::new(format!("{HEADER}\n")).chain(std::io::repeat(b'a'));
        let e = Manifest::read(Path::new("M"), std::io::BufReader::new(endless), 10).unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
        // more entries than announced: refused at the first extra line
        let lines: String = (0..5)
            .map(|i| format!("d{i} type=dir mode=0755 uid=0 gid=0 mtime=0\n"))
            .collect();
        let text = format!("{HEADER}\n{lines}");
        let e = Manifest::read(Path::new("M"), text.as_bytes(), 3).unwrap_err();
        assert!(
            e.to_string().contains("line 5: more than the 3 entries"),
            "{e}"
        );
        assert_eq!(
            Manifest::read(Path::new("M"), text.as_bytes(), 5)
                .unwrap()
                .entries()
                .len(),
            5
        );
    }

    #[test]
    fn safe_paths() {
        assert!(is_safe_rel(b"usr/bin/ls"));
        for bad in [
            &b""[..],
            b"/etc",
            b"a/../b",
            b"./a",
            b"a//b",
            b"a/",
            b"a\0b",
            b"a\nb",
            b"..",
        ] {
            assert!(!is_safe_rel(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    proptest! {
        #[test]
        fn escape_round_trips(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let s = escape(&b);
            prop_assert!(!s.contains(' ') && !s.contains('\n') && !s.contains('='));
            prop_assert_eq!(unescape(&s).unwrap(), b);
        }

        #[test]
        fn parser_never_panics(s in "\\PC{0,200}") {
            let _ = Manifest::parse(Path::new("M"), format!("{HEADER}\n{s}").as_bytes());
        }
    }
}
