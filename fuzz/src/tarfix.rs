//! Tar header checksum repair, so mutated tar headers reach the parsers
//! instead of dying at the checksum.
//!
//! [`fix_checksums`] walks a tar the way `sysup::format::archive::segment` frames
//! it — header block, data rounded up to 512 bytes (the size from the
//! header, or from a preceding PAX `size` record), GNU sparse extension
//! blocks — and rewrites each header's checksum field. It stops at the
//! first all-zero block (the end of the archive) or at anything it cannot
//! follow; what it leaves is for the code under test to refuse.

const B: usize = 512;

/// A numeric header field: octal text, or base-256 when the high bit is set.
fn number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        let mut v = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    let t: String = field[..end]
        .iter()
        .filter(|c| **c != b' ')
        .map(|&c| c as char)
        .collect();
    if t.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(&t, 8).ok()
}

/// Write the checksum of one header block into it.
pub fn set_checksum(h: &mut [u8]) {
    h[148..156].fill(b' ');
    let sum: u32 = h[..B].iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// Recompute every header checksum of `tar` in place (see the module docs).
pub fn fix_checksums(tar: &mut [u8]) {
    let mut at = 0usize;
    let mut pax_size: Option<u64> = None;
    while at + B <= tar.len() {
        let h = &mut tar[at..at + B];
        if h.iter().all(|&b| b == 0) {
            return;
        }
        set_checksum(h);
        let tf = h[156];
        let Some(mut size) = number(&h[124..136]) else {
            return;
        };
        if !matches!(tf, b'x' | b'g' | b'L' | b'K') {
            if let Some(s) = pax_size.take() {
                size = s;
            }
        }
        let mut next = at + B;
        if tf == b'S' && h[482] != 0 {
            // GNU sparse: extension blocks follow while their last flag is set.
            loop {
                if next + B > tar.len() {
                    return;
                }
                let more = tar[next + 504] != 0;
                next += B;
                if !more {
                    break;
                }
            }
        }
        let Some(data_end) = size
            .checked_add(B as u64 - 1)
            .map(|s| s / B as u64 * B as u64)
            .and_then(|d| usize::try_from(d).ok())
            .and_then(|d| next.checked_add(d))
        else {
            return;
        };
        if tf == b'x' && data_end <= tar.len() {
            let data = &tar[next..next + (size as usize).min(data_end - next)];
            if let Ok(recs) = sysup::format::archive::member::pax_records(data) {
                for (k, v) in recs {
                    if k == b"size" {
                        pax_size = std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok());
                    }
                }
            }
        }
        at = data_end;
    }
}
