//! Reading a kept base in `var/db/sysup/bases/`: opened through the held
//! `bases/` descriptor, never by its path.
//!
//! Invariants: the open does not follow a link in the base's place (it is
//! refused, naming it), takes nothing but a regular file (`O_NONBLOCK`, so
//! a FIFO planted there cannot hold the open), and every error names the
//! base by [`State::base_path`], as messages always have.

use std::fs::File;

use super::{hostile, nofollow_err, State};
use crate::error::{IoContext, Result};
use crate::format::dist::{self, Metadata};
use crate::format::name::DistId;
use crate::util::progress::Progress;

impl State {
    /// Open the kept base of `id` for reading through `bases/`'s
    /// descriptor (see the module doc). Read-only.
    pub fn open_base(&self, id: &DistId) -> Result<File> {
        let shown = self.base_path(id);
        let f = self
            .bases
            .open_file_with(
                id.file_name().as_bytes(),
                libc::O_RDONLY | libc::O_NONBLOCK,
                0,
            )
            .map_err(|e| nofollow_err(e, "open", &shown))?;
        if !f.metadata().ctx("stat", &shown)?.is_file() {
            return Err(hostile(&shown, "not a regular file"));
        }
        Ok(f)
    }

    /// The metadata of the kept base of `id`. Read-only.
    pub fn base_metadata(&self, id: &DistId) -> Result<Metadata> {
        let gz = dist::open_gz_file(self.open_base(id)?, &Progress::disabled());
        dist::read_metadata(gz, &self.base_path(id))
    }
}
