//! MANIFEST (docs/design.md §2): the list of every entry a dist installs, with the
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
//! a target, and a hard link to a listed file lists that file's mode,
//! owner, mtime, content and extended attributes; anything else is an
//! error naming the line (or, for the last rule, both paths). Reading is bounded:
//! [`Manifest::read`] holds entries, never the whole text, and stops at the
//! first line over [`MAX_LINE`] bytes or the first entry over the count the
//! dist announced (at most [`MAX_ENTRIES`]); its time is linear in the
//! text (the check that nothing is below a non-directory included).
//!
//! Its parts: this file holds the entries and the reader; `text` one line's
//! rendering, parsing and escaping; `shape` the rules a path must follow.

mod shape;
mod text;

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use shape::NonDirPrefixes;
pub use shape::{bad_byte, is_safe_rel, shape_error};
pub use text::{escape, unescape};
use text::{parse_entry, render_entry};

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
        let m = Manifest { entries };
        if let Some(why) = m.link_disagreement() {
            return Err(err(0, why));
        }
        Ok(m)
    }

    /// The first hard link whose entry says something of its inode that
    /// the file it links to contradicts. One inode has one mode, owner,
    /// mtime, content and set of extended attributes: a dist listing two
    /// would have the host keep whichever was set last. (A link to what is
    /// not a file of this MANIFEST is refused where the dist is staged.)
    fn link_disagreement(&self) -> Option<String> {
        self.entries
            .iter()
            .filter(|e| e.kind == Kind::Hardlink)
            .find_map(|e| {
                let f = e
                    .link
                    .as_deref()
                    .and_then(|t| self.get(t))
                    .filter(|f| f.kind == Kind::File)?;
                let what = [
                    (e.mode != f.mode, "mode"),
                    ((e.uid, e.gid) != (f.uid, f.gid), "owner"),
                    (e.mtime != f.mtime, "mtime"),
                    ((e.size, e.sha256) != (f.size, f.sha256), "content"),
                    (e.xattrs != f.xattrs, "extended attributes"),
                ]
                .into_iter()
                .find_map(|(differs, what)| differs.then_some(what))?;
                Some(format!(
                    "'{}' is a hard link to '{}' but lists another {what}: one inode has one",
                    e.display(),
                    f.display()
                ))
            })
    }
}

#[cfg(test)]
mod tests;
