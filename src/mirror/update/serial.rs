//! Step 3 of `sysup update`: refuse a stale or replayed INDEX — one whose
//! serial is lower than the last one this host accepted from the same
//! signing key — unless `--allow-downgrade`, then record the new serial.
//!
//! Invariants: a serial only orders one publisher's INDEXes, so each key has
//! its own record (kept by the state, `host/state/mirror.rs`); the single
//! record of older versions stands for the configured key until the next
//! accepted INDEX moves it; a dry run records nothing.

use crate::error::{Error, Result};
use crate::host::state::State;
use crate::mirror::index::Index;

use super::UpdateOptions;

/// Refuse an INDEX older than the last one accepted from the key `key_id`
/// (unless `--allow-downgrade`), then record its serial (not in a dry run).
/// Returns the serial accepted before.
pub(super) fn check_serial(
    opts: &UpdateOptions,
    state: &State,
    index: &Index,
    key_id: &str,
) -> Result<Option<u64>> {
    let (previous_serial, legacy) = state.accepted_serial(key_id)?;
    if let Some(prev) = previous_serial {
        if index.serial < prev && !opts.allow_downgrade {
            return Err(Error::Refused(format!(
                "the mirror's INDEX has serial {}, lower than serial {prev} this host already \
                 accepted from key {key_id}: the mirror is stale, or replays an old INDEX to \
                 hold this host back; refused (pass --allow-downgrade if the publisher really \
                 went back)",
                index.serial
            )));
        }
    }
    if (previous_serial != Some(index.serial) || legacy) && !opts.dry_run {
        state.record_serial(key_id, index.serial, legacy)?;
    }
    Ok(previous_serial)
}
