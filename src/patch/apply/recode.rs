//! The applier's side of re-encoded members ([`recode`]): an xz or zstd
//! member rebuilt from the old member's uncompressed bytes and compressed
//! again on the threads of [`Held`](crate::patch::held::Held); a zip
//! archive the same way from the old archive's expanded form, its table
//! ([`rezip::Table`]) saying which entries are deflated again.
//!
//! Invariants: the recipe was checked when its record was read
//! ([`recode::Recipe::read`]), a zip table is read within its bounds
//! ([`rezip::Table::read`]) before any control; sizes are checked against
//! [`recode::MAX_RAW`] and [`recode::MAX_PACKED`] before anything is read
//! or allocated; the old member is decompressed (expanded) to at most
//! [`recode::MAX_RAW`] bytes; the rebuilt length is checked when it comes
//! out of `held`, and the whole tar against its SHA-256.

use std::io::Read;

use super::{record_err, PatchReader};
use crate::error::{Error, Result};
use crate::format::patch::recode::{self, Codec, Recipe};
use crate::format::patch::record::RecordError;
use crate::format::patch::rezip;

impl<R: Read> PatchReader<R> {
    /// Rebuild new member `cur_new`, a re-encoded file of `data_len` bytes
    /// made from old member `old`: decompress the old data, run the
    /// member's bsdiff controls over it, and hand the result to the
    /// compression threads.
    pub(super) fn recode_member(&mut self, old: u32, data_len: u64, recipe: Recipe) -> Result<()> {
        let i = self.cur_new;
        let old_len = self.old.seen[old as usize].1;
        if recipe.check().is_err() || old_len > recode::MAX_PACKED || data_len > recode::MAX_PACKED
        {
            return Err(self.bad(format!(
                "new member {i} is a re-encoded {} file with impossible sizes",
                recipe.name()
            )));
        }
        // A zip's table comes right after its record, before its controls.
        let table = match recipe.codec {
            Codec::Zip(p) => Some(
                rezip::Table::read(
                    p.entries,
                    recipe.raw_len,
                    || self.ctrl.varint(),
                    RecordError::Malformed,
                )
                .map_err(|e| record_err(&self.path, "a zip member's table", e))?,
            ),
            _ => None,
        };
        let mut packed = vec![0u8; old_len as usize];
        self.old
            .store
            .read_data(old, 0, &mut packed)
            .map_err(|e| Error::from_io(e, "read kept old data for", &self.path))?;
        let Some(old_raw) = recode::raw_as(&recipe, &packed) else {
            return Err(self.wrong_base(format!(
                "old member {old}, which new member {i} is rebuilt from, is not the {} file the patch was made from",
                recipe.name()
            )));
        };
        drop(packed);
        let raw = self.expanded(&old_raw, recipe.raw_len)?;
        drop(old_raw);
        // What this step made so far comes before the member: counted, and
        // held too if something already is.
        self.made()?;
        if self.holding {
            self.held.push_bytes(std::mem::take(&mut self.buf));
            self.step_start = 0;
        }
        // Counted with the encoder's memory: a big encode fills `held`'s
        // budget, so the applier waits for it before starting another.
        let n = raw.len() as u64 + recipe.encoder_memory();
        self.held
            .push_encode(
                i,
                data_len,
                n,
                Box::new(move || match table {
                    Some(t) => rezip::rebuild(&t, &raw),
                    None => recode::rebuild(&recipe, &raw),
                }),
            )
            .map_err(|e| Error::from_io(e, "start a compression thread for", &self.path))?;
        // Counted as produced now (`start_member` checked that it fits); its
        // length is checked when it comes out of `held`.
        self.produced += data_len;
        Ok(())
    }
}
