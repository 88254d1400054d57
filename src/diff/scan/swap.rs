//! The swap of MANIFESTs between the two scans of a diff, and what each scan
//! makes of the other's: the files both dists hold identical, whose data
//! need not be written to the temporary files.
//!
//! Invariants: neither scan ever waits for a scan that failed (a [`Turn`]
//! dropped before it swapped leaves `None`); an old copy of an identical
//! file is left out only when no new member could pair with it by
//! [`version_key`], the same rule pairing uses.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use super::Role;
use crate::diff::version_key::version_key;
use crate::format::manifest::{Kind, Manifest};

/// Where the two scans of a diff swap MANIFESTs: each leaves its own (or
/// `None`: no MANIFEST, or it failed) and then waits for the other's.
#[derive(Default)]
pub(super) struct Meeting {
    /// Old's and new's, once left.
    slots: Mutex<[Option<Option<Arc<Manifest>>>; 2]>,
    left: Condvar,
}

impl Meeting {
    fn slot(role: Role) -> usize {
        match role {
            Role::Old => 0,
            Role::New => 1,
        }
    }

    fn leave(&self, role: Role, mine: Option<Arc<Manifest>>) {
        let mut s = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        s[Self::slot(role)].get_or_insert(mine);
        self.left.notify_all();
    }

    fn wait_for_other(&self, role: Role) -> Option<Arc<Manifest>> {
        let other = 1 - Self::slot(role);
        let mut s = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        while s[other].is_none() {
            s = self.left.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        s[other].clone().flatten()
    }
}

/// One scan's side of the [`Meeting`]; leaves `None` if dropped before it
/// swapped, so the other scan never waits for a failed one.
pub(super) struct Turn<'a> {
    meeting: &'a Meeting,
    role: Role,
    /// The MANIFESTs were swapped (or this side's was left).
    pub(super) swapped: bool,
}

impl<'a> Turn<'a> {
    pub(super) fn new(meeting: &'a Meeting, role: Role) -> Turn<'a> {
        Turn {
            meeting,
            role,
            swapped: false,
        }
    }

    pub(super) fn swap(&mut self, mine: Option<Arc<Manifest>>) -> Option<Arc<Manifest>> {
        self.swapped = true;
        self.meeting.leave(self.role, mine);
        self.meeting.wait_for_other(self.role)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if !self.swapped {
            self.meeting.leave(self.role, None);
        }
    }
}

/// A file both MANIFESTs list identical, as one scan must find it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Expected {
    pub(super) size: u64,
    pub(super) sha256: [u8; 32],
    /// Write its data to the temporary file anyway (old side: it may be
    /// the diff base of a new member paired by version-stripped name).
    pub(super) spool: bool,
}

/// The files `old` and `new` both list under the same member name with the
/// same size and SHA-256, by member name, as the scan of `role` treats them.
///
/// Pairing ([`crate::diff::pairing`]) takes the old member of the same
/// name for a new member that has one, so the old copy of an identical file
/// is only ever a diff base for a new member whose name the old dist lacks
/// and whose version-stripped name is the same: those old copies are spooled.
pub(super) fn identical_files(
    old: &Manifest,
    new: &Manifest,
    role: Role,
) -> HashMap<Vec<u8>, Expected> {
    // Tar names of directories may end in '/': both spellings count.
    let names = |m: &Manifest| -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        for e in m.entries() {
            let name = e.member_name();
            if e.kind == Kind::Dir {
                let mut slash = name.clone();
                slash.push(b'/');
                v.push(slash);
            }
            v.push(name);
        }
        v
    };
    let old_names: HashSet<Vec<u8>> = names(old).into_iter().collect();
    let new_only_keys: HashSet<Vec<u8>> = match role {
        Role::Old => names(new)
            .iter()
            .filter(|n| !old_names.contains(*n))
            .map(|n| version_key(n))
            .collect(),
        Role::New => HashSet::new(),
    };
    let mut out = HashMap::new();
    for e in new.entries() {
        let (Some(o), Some(sha256)) = (old.get(&e.path), e.sha256) else {
            continue;
        };
        let same = e.kind == Kind::File
            && o.kind == Kind::File
            && e.size > 0
            && o.size == e.size
            && o.sha256 == e.sha256
            && o.critical == e.critical;
        if !same {
            continue;
        }
        let name = e.member_name();
        let spool = role == Role::Old && new_only_keys.contains(&version_key(&name));
        out.insert(
            name,
            Expected {
                size: e.size,
                sha256,
                spool,
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::Entry;

    fn file(path: &str, size: u64, sha: u8, critical: bool) -> Entry {
        let mut e = Entry::new(path.as_bytes().to_vec(), Kind::File);
        e.size = size;
        e.sha256 = Some([sha; 32]);
        e.critical = critical;
        e
    }

    fn dir(path: &str) -> Entry {
        Entry::new(path.as_bytes().to_vec(), Kind::Dir)
    }

    #[test]
    fn identical_files_are_left_out_unless_a_new_name_may_pair_with_them() {
        let old = Manifest::new(vec![
            dir("lib"),
            file("lib/libc.so.6", 10, 1, true),
            file("lib/libfoo.so.1", 20, 2, false),
            file("lib/libbar.so.1", 30, 3, false),
            file("bin/same", 40, 4, false),
            file("bin/changed", 50, 5, false),
            file("bin/resized", 60, 6, false),
            file("bin/now-critical", 70, 7, false),
            file("bin/empty", 0, 0, false),
            file("usr/python3.11", 80, 8, false),
        ])
        .unwrap();
        let new = Manifest::new(vec![
            dir("lib"),
            file("lib/libc.so.6", 10, 1, true),
            file("lib/libfoo.so.1", 20, 2, false),
            // New beside an identical libfoo.so.1: may pair with it.
            file("lib/libfoo.so.2", 21, 9, false),
            // Replaces libbar.so.1, whose old copy is still a candidate base
            // but has no identical twin.
            file("lib/libbar.so.2", 31, 3, false),
            file("bin/same", 40, 4, false),
            file("bin/changed", 50, 15, false),
            file("bin/resized", 61, 6, false),
            file("bin/now-critical", 70, 7, true),
            file("bin/empty", 0, 0, false),
            file("usr/python3.11", 80, 8, false),
            // A new directory whose version-stripped name is the file's.
            dir("usr/python3.12"),
        ])
        .unwrap();
        let found = |role| {
            let mut v: Vec<(String, bool)> = identical_files(&old, &new, role)
                .into_iter()
                .map(|(k, e)| (String::from_utf8(k).unwrap(), e.spool))
                .collect();
            v.sort();
            v
        };
        let s = |p: &str, spool| (p.to_string(), spool);
        assert_eq!(
            found(Role::New),
            vec![
                s("bin/same", false),
                s("lib/libc.so.6.new", false),
                s("lib/libfoo.so.1", false),
                s("usr/python3.11", false),
            ]
        );
        assert_eq!(
            found(Role::Old),
            vec![
                s("bin/same", false),
                s("lib/libc.so.6.new", false),
                s("lib/libfoo.so.1", true),
                s("usr/python3.11", true),
            ]
        );
        let e = identical_files(&old, &new, Role::Old)[&b"bin/same"[..]];
        assert_eq!((e.size, e.sha256), (40, [4; 32]));
    }
}
