//! The public keys that guard `sysup update`: every `--pubkey` (paths of
//! the host, the admin's choice), else `pubkey` in the `[mirror]` table of
//! the host's configuration (else [`DEFAULT_PUBKEY`]) and each of its
//! `pubkeys` — those read *inside* the root. (Keys accepted from a mirror's
//! KEYS file are added by `trust.rs`.)
//!
//! Invariants: a key named by the configuration is resolved inside the root
//! (no `..`; links among its directories followed, never out of the root;
//! the file itself never a link), so a prepared root cannot make sysup
//! trust a key file of the host. Read-only.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::host::conf::{MirrorConf, CONF_FILE};
use crate::host::root::Root;
use crate::mirror::sign::PublicKey;

/// The public key used when neither `--pubkey` nor the config names one,
/// relative to the root.
pub const DEFAULT_PUBKEY: &str = "etc/sysup/minisign.pub";

/// The root-relative form of a path from the config, which names a file
/// inside the root (a leading `/` is the root's). `None` when it is empty or
/// has a `..`, which could only climb out of the root or be a mistake.
fn in_root(p: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut rel = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => rel.push(n),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (!rel.as_os_str().is_empty()).then_some(rel)
}

/// Open the key file `rel` (root-relative) of the root at `root`: its
/// directory resolved inside the root (links followed, but never out of
/// it), the file itself opened without following a link. `Ok(None)` when
/// it does not exist.
fn open_in_root(root: &Path, rel: &Path) -> Result<Option<fs::File>> {
    use std::os::unix::ffi::OsStrExt;
    let shown = root.join(rel);
    let r = Root::open(root).ctx("open root", root)?;
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel
        .file_name()
        .expect("in_root gives a file name")
        .as_bytes();
    let dir = match r.resolve_dir(parent.as_os_str().as_bytes()) {
        Ok(d) => d,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(Error::io("open directory", root.join(parent), e)),
    };
    match dir.stat(name).ctx("stat", &shown)? {
        None => Ok(None),
        Some(st) if st.is_symlink() => Err(Error::Refused(format!(
            "public key '{}' is a symbolic link: sysup reads the key only from a regular file \
             inside the root (name the file itself, or pass --pubkey FILE)",
            shown.display()
        ))),
        Some(st) if !st.is_file() => Err(Error::Refused(format!(
            "public key '{}' is not a regular file",
            shown.display()
        ))),
        Some(_) => dir.open_file(name).ctx("open", &shown).map(Some),
    }
}

/// The public key of an update: `--pubkey` (a host path, the admin's
/// choice), else the config's `pubkey`, else [`DEFAULT_PUBKEY`], both read
/// inside the root. Returns the key and the path it is shown by.
pub(super) fn read_pubkey(
    root: &Path,
    cli: Option<&Path>,
    conf: Option<&Path>,
) -> Result<(PublicKey, PathBuf)> {
    if let Some(p) = cli {
        return Ok((PublicKey::read(p)?, p.to_path_buf()));
    }
    let rel = match conf {
        Some(p) => in_root(p).ok_or_else(|| {
            Error::Refused(format!(
                "pubkey '{}' in the [mirror] table of {} must name a file inside the root \
                 without '..' (e.g. \"/etc/sysup/minisign.pub\", which is <root>/etc/sysup/…)",
                p.display(),
                root.join(CONF_FILE).display()
            ))
        })?,
        None => PathBuf::from(DEFAULT_PUBKEY),
    };
    let shown = root.join(&rel);
    match open_in_root(root, &rel)? {
        Some(f) => Ok((PublicKey::read_from(f, &shown)?, shown)),
        None if conf.is_some() => Err(Error::io(
            "open",
            &shown,
            io::Error::from(io::ErrorKind::NotFound),
        )),
        None => Err(Error::Refused(format!(
            "no public key to check the mirror's INDEX with: pass --pubkey FILE, set pubkey in \
             the [mirror] table of {}, or install it as {}",
            root.join(CONF_FILE).display(),
            shown.display()
        ))),
    }
}
/// The configured keys of an update, each with the path it is shown by:
/// the `--pubkey`s when there are any (they replace the configuration's),
/// else the `[mirror]` table's `pubkey` (else [`DEFAULT_PUBKEY`], which may
/// be missing when `pubkeys` names others) and each of its `pubkeys`. A key
/// named twice counts once.
pub(super) fn read_pubkeys(
    root: &Path,
    cli: &[PathBuf],
    conf: &MirrorConf,
) -> Result<Vec<(PublicKey, PathBuf)>> {
    let mut out: Vec<(PublicKey, PathBuf)> = Vec::new();
    let mut add = |k: (PublicKey, PathBuf)| {
        if !out.iter().any(|(o, _)| o.key_id() == k.0.key_id()) {
            out.push(k);
        }
    };
    if !cli.is_empty() {
        for p in cli {
            add(read_pubkey(root, Some(p), None)?);
        }
        return Ok(out);
    }
    let more = conf.pubkeys.as_deref().unwrap_or_default();
    match read_pubkey(root, None, conf.pubkey.as_deref()) {
        Ok(k) => add(k),
        // The default file may be missing when `pubkeys` names the keys.
        Err(_) if conf.pubkey.is_none() && !more.is_empty() => {}
        Err(e) => return Err(e),
    }
    for p in more {
        add(read_pubkey(root, None, Some(p))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_key_path_stays_inside_the_root() {
        assert_eq!(
            in_root(Path::new("/etc/k.pub")),
            Some(PathBuf::from("etc/k.pub"))
        );
        for bad in ["../../x", "/../x", "etc/../../x", "", "/"] {
            assert_eq!(in_root(Path::new(bad)), None, "{bad}");
        }
        assert_eq!(in_root(Path::new("./k")), Some(PathBuf::from("k")));
    }
}
