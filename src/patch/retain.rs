//! Old members the applier keeps after reading past them, because a later new
//! member refers back to them (out of stream order) or a bsdiff needs random
//! access to their data.
//!
//! Each kept member is its header bytes (if still needed) followed by its
//! data bytes (if still needed). It lives in memory when it is at most
//! [`ITEM_IN_MEMORY`] bytes and the memory total stays under
//! [`TOTAL_IN_MEMORY`]; otherwise it is appended to one unlinked temporary
//! spill file and read back with `pread`.
//!
//! Both limits can be lowered per store ([`Store::with_limits`]).
//!
//! Invariants: memory use is bounded by the total limit plus one I/O
//! buffer whatever the patch says; every item carries its expiry (the last new
//! member that needs it) and is dropped by [`Store::expire`] once that member
//! is done, so the store holds only what the retention plan still needs.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

/// Largest item kept in memory.
pub const ITEM_IN_MEMORY: u64 = 16 << 20;
/// Largest total kept in memory.
pub const TOTAL_IN_MEMORY: u64 = 64 << 20;

enum Loc {
    Mem(Vec<u8>),
    Spill(u64),
}

/// One kept old member.
struct Item {
    loc: Loc,
    header_len: u64,
    data_len: u64,
    expires: u32,
}

/// Kept old members, by old member index.
pub struct Store {
    /// Largest item kept in memory.
    item_max: u64,
    /// Largest total kept in memory.
    total_max: u64,
    items: HashMap<u32, Item>,
    /// expiry → members expiring then.
    by_expiry: BTreeMap<u32, Vec<u32>>,
    mem_used: u64,
    spill: Option<File>,
    spill_len: u64,
    /// Largest number of bytes ever spilled (for reports).
    pub spilled_total: u64,
}

impl Store {
    /// A store with the default limits.
    pub fn new() -> Store {
        Store::with_limits(ITEM_IN_MEMORY, TOTAL_IN_MEMORY)
    }

    /// A store keeping items of at most `item_max` bytes in memory, and at
    /// most `total_max` bytes in all.
    pub fn with_limits(item_max: u64, total_max: u64) -> Store {
        Store {
            item_max,
            total_max,
            items: HashMap::new(),
            by_expiry: BTreeMap::new(),
            mem_used: 0,
            spill: None,
            spill_len: 0,
            spilled_total: 0,
        }
    }

    /// Keep old member `idx`: `header` (if given) then `data_len` bytes read
    /// from `data`, until new member `expires` (index + 1) is done.
    pub fn insert(
        &mut self,
        idx: u32,
        header: Option<&[u8]>,
        data: &mut impl Read,
        data_len: u64,
        expires: u32,
    ) -> io::Result<()> {
        let header = header.unwrap_or(&[]);
        let total = header.len() as u64 + data_len;
        let loc = if total <= self.item_max && self.mem_used + total <= self.total_max {
            let mut v = Vec::with_capacity(total as usize);
            v.extend_from_slice(header);
            let got = data.take(data_len).read_to_end(&mut v)?;
            if got as u64 != data_len {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.mem_used += total;
            Loc::Mem(v)
        } else {
            if self.spill.is_none() {
                self.spill = Some(tempfile::tempfile()?);
            }
            let f = self.spill.as_ref().unwrap();
            let start = self.spill_len;
            f.write_all_at(header, start)?;
            let mut at = start + header.len() as u64;
            let mut buf = vec![0u8; 256 * 1024];
            let mut left = data_len;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                data.read_exact(&mut buf[..n])?;
                f.write_all_at(&buf[..n], at)?;
                at += n as u64;
                left -= n as u64;
            }
            self.spill_len = at;
            self.spilled_total += total;
            Loc::Spill(start)
        };
        if let Some(old) = self.items.insert(
            idx,
            Item {
                loc,
                header_len: header.len() as u64,
                data_len,
                expires,
            },
        ) {
            self.forget(old);
        }
        self.by_expiry.entry(expires).or_default().push(idx);
        Ok(())
    }

    fn forget(&mut self, item: Item) {
        if let Loc::Mem(v) = item.loc {
            self.mem_used -= v.len() as u64;
        }
    }

    /// Whether old member `idx` is kept, with its header (`Some(true)`) or without.
    pub fn has(&self, idx: u32) -> Option<(bool, u64)> {
        self.items
            .get(&idx)
            .map(|it| (it.header_len > 0, it.data_len))
    }

