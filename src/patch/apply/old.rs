//! The applier's side of the old tar: segmented strictly forward, each old
//! member passed on the way kept in the [`Store`](crate::patch::retain::Store)
//! only as far as the plan says a later new member needs its header or data,
//! or left in the stream for a copy that streams straight through.
//!
//! Invariants: the old tar is never read past the member a record needs;
//! framing errors and an early end of the old tar are blamed on the input
//! (it is not the base), an upstream reader's own error passes through as
//! it is.

use std::io::{self, Read};

use super::{OldStream, PatchReader};
use crate::error::{Error, Result};
use crate::format::archive::segment::{self, Item, Member};

impl<R: Read> PatchReader<R> {
    /// An error met while reading the old tar: a framing error or an early
    /// end means the input is not the base; an upstream patch's error passes
    /// through as it is.
    pub(super) fn old_error(&self, e: Error) -> Error {
        match e {
            Error::Tar { reason, .. } => self.wrong_base(format!(
                "{reason}; the patch was made from {} ({} bytes)",
                self.header.from.id, self.header.from.tar.size
            )),
            // the segmenter's own read error; a library error from the
            // base's reader (gunzip) comes up as itself and stays
            Error::Io { action, source, .. } if action == segment::READ_TAR => {
                self.old_io_error(source)
            }
            e => e,
        }
    }

    pub(super) fn old_io_error(&self, e: io::Error) -> Error {
        if e.kind() == io::ErrorKind::UnexpectedEof && e.get_ref().is_none_or(|i| !i.is::<Error>())
        {
            return self.wrong_base(format!(
                "the old tar ends at byte {}; the patch was made from a {}-byte tar",
                self.old.seg.get_ref().position(),
                self.header.from.tar.size
            ));
        }
        Error::from_io(e, "read old tar for", &self.path)
    }

    /// The next old member's framing from the segmenter.
    pub(super) fn old_next_member(&mut self) -> Result<Member> {
        let k = self.old.next();
        match self.old.seg.next_item() {
            Ok(Some(Item::Member(m))) => {
                self.old.seen.push((m.header.len() as u64, m.size));
                Ok(m)
            }
            Ok(_) => Err(self.wrong_base(format!(
                "the old tar ends after {k} members; the patch was made from one of {}",
                self.plan.len()
            ))),
            Err(e) => Err(self.old_error(e)),
        }
    }

    /// Consume old member `k` (the next one), keeping what the plan says
    /// member `cur_new` or a later one needs.
    pub(super) fn old_pass(&mut self) -> Result<()> {
        let k = self.old.next();
        let m = self.old_next_member()?;
        let e = self.plan[k as usize];
        let need_h = e.hdr_last > self.cur_new;
        let need_d = e.data_last > self.cur_new;
        if need_h || need_d {
            let expires = e.hdr_last.max(e.data_last);
            let data_len = if need_d { m.size } else { 0 };
            let OldStream { seg, store, .. } = &mut self.old;
            let res = store.insert(
                k,
                need_h.then_some(&m.header[..]),
                &mut seg.data(),
                data_len,
                expires,
            );
            if let Err(e) = res {
                return Err(self.old_io_error(e));
            }
        }
        Ok(())
    }

    /// Make old member `j` available for member `cur_new`: pass members up
    /// to it; `stream` leaves `j`'s data unread in the stream for a copy.
    pub(super) fn old_reach(&mut self, j: u32, stream: bool) -> Result<()> {
        while self.old.next() < j {
            self.old_pass()?;
        }
        if self.old.next() == j {
            if stream {
                let m = self.old_next_member()?;
                let e = self.plan[j as usize];
                if e.hdr_last > self.cur_new + 1 {
                    self.old
                        .store
                        .insert(j, Some(&m.header), &mut io::empty(), 0, e.hdr_last)
                        .map_err(|e| Error::from_io(e, "keep old data for", &self.path))?;
                }
                self.old.cur_header = m.header;
                self.old.cur = Some(j);
            } else {
                self.old_pass()?;
            }
        }
        Ok(())
    }

    pub(super) fn old_header(&mut self, j: u32) -> Result<Vec<u8>> {
        if self.old.cur == Some(j) {
            return Ok(std::mem::take(&mut self.old.cur_header));
        }
        match self.old.store.header(j) {
            Ok(Some(h)) => Ok(h),
            Ok(None) => Err(self.bad(format!(
                "new member {} uses the header of old member {j}, which the plan did not keep",
                self.cur_new
            ))),
            Err(e) => Err(Error::from_io(e, "read kept old data for", &self.path)),
        }
    }

    pub(super) fn check_kept_data(&self, j: u32) -> Result<()> {
        match self.old.store.has(j) {
            Some((_, n)) if n == self.old.seen[j as usize].1 => Ok(()),
            _ => Err(self.bad(format!(
                "new member {} uses the data of old member {j}, which the plan did not keep",
                self.cur_new
            ))),
        }
    }
}
