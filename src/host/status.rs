//! `sysup status`: per dist name, what is installed, its base and digests,
//! when, the kept bases; any interrupted apply (with the command that
//! finishes it), any sysup working on the root now, the config files
//! awaiting the admin (a `<path>.sysupnew` beside them), the keys accepted
//! from a mirror's signed KEYS file (key rotation) with whether each is
//! trusted now, and what needs a restart or a reboot, recomputed on every
//! call (host/restart.rs).
//!
//! Invariants: reading never writes — a root without sysup's state has
//! nothing installed, and no state directory is made for it; an accepted
//! key whose file the next update would refuse is shown with the reason,
//! never as trusted.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Result;
use crate::host::pending::{pending, Pending};
use crate::host::restart::Restart;
use crate::host::state::{AcceptedKey, Installed, KeptBase, State};
use crate::mirror::keys::Keys;

/// One dist name's status.
#[derive(Clone, Debug, Serialize)]
pub struct NameStatus {
    pub installed: Installed,
    /// The installed id's kept base.
    pub base: PathBuf,
    /// Every kept base of the name, oldest first.
    pub kept: Vec<KeptBase>,
}

/// The status of a root.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub root: PathBuf,
    pub names: Vec<NameStatus>,
    /// An interrupted apply, and how to finish it.
    pub pending: Option<Pending>,
    /// The pid of a sysup working on the root now (with or without a
    /// pending apply: it may be checking, or cleaning).
    pub running: Option<u32>,
    /// Config files awaiting the admin: root-relative paths of installed
    /// config files with a `<path>.sysupnew` beside them, until resolved.
    pub config_pending: Vec<String>,
    /// Keys accepted from a mirror's signed KEYS file, by key id.
    pub keys: Vec<KeyStatus>,
    /// What needs a restart or a reboot, computed now (host/restart.rs).
    pub restart: Restart,
}

/// A key this host accepted from a mirror's signed KEYS file (key
/// rotation), as its file in `var/db/sysup/keys/` says now.
#[derive(Clone, Debug, Serialize)]
pub struct KeyStatus {
    pub key_id: String,
    /// Its file.
    pub path: PathBuf,
    /// Unix time from which it is no longer trusted (`None`: no end).
    pub until: Option<u64>,
    /// The next update trusts it: its file is sound and `until` not past.
    pub trusted: bool,
    /// The last INDEX serial this host accepted signed by it.
    pub serial: Option<u64>,
    /// Why its file is unusable (the next update refuses until it is
    /// removed), if it is.
    pub error: Option<String>,
}

/// The status of the root at `root`. Read-only.
pub fn status(root: &Path) -> Result<Status> {
    let Some(state) = State::open_existing(root)? else {
        return Ok(Status {
            root: root.to_path_buf(),
            names: vec![],
            pending: None,
            running: None,
            config_pending: vec![],
            keys: vec![],
            restart: Restart::default(),
        });
    };
    let mut names = Vec::new();
    for i in state.installed_all()? {
        names.push(NameStatus {
            base: state.base_path(&i.id),
            kept: state.bases(&i.id.name)?,
            installed: i,
        });
    }
    let pending = pending(&state, root)?;
    let running = state.lock_holder()?;
    let config_pending = crate::host::conffile::pending::pending(&state)?;
    let now = crate::util::time::unix_now().unsigned_abs();
    let mut keys = Vec::new();
    for a in state.accepted_keys()? {
        // A serial from the single record of older versions stands for the
        // configured key, not this one.
        let serial = match state.accepted_serial(&a.key_id)? {
            (s, false) => s,
            (_, true) => None,
        };
        keys.push(key_status(a, serial, now));
    }
    Ok(Status {
        root: state.root().to_path_buf(),
        names,
        pending,
        running,
        config_pending,
        keys,
        restart: crate::host::restart::report(&state, &[]),
    })
}

/// What an accepted key's file says, checked as the next update checks it:
/// one key, the one its name says.
fn key_status(a: AcceptedKey, serial: Option<u64>, now: u64) -> KeyStatus {
    let (until, trusted, error) = match Keys::parse(&a.text, &a.path) {
        Err(e) => (None, false, Some(e.to_string())),
        Ok(k) => match k.keys.as_slice() {
            [k] if k.key.key_id() == a.key_id => (k.until, k.valid_at(now), None),
            [k] => (
                None,
                false,
                Some(format!(
                    "holds key {}, not the key its name says",
                    k.key.key_id()
                )),
            ),
            ks => (
                None,
                false,
                Some(format!("holds {} keys, not one", ks.len())),
            ),
        },
    };
    KeyStatus {
        key_id: a.key_id,
        path: a.path,
        until,
        trusted,
        serial,
        error,
    }
}