    /// The kept header of `idx`, if any.
    pub fn header(&self, idx: u32) -> io::Result<Option<Vec<u8>>> {
        let Some(it) = self.items.get(&idx) else {
            return Ok(None);
        };
        if it.header_len == 0 {
            return Ok(None);
        }
        let mut v = vec![0u8; it.header_len as usize];
        self.read_raw(it, 0, &mut v)?;
        Ok(Some(v))
    }

    /// Read `buf.len()` data bytes of `idx` from data offset `pos`; the
    /// caller has checked the range against the data length.
    pub fn read_data(&self, idx: u32, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        let it = self
            .items
            .get(&idx)
            .ok_or_else(|| io::Error::other("old member not kept"))?;
        debug_assert!(pos + buf.len() as u64 <= it.data_len);
        self.read_raw(it, it.header_len + pos, buf)
    }

    /// The kept data of `idx` as a slice when it is in memory.
    pub fn data_slice(&self, idx: u32) -> Option<&[u8]> {
        match self.items.get(&idx) {
            Some(Item {
                loc: Loc::Mem(v),
                header_len,
                ..
            }) => Some(&v[*header_len as usize..]),
            _ => None,
        }
    }

    fn read_raw(&self, it: &Item, off: u64, buf: &mut [u8]) -> io::Result<()> {
        match &it.loc {
            Loc::Mem(v) => {
                let off = off as usize;
                buf.copy_from_slice(&v[off..off + buf.len()]);
                Ok(())
            }
            Loc::Spill(start) => self
                .spill
                .as_ref()
                .expect("spilled item without a spill file")
                .read_exact_at(buf, start + off),
        }
    }

    /// Drop every item whose last user is new member `done` (index + 1) or earlier.
    pub fn expire(&mut self, done: u32) {
        while let Some((&e, _)) = self.by_expiry.first_key_value() {
            if e > done {
                break;
            }
            let (_, ids) = self.by_expiry.pop_first().unwrap();
            for id in ids {
                if self.items.get(&id).is_some_and(|it| it.expires == e) {
                    let it = self.items.remove(&id).unwrap();
                    self.forget(it);
                }
            }
        }
        if self.items.is_empty() && self.spill_len > 0 {
            // Nothing spilled is live: reuse the file from its start.
            if let Some(f) = &self.spill {
                let _ = f.set_len(0);
            }
            self.spill_len = 0;
        }
    }

    /// Bytes held in memory.
    pub fn memory(&self) -> u64 {
        self.mem_used
    }
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_items_stay_in_memory_big_ones_spill() {
        let mut s = Store::new();
        let small = vec![3u8; 1000];
        s.insert(1, Some(b"HDR"), &mut &small[..], 1000, 5).unwrap();
        assert_eq!(s.memory(), 1003);
        let big = vec![9u8; (ITEM_IN_MEMORY + 10) as usize];
        s.insert(2, None, &mut &big[..], big.len() as u64, 7)
            .unwrap();
        assert_eq!(s.memory(), 1003);
        assert_eq!(s.header(1).unwrap().unwrap(), b"HDR");
        assert!(s.header(2).unwrap().is_none());
        let mut b = [0u8; 4];
        s.read_data(2, ITEM_IN_MEMORY + 6, &mut b).unwrap();
        assert_eq!(b, [9; 4]);
        s.read_data(1, 996, &mut b).unwrap();
        assert_eq!(b, [3; 4]);
        assert!(s.data_slice(1).is_some() && s.data_slice(2).is_none());
        s.expire(5);
        assert!(s.has(1).is_none() && s.has(2).is_some());
        assert_eq!(s.memory(), 0);
        s.expire(7);
        assert!(s.has(2).is_none());
    }

    #[test]
    fn memory_total_is_capped() {
        let mut s = Store::new();
        let item = vec![1u8; ITEM_IN_MEMORY as usize];
        for i in 0..10 {
            s.insert(i, None, &mut &item[..], item.len() as u64, 100)
                .unwrap();
            assert!(s.memory() <= TOTAL_IN_MEMORY);
        }
        assert!(s.spilled_total >= 6 * ITEM_IN_MEMORY);
    }

    #[test]
    fn short_data_is_an_error() {
        let mut s = Store::new();
        let data = [1u8; 10];
        assert!(s.insert(1, None, &mut &data[..], 11, 1).is_err());
    }
}
