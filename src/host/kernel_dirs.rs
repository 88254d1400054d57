//! A kernel dist's `[kernel]` directories, checked on the host before
//! anything is staged. The swap renames whatever is at `install_dir` and
//! `keep_old`, and cleanup deletes what `keep_old` held: so the directories
//! a DIST names are held to more than the spec's rules (which
//! [`DistMeta::parse`] already applied) — to what this host holds.
//!
//! Invariants, each refused with the dist and the field named:
//! - neither directory is, or is above, a path another installed dist ships
//!   (`usr`, `etc`, another kernel's directories), nor inside one of its
//!   files or links; a world may ship `boot` and a kernel live inside it;
//! - the dist does not ship anything at or inside its own `keep_old`;
//! - `keep_old` may exist on the host only where the installed revision of
//!   the same kernel keeps its old kernel: anything else there (the admin's
//!   own `boot/kernel.old`, `home`) is not sysup's to replace.
//!
//! Reads only: the installed dists' bases (their MANIFESTs) and the root.

use crate::error::{Error, Result};
use crate::format::dist::{DistMeta, Metadata};
use crate::format::manifest::{Kind, Manifest};
use crate::format::spec::KernelDirs;
use crate::host::root::Root;
use crate::host::state::State;

/// Whether root-relative `a` is `b` or inside it.
fn within(a: &[u8], b: &[u8]) -> bool {
    a == b || a.strip_prefix(b).is_some_and(|r| r.first() == Some(&b'/'))
}

/// Check `meta`'s kernel directories (see the module doc); `new` is its
/// MANIFEST, `old` the installed revision of the same name, `label` names
/// the input in errors.
pub fn check(
    root: &Root,
    state: &State,
    meta: &DistMeta,
    new: &Manifest,
    old: Option<&Metadata>,
    label: &str,
) -> Result<()> {
    let Some(k) = &meta.kernel else {
        return Ok(());
    };
    let refuse = |key: &str, value: &str, why: String| Error::Metadata {
        what: "DIST",
        path: label.into(),
        reason: format!("{}: [kernel] {key} = '{value}' {why}", meta.id),
    };
    let fields = [("install_dir", &k.install_dir), ("keep_old", &k.keep_old)];
    // the other installed dists: what they ship, and the kernels' dirs
    for inst in state.installed_all()? {
        if inst.id.name == meta.id.name {
            continue;
        }
        let other = state.base_metadata(&inst.id)?;
        for (key, dir) in fields {
            let d = dir.as_bytes();
            if let Some(e) = other
                .manifest
                .entries()
                .iter()
                .find(|e| within(&e.path, d) || (e.kind != Kind::Dir && within(d, &e.path)))
            {
                let p = String::from_utf8_lossy(&e.path);
                return Err(refuse(
                    key,
                    dir,
                    if within(&e.path, d) {
                        format!("would take '{p}', which {} ships", inst.id)
                    } else {
                        format!(
                            "is inside '{p}', which {} ships as a {}",
                            inst.id,
                            e.kind.as_str()
                        )
                    },
                ));
            }
            if let Some(KernelDirs {
                install_dir,
                keep_old,
            }) = &other.meta.kernel
            {
                for theirs in [install_dir, keep_old] {
                    let t = theirs.as_bytes();
                    if within(d, t) || within(t, d) {
                        return Err(refuse(
                            key,
                            dir,
                            format!("overlaps '{theirs}', a directory of {}", inst.id),
                        ));
                    }
                }
            }
        }
    }
    let kept = k.keep_old.as_bytes();
    if let Some(e) = new.entries().iter().find(|e| within(&e.path, kept)) {
        return Err(refuse(
            "keep_old",
            &k.keep_old,
            format!(
                "holds '{}', which the dist itself ships",
                String::from_utf8_lossy(&e.path)
            ),
        ));
    }
    let ours = old
        .and_then(|o| o.meta.kernel.as_ref())
        .is_some_and(|o| o.keep_old == k.keep_old);
    if !ours && exists(root, kept)? {
        return Err(refuse(
            "keep_old",
            &k.keep_old,
            format!(
                "already exists in {} and no installed revision of {} keeps its old kernel there: the swap would replace it; move it away first",
                root.path().display(),
                meta.id.name
            ),
        ));
    }
    Ok(())
}

/// Whether anything is at root-relative `rel` (not following a final link).
fn exists(root: &Root, rel: &[u8]) -> Result<bool> {
    let (parent, name) = crate::host::plan::split(rel);
    let d = match root.resolve_dir(parent) {
        Ok(d) => d,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
            return Ok(false)
        }
        Err(e) => return Err(Error::io("open directory", root.display(parent), e)),
    };
    d.stat(name)
        .map(|s| s.is_some())
        .map_err(|e| Error::io("stat", root.display(rel), e))
}
