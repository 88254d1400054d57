//! `var/db/sysup/keys/`: the public keys this host accepted from a mirror's
//! signed `KEYS` file (`mirror::keys`), one file per key named by its key
//! id, in the KEYS format with that one key. They are trusted beside the
//! configured keys on every later update; the admin revokes one by
//! removing its file.
//!
//! Invariants: files are read and written only through the state's
//! descriptors (`O_NOFOLLOW` on every component), never through a link; a
//! key file is written atomically (0600) and read under a size cap; what a
//! file says is checked by its reader (`mirror::update`), never trusted
//! here. Only names of 16 upper-case hex digits are key files: anything
//! else (an interrupted write's temporary) is skipped.

use std::io::{self, Read};
use std::path::PathBuf;

use super::{real_dir, write_atomic_at, State};
use crate::error::{Error, Result};
use crate::host::root::Dir;

/// The directory of accepted keys, relative to the state directory.
pub const KEYS_DIR: &str = "keys";
/// Largest accepted-key file read (bytes).
const MAX_KEY_FILE: u64 = 64 * 1024;

/// Whether `name` is a key id as sysup spells it (16 upper-case hex digits).
fn is_key_id(name: &[u8]) -> bool {
    name.len() == 16 && name.iter().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
}

/// One key file of `keys/`.
#[derive(Clone, Debug)]
pub struct AcceptedKey {
    /// The key id its name says.
    pub key_id: String,
    /// Where it is (for messages and reports).
    pub path: PathBuf,
    pub text: Vec<u8>,
}

impl State {
    /// `keys/`, created (0700) with `create`; `None` if missing.
    /// Writes: with `create`, makes the directory.
    pub fn keys_dir(&self, create: bool) -> Result<Option<Dir>> {
        real_dir(&self.fd, KEYS_DIR, &self.dir.join(KEYS_DIR), 0o700, create)
            .map(|d| d.map(|(d, _)| d))
    }

    /// Every key file in `keys/`, by key id. Read-only.
    pub fn accepted_keys(&self) -> Result<Vec<AcceptedKey>> {
        let Some(dir) = self.keys_dir(false)? else {
            return Ok(Vec::new());
        };
        let shown = self.dir.join(KEYS_DIR);
        let mut names: Vec<Vec<u8>> = dir
            .list()
            .map_err(|e| Error::io("list", &shown, e))?
            .into_iter()
            .filter(|n| is_key_id(n))
            .collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let key_id = String::from_utf8_lossy(&name).into_owned();
            let path = shown.join(&key_id);
            let mut text = Vec::new();
            let read = dir
                .open_file(&name)
                .and_then(|f| f.take(MAX_KEY_FILE + 1).read_to_end(&mut text).map(|_| ()));
            match read {
                Ok(()) if text.len() as u64 > MAX_KEY_FILE => {
                    return Err(Error::Refused(format!(
                        "'{}' is larger than a key file can be ({MAX_KEY_FILE} bytes); remove it",
                        path.display()
                    )))
                }
                Ok(()) => out.push(AcceptedKey { key_id, path, text }),
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                    return Err(Error::Refused(format!(
                        "'{}' is a symbolic link: sysup's own state is never reached through \
                         a link; remove it and run again",
                        path.display()
                    )))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("read", &path, e)),
            }
        }
        Ok(out)
    }

    /// Keep the key `key_id` (its KEYS-format `text`) as accepted.
    /// Writes: `keys/<key id>` atomically (0600), creating `keys/`.
    pub fn store_key(&self, key_id: &str, text: &[u8]) -> Result<PathBuf> {
        if !is_key_id(key_id.as_bytes()) {
            return Err(Error::Refused(format!("'{key_id}' is not a key id")));
        }
        let dir = self.keys_dir(true)?.expect("created");
        let shown = self.dir.join(KEYS_DIR);
        write_atomic_at(&dir, &shown, key_id, text, 0o600)?;
        Ok(shown.join(key_id))
    }
}
