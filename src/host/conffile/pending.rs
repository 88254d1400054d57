//! Config files awaiting the admin: those of an installed dist's MANIFEST
//! with a `<path>.sysupnew` beside them (written when a locally modified
//! file was kept), until `sysup config resolve` — or the admin — removes it.
//!
//! Invariants: read-only; paths are reached through the same containment
//! as apply (a directory that became a symlink is not followed); a dist
//! whose kept base is missing contributes nothing (`status` says so apart).

use crate::error::{Error, Result};
use crate::format::manifest::Kind;
use crate::host::plan::split;
use crate::host::root::{Resolver, Root};
use crate::host::state::State;

use super::NEW_SUFFIX;

/// Root-relative paths of installed config files with a `.sysupnew`
/// beside them, sorted. Read-only.
pub fn pending(state: &State) -> Result<Vec<String>> {
    let root = Root::open(state.root()).map_err(|e| Error::io("open root", state.root(), e))?;
    let mut out = Vec::new();
    for inst in state.installed_all()? {
        if !state.has_base(&inst.id) {
            continue;
        }
        let meta = state.base_metadata(&inst.id)?;
        let m = &meta.manifest;
        let dirs = m.entries().iter().filter(|e| e.kind == Kind::Dir);
        let mut res = Resolver::new(&root, dirs.map(|e| e.path.clone()));
        for e in m
            .entries()
            .iter()
            .filter(|e| e.config && e.kind == Kind::File)
        {
            let (parent, name) = split(&e.path);
            let Ok(d) = res.dir(parent) else { continue };
            let new = [name, NEW_SUFFIX].concat();
            if d.stat(&new).ok().flatten().is_some_and(|s| s.is_file()) {
                out.push(e.display());
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}
