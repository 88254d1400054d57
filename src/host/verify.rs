//! `sysup verify`: the installed tree against the MANIFEST of the installed
//! base — content hash, type, mode, owner, link target, device numbers,
//! the extended attributes the entry carries and a file capability it
//! does not ([`xattr_compared`]) — plus files nobody shipped in
//! directories whose content the dist ships. Other local attributes (a
//! host's LSM labels, an admin's `user.*`, a filesystem's own `trusted.*`)
//! are not the dist's and are never read.
//!
//! Invariants: read-only (nothing on the root is changed; `--repair` is a
//! separate re-apply of the installed base, [`repair`]); paths are reached through the
//! same containment as apply (a dist directory that became a symlink is
//! reported, never followed). **Drift** is shipped content that differs or
//! is missing, and only that: locally modified config files are listed
//! apart, files no dist ships ("extras": an admin's `etc/myapp.conf`, a
//! home directory) are listed but are never drift — `--repair` could not
//! clear them, and a correctly configured host must verify clean — and
//! sysup's own files ([`sysup_own`]) are never listed at all.

use std::collections::{BTreeMap, HashSet};
use std::io;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::manifest::{Entry, Kind, Manifest};
use crate::format::name::DistId;
use crate::host::plan::{join, split};
use crate::host::root::{Dir, Resolver, Root, Stat};
use crate::host::state::{State, STATE_DIR};
use crate::util::digest::Sha256;
use crate::util::fsutil::{read_fd_xattrs_where, xattr_compared};
use crate::util::progress::{Progress, Unit};

mod repair;
pub use repair::repair;

/// One damaged entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Damage {
    pub path: String,
    /// What differs: `type`, `content`, `mode`, `owner`, `link`, `device`,
    /// `xattr`.
    pub what: Vec<&'static str>,
    /// With `xattr`: each extended attribute that differs, by name —
    /// `added` (on disk only), `removed` (in the MANIFEST only) or
    /// `changed` (another value).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, &'static str>,
}

/// How the live object's extended attributes differ from its entry's, by
/// name. `live` holds only the names compared for that entry (the entry's
/// own and a capability: see [`xattr_compared`]).
pub fn xattr_drift(
    entry: &BTreeMap<String, Vec<u8>>,
    live: &BTreeMap<String, Vec<u8>>,
) -> BTreeMap<String, &'static str> {
    let mut out = BTreeMap::new();
    for (k, v) in entry {
        match live.get(k) {
            None => out.insert(k.clone(), "removed"),
            Some(l) if l != v => out.insert(k.clone(), "changed"),
            Some(_) => None,
        };
    }
    for k in live.keys().filter(|k| !entry.contains_key(*k)) {
        out.insert(k.clone(), "added");
    }
    out
}

/// What verify found for one dist name.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Findings {
    pub id: Option<DistId>,
    pub modified: Vec<Damage>,
    pub missing: Vec<String>,
    /// Entries no installed dist ships, in directories whose content a dist
    /// ships (not drift).
    pub extra: Vec<String>,
    /// Config files that differ from what was shipped (not damage).
    pub config_modified: Vec<String>,
    pub checked: u64,
}

impl Findings {
    /// Whether shipped content drifted (config edits and extras do not count).
    pub fn drifted(&self) -> bool {
        !(self.modified.is_empty() && self.missing.is_empty())
    }
}

/// sysup's own files in a root, which no dist ships and verify never lists:
/// its state directory (and the directories leading to it), its host
/// configuration `etc/sysup.conf`, its key directory `etc/sysup/` (where
/// docs/mirrors.md installs the mirror's public key), and the
/// `<path>.sysupnew` and `<path>.sysupmerge` files it writes beside kept
/// config files (and `<path>.sysupresolve`, `config resolve`'s temporary).
pub fn sysup_own(path: &[u8]) -> bool {
    let under =
        |dir: &[u8]| path == dir || (path.starts_with(dir) && path.get(dir.len()) == Some(&b'/'));
    let state = STATE_DIR.as_bytes();
    under(state)
        || (state.starts_with(path) && state.get(path.len()) == Some(&b'/'))
        || path == crate::host::conf::CONF_FILE.as_bytes()
        || under(b"etc/sysup")
        || path.ends_with(b".sysupnew")
        || path.ends_with(b".sysupmerge")
        || path.ends_with(b".sysupresolve")
}

