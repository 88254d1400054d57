//! The applier's end and its verdicts: after the trailer every section must
//! be used up exactly and the old tar must end with exactly the planned
//! members; then the input and output are compared with the header's from
//! and to digests. An error midway is blamed on the input or on the patch
//! by what the rest of a hashed input turns out to be; an input that can be
//! read again from its file is hashed from there when, and only when, a
//! verdict needs its digest.
//!
//! Invariant: a [`report`](super::PatchReader::finish) exists only once
//! every check passed, so EOF means the exact new tar.

use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use super::{ApplyReport, PatchReader, Reread, State};
use crate::error::{Error, Result};
use crate::format::archive::segment::Item;
use crate::format::patch::header::corrupt;
use crate::util::hashing::{BackgroundHasher, Hashed};

impl<R: Read> PatchReader<R> {
    pub(super) fn verify(&mut self) -> Result<()> {
        self.ctrl.get_mut().finish()?;
        if !self.diff.at_pair_end() {
            return Err(self.bad("the diff section's last zero run is never used".into()));
        }
        self.diff.get_mut().finish()?;
        self.extra.finish()?;
        // The old tar must hold exactly the planned members, then its
        // trailer; every input byte is hashed, to EOF.
        while (self.old.next() as usize) < self.plan.len() {
            self.old_next_member()?;
        }
        match self.old.seg.next_item() {
            Ok(Some(Item::Trailer(_))) => {}
            Ok(_) => {
                return Err(self.wrong_base(format!(
                    "the old tar has more than the {} members the patch was made from",
                    self.plan.len()
                )))
            }
            Err(e) => return Err(self.old_error(e)),
        }
        let tap = self.old.seg.get_mut();
        let input_size = tap.pos;
        let input = tap.hash.take().map(BackgroundHasher::finish);
        let from = self.header.from.tar;
        if input_size != from.size || input.is_some_and(|h| !h.matches(&from)) {
            let why = match input {
                Some(h) => self.not_the_base(input_size, Some(h), false),
                // The file read again gives the digest for the message, if
                // it still holds what was streamed.
                None => match self.rehash() {
                    Some((size, h)) if size == input_size.min(from.size + 1) => {
                        self.not_the_base(size, Some(h), size > from.size)
                    }
                    _ => self.not_the_base(input_size, None, false),
                },
            };
            return Err(self.wrong_base(why));
        }
        self.hash_buf();
        let made = self.out.take().expect("verified once").finish();
        let to = self.header.to.tar;
        // An input read again is hashed now, for the verdict.
        let (input_size, input) = match input {
            None if !made.matches(&to) => match self.rehash() {
                Some((size, h)) if !h.matches(&from) => {
                    let why = self.not_the_base(size, Some(h), size > from.size);
                    return Err(self.wrong_base(why));
                }
                Some((size, h)) => (size, Some(h)),
                None => (input_size, None),
            },
            input => (input_size, input),
        };
        if !made.matches(&to) && input.is_none() {
            // The input was vouched for, not hashed: with the sections'
            // digests verified, the input is what most likely differs.
            return Err(self.wrong_base(format!(
                "the result is not {} (expected {} bytes with sha256 {}, made {} bytes with sha256 {}); the old tar was not hashed (its reader vouched for it), so it is most likely not {}",
                self.header.to.id,
                to.size,
                to.sha256_hex(),
                made.size,
                made.sha256.map_or_else(|| "not computed".into(), hex::encode),
                self.header.from.id
            )));
        }
        if !made.matches(&to) {
            return Err(corrupt(
                &self.path,
                format!(
                    "the base matched but the result is not {} (expected {} bytes with sha256 {}, made {} bytes with sha256 {})",
                    self.header.to.id,
                    to.size,
                    to.sha256_hex(),
                    made.size,
                    made.sha256.map_or_else(|| "not computed".into(), hex::encode)
                ),
            ));
        }
        let output = to;
        self.report = Some(ApplyReport {
            input_size,
            input,
            output,
            spilled: self.old.store.spilled_total,
        });
        self.state = State::Done;
        Ok(())
    }

    /// Who is at fault for `e`. The sections' digests held when the patch
    /// was opened, so a patch that contradicts itself midway (a control
    /// past a member's end, a plan broken) was most likely steered off its
    /// course by an old tar whose members differ from the one it was made
    /// from. When the input is hashed, read the rest of it (never more than
    /// one byte past the from-size) and let its size and digest decide; an
    /// input that is the base leaves the patch at fault.
    pub(super) fn blame(&mut self, e: Error) -> Error {
        let reason = match &e {
            Error::Patch { reason, .. } | Error::CorruptPatch { reason, .. } => reason.clone(),
            _ => return e,
        };
        let from = self.header.from.tar;
        let tap = self.old.seg.get_mut();
        let (size, input) = if tap.hash.is_some() {
            let rest = (from.size + 1).saturating_sub(tap.pos);
            if io::copy(&mut tap.by_ref().take(rest), &mut io::sink()).is_err() {
                return e;
            }
            (tap.pos, tap.hash.take().map(BackgroundHasher::finish))
        } else {
            match self.rehash() {
                Some((size, h)) => (size, Some(h)),
                None => return e,
            }
        };
        if size == from.size && input.is_some_and(|h| h.matches(&from)) {
            return e;
        }
        let not_base = self.not_the_base(size, input, size > from.size);
        self.wrong_base(format!(
            "{not_base}, and the patch cannot be followed over it: {reason}"
        ))
    }

    /// The size and digest of an input that can be read again
    /// ([`PatchReader::rereadable_input`]), hashed from its file up to one
    /// byte past the from-size; `None` when it cannot be (or was already:
    /// it is hashed once).
    fn rehash(&mut self) -> Option<(u64, Hashed)> {
        let Reread { file, start } = self.old.seg.get_mut().reread.take()?;
        let cap = self.header.from.tar.size + 1;
        let mut h = BackgroundHasher::cheaper();
        let mut buf = vec![0u8; 1 << 20];
        let mut at = 0u64;
        while at < cap {
            let n = (cap - at).min(buf.len() as u64) as usize;
            match file.read_at(&mut buf[..n], start + at) {
                Ok(0) => break,
                Ok(k) => {
                    h.update(&buf[..k]);
                    at += k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        Some((at, h.finish()))
    }

    /// "the old tar is not <from id> (expected …; got …)" for an input of
    /// `size` bytes hashed as `input`; `stopped`: reading stopped one byte
    /// past the from-size, so only that much is known.
    pub(super) fn not_the_base(&self, size: u64, input: Option<Hashed>, stopped: bool) -> String {
        let from = self.header.from.tar;
        // Expected and got in the digest that was computed.
        let (algo, want, got) = match input {
            Some(Hashed {
                sha256: Some(s), ..
            }) => ("sha256", from.sha256_hex(), hex::encode(s)),
            Some(Hashed { md5: Some(m), .. }) => ("md5", from.md5_hex(), hex::encode(m)),
            _ => ("md5", from.md5_hex(), "not computed".into()),
        };
        let got = if stopped {
            format!("more than {} bytes", from.size)
        } else {
            format!("{size} bytes, {algo} {got}")
        };
        format!(
            "the old tar is not {} (expected {} bytes, {algo} {want}; got {got})",
            self.header.from.id, from.size
        )
    }
}
