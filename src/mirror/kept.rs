//! The keys this host accepted from a mirror's signed KEYS file (key
//! rotation, [`super::keys`]), kept in `var/db/sysup/keys/`, as the next
//! update sees them: [`kept_key`] is the one check both the update's trust
//! ([`super::update`]) and `sysup status` ([`statuses`]) apply to a kept
//! file, so what status calls trusted is what the update trusts.
//!
//! Invariants: read-only; a kept file is usable only if it parses as a KEYS
//! file holding exactly one key, the one its file name says; an unusable
//! file is reported with the cause, never trusted.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::host::state::{AcceptedKey, State};
use crate::mirror::keys::{AnnouncedKey, Keys};

/// The one key the kept file `a` holds: a KEYS file of exactly one key,
/// the one its name says; else an error naming the file and the cause.
pub fn kept_key(a: &AcceptedKey) -> Result<AnnouncedKey> {
    let unusable = |reason: String| Error::Metadata {
        what: "accepted key",
        path: a.path.clone(),
        reason: format!(
            "{reason}; remove the file (the mirror's KEYS file brings it back if it is \
             still announced)"
        ),
    };
    let parsed = Keys::parse(&a.text, &a.path)?;
    match parsed.keys.as_slice() {
        [k] if k.key.key_id() == a.key_id => Ok(k.clone()),
        [k] => Err(unusable(format!(
            "holds key {}, not the key its name says",
            k.key.key_id()
        ))),
        ks => Err(unusable(format!("holds {} keys, not one", ks.len()))),
    }
}

/// A key this host accepted from a mirror's signed KEYS file, as its file
/// in `var/db/sysup/keys/` says now.
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

/// Every key kept under `root` (none where the root has no state), checked
/// at Unix time `now` as the next update checks it. Read-only.
pub fn statuses(root: &Path, now: u64) -> Result<Vec<KeyStatus>> {
    let Some(state) = State::open_existing(root)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for a in state.accepted_keys()? {
        // A serial from the single record of older versions stands for the
        // configured key, not this one.
        let serial = match state.accepted_serial(&a.key_id)? {
            (s, false) => s,
            (_, true) => None,
        };
        let (until, trusted, error) = match kept_key(&a) {
            Ok(k) => (k.until, k.valid_at(now), None),
            Err(e) => (None, false, Some(e.to_string())),
        };
        out.push(KeyStatus {
            key_id: a.key_id,
            path: a.path,
            until,
            trusted,
            serial,
            error,
        });
    }
    Ok(out)
}