/// Compare one entry with what is on disk.
fn check(res: &mut Resolver<'_>, root: &Root, e: &Entry, f: &mut Findings) -> Result<()> {
    let shown = e.display();
    let (parent, name) = split(&e.path);
    let d = match res.dir(parent) {
        Ok(d) => d
            .try_clone()
            .map_err(|err| Error::io("open directory", root.display(parent), err))?,
        Err(_) => {
            f.missing.push(shown);
            return Ok(());
        }
    };
    let st: Stat = match d
        .stat(name)
        .map_err(|err| Error::io("stat", root.display(&e.path), err))?
    {
        Some(s) => s,
        None => {
            f.missing.push(shown);
            return Ok(());
        }
    };
    let (what, xattrs) = if st.file_type() != e.kind.file_type() {
        (vec!["type"], BTreeMap::new())
    } else {
        differences(root, &d, name, &st, e)?
    };
    if what.is_empty() {
        return Ok(());
    }
    if e.config && what == ["content"] {
        f.config_modified.push(shown);
    } else {
        f.modified.push(Damage {
            path: shown,
            what,
            xattrs,
        });
    }
    Ok(())
}

/// How a live object differs from its entry: [`Damage::what`] and
/// [`Damage::xattrs`].
type Differences = (Vec<&'static str>, BTreeMap<String, &'static str>);

/// Extended attributes by name.
type XattrMap = BTreeMap<String, Vec<u8>>;

/// What differs about a live object of the entry's type, and how its
/// extended attributes differ by name.
fn differences(root: &Root, d: &Dir, name: &[u8], st: &Stat, e: &Entry) -> Result<Differences> {
    let fail = |action: &'static str| move |err| Error::io(action, root.display(&e.path), err);
    let mut what = Vec::new();
    if e.kind != Kind::Symlink && st.perm() != e.mode {
        what.push("mode");
    }
    if u64::from(st.uid) != e.uid || u64::from(st.gid) != e.gid {
        what.push("owner");
    }
    // The dist's own names and the entry's (a host's LSM label is not read).
    let compared = |n: &str| xattr_compared(n, e.xattrs.contains_key(n));
    let mut live = None;
    match e.kind {
        Kind::File | Kind::Hardlink => {
            // one open for the content and the attribute list
            let (h, x) = hash_and_xattrs(d, name, compared).map_err(fail("read"))?;
            if Some(h) != e.sha256 {
                what.push("content");
            }
            live = Some(x);
        }
        Kind::Symlink => {
            let t = d.read_link(name).map_err(fail("read link"))?;
            if Some(t) != e.link {
                what.push("link");
            }
        }
        Kind::Char | Kind::Block if e.dev.is_none_or(|(a, b)| st.rdev != libc::makedev(a, b)) => {
            what.push("device");
        }
        _ => {}
    }
    if e.kind == Kind::Symlink {
        return Ok((what, BTreeMap::new()));
    }
    let live = match live {
        Some(x) => x,
        None => d
            .xattrs_where(name, compared)
            .map_err(fail("read extended attributes of"))?,
    };
    let xattrs = xattr_drift(&e.xattrs, &live);
    if !xattrs.is_empty() {
        what.push("xattr");
    }
    Ok((what, xattrs))
}

/// SHA-256 of a child regular file and its extended attributes that `keep`
/// selects, from one descriptor (not following a symlink).
fn hash_and_xattrs(
    d: &Dir,
    name: &[u8],
    keep: impl Fn(&str) -> bool,
) -> io::Result<([u8; 32], XattrMap)> {
    let mut f = d.open_file(name)?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h)?;
    Ok((h.finalize(), read_fd_xattrs_where(&f, keep)?))
}

