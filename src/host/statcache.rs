//! The stat cache (`var/db/sysup/stat-<name>`): the inode number and ctime
//! of every regular file an apply left holding its MANIFEST content, so the
//! next upgrade can skip a file unread only when it is provably the same
//! inode, untouched since — as git's index does. Size and mtime alone are
//! not proof: `touch -r` puts an mtime back, while ctime moves on any
//! write, chmod, chown, xattr change or rename and cannot be set back.
//!
//! Text: a `#sysup-stat 1 <id> <entries>` line, then one line per entry of
//! that dist's MANIFEST, in its order: `<ino> <ctime in ns>`, or `-` for an
//! entry that is not a file or whose content sysup did not leave there (a
//! kept config file).
//!
//! Invariants: a cache is only used for the installed id it names and the
//! entry count of that id's MANIFEST; anything unreadable, malformed or
//! stale makes it empty, which only costs reading files. It is written
//! after an apply committed and before its cleanup (whose upgrade step may
//! change files), from an lstat of each live file (two threads share
//! them; the cache is a list in MANIFEST order either way): a file
//! changed between the moment the apply checked it and that lstat (the
//! same apply, within seconds) is recorded as it is then, the window git's
//! index has too. Reading is capped ([`MAX_LINE`] bytes a line, the
//! MANIFEST's entry cap).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};

use crate::error::Result;
use crate::format::manifest::{Entry, Kind, Manifest, MAX_ENTRIES};
use crate::format::name::{DistId, DistName};
use crate::host::plan::split;
use crate::host::root::{Resolver, Root, Stat};
use crate::host::state::State;
use crate::util::halves::in_halves;

const HEADER: &str = "#sysup-stat 1";
const MAX_LINE: u64 = 128;

/// (inode, ctime in ns) per MANIFEST entry; inode 0 for none.
#[derive(Debug, Default)]
pub struct StatCache {
    stats: Vec<(u64, i64)>,
}

/// The record's name in the state directory.
fn name_of(name: &DistName) -> String {
    format!("stat-{name}")
}

fn ctime_ns(st: &Stat) -> i64 {
    st.ctime
        .saturating_mul(1_000_000_000)
        .saturating_add(st.ctime_nsec)
}

/// Fewest entries worth a second thread.
const SPLIT_MIN: usize = 4096;

/// The lstat of `e`'s live object if it is a regular file whose content
/// sysup left there (not one of the `kept` config files).
fn live_file(res: &mut Resolver<'_>, e: &Entry, kept: &[Vec<u8>]) -> Option<Stat> {
    if e.kind != Kind::File || kept.contains(&e.path) {
        return None;
    }
    let (parent, name) = split(&e.path);
    res.dir(parent)
        .and_then(|d| d.stat(name))
        .ok()
        .flatten()
        .filter(|st| st.is_file())
}

impl StatCache {
    /// The cache recorded for `id` with `entries` MANIFEST entries; empty
    /// when there is none that fits.
    pub fn load(state: &State, id: &DistId, entries: usize) -> StatCache {
        Self::read(state, id, entries).unwrap_or_default()
    }

    fn read(state: &State, id: &DistId, entries: usize) -> Option<StatCache> {
        // through the state's descriptor, never a link (state.rs)
        let f = state
            .open_file(&name_of(&id.name), libc::O_RDONLY, 0)
            .ok()??;
        let mut r = BufReader::new(f);
        let mut line = String::new();
        let mut next = |line: &mut String| -> Option<()> {
            line.clear();
            (&mut r).take(MAX_LINE).read_line(line).ok()?;
            line.ends_with('\n').then(|| {
                line.pop();
            })
        };
        next(&mut line)?;
        if line != format!("{HEADER} {id} {entries}") || entries as u64 > MAX_ENTRIES {
            return None;
        }
        let mut stats = Vec::with_capacity(entries);
        for _ in 0..entries {
            next(&mut line)?;
            stats.push(match line.split_once(' ') {
                Some((ino, ns)) => (ino.parse().ok()?, ns.parse().ok()?),
                None if line == "-" => (0, 0),
                None => return None,
            });
        }
        Some(StatCache { stats })
    }

    /// Whether entry `index` of the cached MANIFEST is the live file `st`,
    /// untouched since it was recorded.
    pub fn unchanged(&self, index: usize, st: &Stat) -> bool {
        self.stats
            .get(index)
            .is_some_and(|&(ino, ns)| ino != 0 && ino == st.ino && ns == ctime_ns(st))
    }

    /// Record the live files of `manifest`, installed as `id`, except the
    /// `kept` ones (config files whose content is the admin's). Writes
    /// `stat-<name>` atomically.
    pub fn record(
        root: &Root,
        state: &State,
        id: &DistId,
        manifest: &Manifest,
        kept: &[Vec<u8>],
    ) -> Result<()> {
        let entries = manifest.entries();
        let mut text = format!("{HEADER} {id} {}\n", entries.len());
        let lines = |part: &[Entry]| -> String {
            let mut res = Resolver::new(root, std::iter::empty());
            let mut out = String::with_capacity(part.len() * 24);
            for e in part {
                match live_file(&mut res, e, kept) {
                    Some(st) => {
                        let _ = writeln!(out, "{} {}", st.ino, ctime_ns(&st));
                    }
                    None => out.push_str("-\n"),
                }
            }
            out
        };
        // Two halves on two threads (the machine's other core is idle by
        // now); every lstat still comes after the commit.
        let (a, b) = in_halves(entries, SPLIT_MIN, "sysup-statc", lines);
        text.push_str(&a);
        text.push_str(b.as_deref().unwrap_or_default());
        crate::host::state::write_atomic_at(
            state.fd(),
            state.dir(),
            &name_of(&id.name),
            text.as_bytes(),
            0o600,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// Past [`SPLIT_MIN`] the lstats are shared by two threads: the record
    /// is still one line per entry in MANIFEST order, each the live file's
    /// own, and `-` for what is not a shipped file.
    #[test]
    fn a_split_record_keeps_manifest_order() {
        let t = tempfile::tempdir().unwrap();
        let n = SPLIT_MIN + 101;
        let mut entries = vec![Entry::new(b"d".to_vec(), Kind::Dir)];
        for i in 0..n {
            let name = format!("d/f{i:05}");
            std::fs::create_dir_all(t.path().join("d")).unwrap();
            if i % 7 != 3 {
                std::fs::write(t.path().join(&name), i.to_string()).unwrap();
            }
            entries.push(Entry::new(name.into_bytes(), Kind::File));
        }
        let m = Manifest::new(entries).unwrap();
        let root = Root::open(t.path()).unwrap();
        let state = State::open(t.path()).unwrap();
        let id: DistId = "world-1-20260101".parse().unwrap();
        let kept = vec![b"d/f00010".to_vec()];
        StatCache::record(&root, &state, &id, &m, &kept).unwrap();
        let cache = StatCache::load(&state, &id, m.entries().len());
        assert_eq!(cache.stats.len(), m.entries().len());
        for (i, e) in m.entries().iter().enumerate() {
            let p = t.path().join(std::str::from_utf8(&e.path).unwrap());
            let want = match std::fs::symlink_metadata(&p) {
                Ok(md) if md.is_file() && e.path != b"d/f00010" => {
                    (md.ino(), md.ctime() * 1_000_000_000 + md.ctime_nsec())
                }
                _ => (0, 0),
            };
            assert_eq!(cache.stats[i], want, "{}", String::from_utf8_lossy(&e.path));
        }
    }
}
