//! `var/db/sysup/mirror/`: the INDEX serials this host accepted, one record
//! per signing key (`serial.<key id>`), and the single record (`serial`) of
//! older versions, which stands for whatever key is configured now until
//! the next accepted INDEX moves it.
//!
//! Invariants: records are read and written only through the state's
//! descriptors (`O_NOFOLLOW` on every component), never through a link; a
//! record is written atomically (0600) and holds one decimal number and a
//! newline.

use std::io;

use super::{real_dir, write_atomic_at, State};
use crate::error::{Error, Result};
use crate::host::root::Dir;

/// The last accepted INDEX serial of one signing key is
/// `<SERIAL_FILE>.<key id>`, relative to the state directory; `SERIAL_FILE`
/// itself is the one record (whatever the key) of older versions, taken as
/// the configured key's and moved to its record on the next accepted INDEX.
pub const SERIAL_FILE: &str = "mirror/serial";

/// The name, inside `mirror/`, of the record of serials accepted from the
/// key `key_id`.
fn serial_name(key_id: &str) -> String {
    format!("serial.{key_id}")
}

impl State {
    /// `mirror/`, created (0700) with `create`; `None` if missing.
    /// Writes: with `create`, makes the directory.
    pub fn mirror_dir(&self, create: bool) -> Result<Option<Dir>> {
        real_dir(&self.fd, "mirror", &self.dir.join("mirror"), 0o700, create)
            .map(|d| d.map(|(d, _)| d))
    }

    /// The last INDEX serial this host accepted from the key `key_id`, and
    /// whether it comes from the single record of an older version (which
    /// stands for whatever key is configured now, until it is moved).
    /// Read-only.
    pub fn accepted_serial(&self, key_id: &str) -> Result<(Option<u64>, bool)> {
        let Some(dir) = self.mirror_dir(false)? else {
            return Ok((None, false));
        };
        match self.read_serial(&dir, &serial_name(key_id))? {
            Some(s) => Ok((Some(s), false)),
            None => Ok((self.read_serial(&dir, "serial")?, true)),
        }
    }

    /// One serial record, `name` in `mirror/` (`dir`). Read-only.
    fn read_serial(&self, dir: &Dir, name: &str) -> Result<Option<u64>> {
        let p = self.dir.join("mirror").join(name);
        let read = dir.open_file(name.as_bytes()).and_then(|mut f| {
            let mut t = String::new();
            io::Read::read_to_string(&mut f, &mut t).map(|_| t)
        });
        match read {
            Ok(t) => t.trim().parse().map(Some).map_err(|_| Error::Metadata {
                what: "serial record",
                path: p,
                reason: format!(
                    "'{}' is not a number; remove the file to trust the next INDEX",
                    t.trim()
                ),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(Error::Refused(format!(
                "'{}' is a symbolic link: sysup's own state is never reached through a link; \
                 remove it and run again",
                p.display()
            ))),
            Err(e) => Err(Error::io("read", &p, e)),
        }
    }

    /// Record `serial` as accepted from the key `key_id`; with `drop_legacy`
    /// (the key's previous serial came from it), then remove the single
    /// record of an older version, now that the key's own holds the newer
    /// one. Writes `mirror/serial.<key id>` atomically (0600), creating
    /// `mirror/` if missing; may remove `mirror/serial`.
    pub fn record_serial(&self, key_id: &str, serial: u64, drop_legacy: bool) -> Result<()> {
        let dir = self.mirror_dir(true)?.expect("created");
        let shown = self.dir.join("mirror");
        write_atomic_at(
            &dir,
            &shown,
            &serial_name(key_id),
            format!("{serial}\n").as_bytes(),
            0o600,
        )?;
        if !drop_legacy {
            return Ok(());
        }
        match dir.unlink(b"serial") {
            Ok(()) => dir.sync().map_err(|e| Error::io("sync", &shown, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", shown.join("serial"), e)),
        }
    }
}
