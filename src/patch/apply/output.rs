//! The applier's output: one step of production at a time, counted
//! against the new tar's size and hashed in order, with the pieces produced
//! behind a member that deflates on a deflate thread held until it is done.
//!
//! Invariants: output is handed out strictly in order, a held piece only
//! after everything before it, and hashed in the same order: `buf` holds
//! only handed-out bytes, those from `hash_from` on not hashed yet, and it
//! is hashed before it is replaced or emptied and before the digest is
//! read; no step makes more than the new tar's size in all.

use std::io::Read;

use super::out_hash::GIVE_MIN;
use super::{record_err, DataState, PatchReader, State, CHUNK};
use crate::error::Result;
use crate::format::patch::{recode, regz};
use crate::patch::held::Popped;

impl<R: Read> PatchReader<R> {
    /// Produce the next piece of output: appended to `self.buf`, or, while
    /// something is held, to `self.tail`.
    pub(super) fn step(&mut self) -> Result<()> {
        self.holding = !self.held.is_empty();
        if self.holding {
            if self.tail.len() >= CHUNK {
                self.held.push_bytes(std::mem::take(&mut self.tail));
            }
            std::mem::swap(&mut self.buf, &mut self.tail);
        }
        let res = self.produce();
        if self.holding {
            std::mem::swap(&mut self.buf, &mut self.tail);
        }
        res
    }

    pub(super) fn produce(&mut self) -> Result<()> {
        self.step_start = self.buf.len();
        match std::mem::replace(&mut self.state, State::Done) {
            State::Member => self.start_member()?,
            State::Data {
                data,
                left,
                pad,
                pad_literal,
            } => self.continue_data(data, left, pad, pad_literal)?,
            State::Trailer => {
                let n = self
                    .ctrl
                    .varint()
                    .map_err(|e| record_err(&self.path, "the trailer", e))?;
                let room = self.header.to.tar.size - self.produced;
                if n > room {
                    return Err(self.bad(format!("a {n}-byte trailer overruns the new tar")));
                }
                self.state = State::Data {
                    data: DataState::Trailer,
                    left: n,
                    pad: 0,
                    pad_literal: false,
                };
            }
            State::Verify => self.verify()?,
            State::Done => {}
        }
        self.made()
    }

    /// Count what this step appended to `buf` since `step_start` (unless
    /// it is held, it is handed out, and hashed once `buf` is done with:
    /// [`Self::retire_buf`]).
    pub(super) fn made(&mut self) -> Result<()> {
        let made = &self.buf[self.step_start..];
        if !made.is_empty() {
            let room = self.header.to.tar.size - self.produced;
            if made.len() as u64 > room {
                return Err(self.bad(format!(
                    "the patch makes more than the {} bytes of the new tar",
                    self.header.to.tar.size
                )));
            }
            self.produced += made.len() as u64;
        }
        self.step_start = self.buf.len();
        Ok(())
    }

    /// Move held pieces whose bytes are known to `buf`; with `wait`, wait
    /// for the first. Once nothing is held, `tail` follows.
    pub(super) fn release(&mut self, mut wait: bool) -> Result<()> {
        while let Some(p) = self.held.pop(wait) {
            wait = false;
            let bytes = match p {
                Popped::Bytes(b) => b,
                Popped::Rebuilt { member, len, bytes } => {
                    let bytes = bytes.map_err(|e| {
                        self.bad(format!(
                            "new member {member} cannot be compressed again: {e}"
                        ))
                    })?;
                    if bytes.len() as u64 != len {
                        return Err(self.bad(format!(
                            "re-compressed new member {member} came out {} bytes, not {len}: this sysup's compressors (zlib {}, {}) do not compress as the ones that made the patch did, or the patch is damaged; apply a full dist instead",
                            bytes.len(),
                            regz::zlib_version(),
                            recode::versions()
                        )));
                    }
                    bytes
                }
            };
            self.hand_out(bytes);
        }
        if self.held.is_empty() && !self.tail.is_empty() {
            let tail = std::mem::take(&mut self.tail);
            self.hand_out(tail);
        }
        Ok(())
    }

    /// Append `bytes` to what is handed out. A big piece becomes the
    /// buffer itself; a small one (a rebuilt member's exact-size bytes) is
    /// copied into an emptied buffer of the usual size, which the steps
    /// after it fill without growing it again and again.
    pub(super) fn hand_out(&mut self, bytes: Vec<u8>) {
        if self.buf_pos >= self.buf.len() {
            let done = std::mem::take(&mut self.buf);
            let mut next = self.hash_done(done);
            self.buf_pos = 0;
            if bytes.len() < GIVE_MIN && next.capacity() >= CHUNK {
                next.extend_from_slice(&bytes);
                self.buf = next;
            } else {
                self.buf = bytes;
            }
        } else {
            self.buf.extend_from_slice(&bytes);
        }
    }

    /// `buf` was read to its end: hash what it holds that is not hashed
    /// yet and go on producing into an empty buffer.
    pub(super) fn retire_buf(&mut self) {
        let done = std::mem::take(&mut self.buf);
        let next = self.hash_done(done);
        self.buf = next;
        self.buf_pos = 0;
    }

    /// Hash `done[hash_from..]`, a buffer read to its end; an empty buffer
    /// to produce into (it, or one the hashing thread is done with).
    fn hash_done(&mut self, mut done: Vec<u8>) -> Vec<u8> {
        let from = std::mem::replace(&mut self.hash_from, 0);
        match &mut self.out {
            Some(h) => h.give(done, from),
            None => {
                done.clear();
                done
            }
        }
    }

    /// Hash what `buf` holds that is not hashed yet, in place: before the
    /// digest is read.
    pub(super) fn hash_buf(&mut self) {
        if let Some(h) = &mut self.out {
            h.update(&self.buf[self.hash_from..]);
        }
        self.hash_from = self.buf.len();
    }
}
