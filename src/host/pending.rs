//! An apply that is pending in a root, as every command names it before
//! anything else: **running** (a sysup holds the root's lock) or
//! **interrupted** (its journal is there and nobody holds the lock), with
//! the command that finishes it. Finishing it is always forward, to its
//! target: past its commit point it is rolled forward, before it its
//! staging is removed.
//!
//! Read-only: the journal is read and the lock looked up, never taken.

use std::path::Path;

use serde::Serialize;

use crate::error::Result;
use crate::host::journal::Journal;
use crate::host::state::State;

/// A pending apply.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Pending {
    /// The id it is applying.
    pub target: String,
    /// The id installed when it started (`None`: a first install).
    pub from: Option<String>,
    /// Past its commit point: it is rolled forward when finished.
    pub committed: bool,
    /// The pid of the sysup running it now; `None`: it was interrupted.
    pub running: Option<u32>,
    /// A shell command that finishes it.
    pub command: String,
}

impl Pending {
    /// One line for human output.
    pub fn describe(&self) -> String {
        let what = match &self.from {
            Some(f) if f != &self.target => format!("{f} → {}", self.target),
            _ => self.target.clone(),
        };
        match self.running {
            Some(pid) => format!("an apply of {what} is running now (sysup pid {pid})"),
            None => format!(
                "an interrupted apply of {what} is pending ({}); finish it with: {}",
                if self.committed {
                    "verified and partly committed: it goes forward"
                } else {
                    "was staging: its staging is removed"
                },
                self.command
            ),
        }
    }
}

/// Quote `s` for a POSIX shell where it needs it.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:~".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The pending apply of the root `state` belongs to, if any; `root_arg` is
/// the root as the admin named it (for the command line). Read-only.
pub fn pending(state: &State, root_arg: &Path) -> Result<Option<Pending>> {
    let Some(j) = Journal::load(state)? else {
        return Ok(None);
    };
    let Some(target) = j.target else {
        return Ok(None);
    };
    let mut command = format!(
        "sysup apply --root {}",
        shell_quote(&root_arg.to_string_lossy())
    );
    let kept = j.kept_base.then(|| state.base_path(&target));
    for f in j.inputs.iter().chain(&kept) {
        command.push(' ');
        command.push_str(&shell_quote(&f.to_string_lossy()));
    }
    Ok(Some(Pending {
        target: target.to_string(),
        from: j.from.map(|f| f.to_string()),
        committed: j.plan.is_some(),
        running: state.lock_holder()?,
        command,
    }))
}
