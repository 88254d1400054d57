//! The ancestors of a merge: the old dist's copies of config files, read
//! from its kept base (`var/db/sysup/bases/<id>.tar.gz`, opened through
//! [`State::open_base`]) in one streaming pass.
//!
//! Invariants: only members asked for are read, each at most
//! [`MERGE_CAP`] bytes (a bigger one, or a member the MANIFEST sized
//! bigger, is not read); a copy is used only when its SHA-256 is the one
//! the old MANIFEST gives — a damaged base yields no ancestor, so the file
//! is kept, never merged against wrong content; the pass stops once every
//! wanted member was found. Read-only.

use std::collections::HashMap;
use std::io::Read;

use crate::error::{Error, Result};
use crate::format::archive::segment::{Item, Segmenter};
use crate::format::dist;
use crate::format::manifest::Entry;
use crate::format::name::DistId;
use crate::host::state::State;
use crate::util::digest::Sha256;
use crate::util::progress::Progress;

use super::MERGE_CAP;

/// Base contents by path.
pub type Ancestors = HashMap<Vec<u8>, Vec<u8>>;

/// The contents, in the kept base of `id`, of the `wanted` entries of its
/// MANIFEST (files, each at most [`MERGE_CAP`] bytes), whose hashes match.
/// Read-only.
pub fn read(state: &State, id: &DistId, wanted: &[&Entry]) -> Result<Ancestors> {
    let shown = state.base_path(id);
    let gz = dist::open_gz_file_named(state.open_base(id)?, &shown, &Progress::disabled());
    read_from(gz, &shown, wanted)
}

/// [`read`] from an uncompressed tar stream; `shown` names it in errors.
pub fn read_from(tar: impl Read, shown: &std::path::Path, wanted: &[&Entry]) -> Result<Ancestors> {
    let mut want: HashMap<Vec<u8>, &Entry> = wanted
        .iter()
        .filter(|e| e.size <= MERGE_CAP && e.sha256.is_some())
        .map(|e| (e.member_name(), *e))
        .collect();
    let mut out = Ancestors::new();
    let mut seg = Segmenter::new(tar, shown);
    while !want.is_empty() {
        let m = match seg.next_item()? {
            Some(Item::Member(m)) => m,
            Some(Item::Trailer(_)) | None => break,
        };
        let Some(e) = want.remove(&m.path) else {
            continue;
        };
        if m.size != e.size {
            continue;
        }
        let mut data = Vec::with_capacity(m.size as usize);
        seg.data()
            .take(MERGE_CAP + 1)
            .read_to_end(&mut data)
            .map_err(|err| Error::from_io(err, "read", shown))?;
        if Some(Sha256::digest(&data)) == e.sha256 {
            out.insert(e.path.clone(), data);
        }
    }
    Ok(out)
}
