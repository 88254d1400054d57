//! `sysup status`: per dist name, what is installed, its base and digests,
//! when, the kept bases; any interrupted apply (with the command that
//! finishes it), any sysup working on the root now, the config files
//! awaiting the admin (a `<path>.sysupnew` beside them), and what needs a
//! restart or a reboot, recomputed on every call (host/restart.rs). (The
//! keys accepted through a mirror's KEYS file are the mirror's to judge:
//! `mirror::kept`; `sysup status` shows both.)
//!
//! Invariants: reading never writes — a root without sysup's state has
//! nothing installed, and no state directory is made for it.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Result;
use crate::host::pending::{pending, Pending};
use crate::host::restart::Restart;
use crate::host::state::{Installed, KeptBase, State};

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
    /// What needs a restart or a reboot, computed now (host/restart.rs).
    pub restart: Restart,
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
    Ok(Status {
        root: state.root().to_path_buf(),
        names,
        pending,
        running,
        config_pending,
        restart: crate::host::restart::report(&state, &[]),
    })
}