/// Verify the tree of one installed dist. `known` holds every path any
/// installed dist ships, and `kept` the directories sysup keeps on purpose
/// (old kernels): neither is extra. `progress` counts the entries checked.
pub fn verify(
    root: &Root,
    manifest: &Manifest,
    id: &DistId,
    known: &HashSet<Vec<u8>>,
    kept: &[Vec<u8>],
    progress: &Progress,
) -> Result<Findings> {
    progress.step(
        format!("verify {id}"),
        Some(manifest.entries().len() as u64),
        Unit::Items,
    );
    let mut f = Findings {
        id: Some(id.clone()),
        ..Default::default()
    };
    let dirs: Vec<Vec<u8>> = manifest
        .entries()
        .iter()
        .filter(|e| e.kind == Kind::Dir)
        .map(|e| e.path.clone())
        .collect();
    let mut res = Resolver::new(root, dirs.iter().cloned());
    for e in manifest.entries() {
        check(&mut res, root, e, &mut f)?;
        f.checked += 1;
        progress.add(1);
    }
    // Extras: only in directories whose content the dist ships (so /tmp, or
    // a directory whose content the spec excludes, is not listed).
    let mut parents: Vec<Vec<u8>> = manifest
        .entries()
        .iter()
        .filter(|e| !e.path.is_empty())
        .map(|e| split(&e.path).0.to_vec())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    parents.sort();
    for dir in parents {
        let Ok(d) = res.dir(&dir) else { continue };
        let Ok(names) = d.list() else { continue };
        for n in names {
            let p = join(&dir, &n);
            if !known.contains(&p) && !sysup_own(&p) && !kept.contains(&p) {
                f.extra.push(String::from_utf8_lossy(&p).into_owned());
            }
        }
    }
    Ok(f)
}

/// Verify every installed dist of a root, one progress step per dist.
pub fn verify_root(state: &State, progress: &Progress) -> Result<Vec<Findings>> {
    let root = Root::open(state.root()).map_err(|e| Error::io("open root", state.root(), e))?;
    let mut dists = Vec::new();
    for inst in state.installed_all()? {
        dists.push((inst.id.clone(), state.base_metadata(&inst.id)?));
    }
    // every shipped path and its ancestors (a kernel ships boot/kernel, not boot)
    let mut known: HashSet<Vec<u8>> = HashSet::new();
    for (_, m) in &dists {
        for e in m.manifest.entries() {
            let mut p = e.path.as_slice();
            while known.insert(p.to_vec()) {
                match p.iter().rposition(|&c| c == b'/') {
                    Some(i) => p = &p[..i],
                    None => break,
                }
            }
        }
    }
    let kept: Vec<Vec<u8>> = dists
        .iter()
        .filter_map(|(_, m)| {
            m.meta
                .kernel
                .as_ref()
                .map(|k| k.keep_old.clone().into_bytes())
        })
        .collect();
    let mut out = Vec::new();
    for (id, meta) in &dists {
        out.push(verify(&root, &meta.manifest, id, &known, &kept, progress)?);
    }
    progress.done();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kv: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    #[test]
    fn xattr_drift_names_added_removed_and_changed() {
        let entry = map(&[("user.a", b"1"), ("user.b", b"2"), ("user.c", b"3")]);
        let live = map(&[
            ("user.a", b"1"),
            ("user.b", b"x"),
            ("security.capability", b"\x01"),
        ]);
        let d = xattr_drift(&entry, &live);
        let want: BTreeMap<String, &str> = [
            ("security.capability".to_string(), "added"),
            ("user.b".to_string(), "changed"),
            ("user.c".to_string(), "removed"),
        ]
        .into();
        assert_eq!(d, want);
        assert!(xattr_drift(&entry, &entry).is_empty());
    }
}
