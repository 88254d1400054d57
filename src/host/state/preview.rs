//! The state a dry run reads ([`State::open_for_preview`]): so that
//! foretelling a first install, or checking a host never updated, creates
//! nothing in the root.
//!
//! Invariants: nothing is created or written in the root; a root whose
//! state directory exists (or is reached through a link) is opened exactly
//! as [`State::open_existing`] opens it, refusals included.

use std::path::Path;
use std::sync::Arc;

use super::{real_dir, State, STATE_DIR};
use crate::error::{IoContext, Result};
use crate::host::root::{Dir, Root};

impl State {
    /// The state a dry run reads: the root's own when it has one, else an
    /// empty stand-in in a private temporary directory outside the root, so
    /// that foretelling a first install creates nothing in the root — no
    /// state directory, no lock. Messages still name the root's would-be
    /// state directory. The stand-in lasts as long as the returned guard.
    /// Writes: nothing in the root (a stand-in's lock goes to the temporary).
    pub fn open_for_preview(root_path: &Path) -> Result<(State, Option<tempfile::TempDir>)> {
        if let Some(s) = State::open_with(root_path, false)? {
            return Ok((s, None));
        }
        let tmp = tempfile::Builder::new()
            .prefix("sysup-preview.")
            .tempdir()
            .ctx("create a temporary directory", std::env::temp_dir())?;
        let top = Root::open(tmp.path()).ctx("open", tmp.path())?;
        let fd = top.dir().try_clone().ctx("open", tmp.path())?;
        let real_root = std::fs::canonicalize(root_path).ctx("resolve", root_path)?;
        let shown = real_root.join(STATE_DIR);
        let sub = |name: &str| -> Result<Arc<Dir>> {
            let d = real_dir(&fd, name, &tmp.path().join(name), 0o700, true)?;
            Ok(Arc::new(d.expect("created").0))
        };
        let s = State {
            installed: sub("installed")?,
            bases: sub("bases")?,
            download: sub("download")?,
            root: real_root,
            dir: shown,
            fd: Arc::new(fd),
            made: Vec::new(),
        };
        Ok((s, Some(tmp)))
    }
}
