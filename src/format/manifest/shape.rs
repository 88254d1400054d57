//! The shape rules of MANIFEST paths: which paths are safe to join onto a
//! root, which bytes are refused, how long and deep a path may be, and the
//! check that nothing is listed below a non-directory.
//!
//! Invariants: the checks are pure functions of the bytes; the below-a-
//! non-directory check runs in time linear in the MANIFEST's size.

use super::{escape, Entry, Kind, MAX_DEPTH, MAX_PATH};

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
pub(super) struct NonDirPrefixes {
    stack: Vec<usize>,
    /// `at[len]`: the kind of the stacked entry of that length.
    at: Vec<Option<Kind>>,
}

impl NonDirPrefixes {
    /// The length and kind of a listed non-directory above `path`, given
    /// the previous entry's path.
    pub(super) fn check(&mut self, prev: &[u8], path: &[u8]) -> Option<(usize, Kind)> {
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
    pub(super) fn push(&mut self, e: &Entry) {
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
