//! ISA-L's deflate (Intel's igzip) for the gzip a host writes for itself:
//! one chunk per call, primed with a dictionary, ended by a sync flush or by
//! the final block — the contract of the zlib chunk compressor in `gz`.
//!
//! On this project's bench machine ISA-L level 1 deflates a 658 MB world
//! tar 2.1× faster than zlib-rs level 1, into 14% fewer bytes
//! (BENCHMARKS.md). The whole FFI surface of sysup's ISA-L use is this type.
//! Compiled only with the `isal` feature: ISA-L's build needs nasm and the
//! autotools, which a build with only Rust and a C compiler lacks.
//!
//! Invariants:
//! - a [`Deflater`] is reset before every chunk, so its output depends only
//!   on the level, the dictionary, the chunk and whether it is the last —
//!   never on the chunks it compressed before;
//! - ISA-L chooses SIMD code at run time, so its bytes may differ between
//!   CPU types: use it for local state (a host's bases), never for dists,
//!   whose bytes must be reproducible;
//! - the stream and its level buffer are heap-allocated once and never move
//!   while ISA-L holds pointers into them.

use std::io;

use isal_sys::igzip_lib as ffi;

/// A reusable ISA-L raw-deflate compressor for one thread.
pub struct Deflater {
    stream: Box<ffi::isal_zstream>,
    level_buf: Vec<u8>,
    level: u32,
}

/// Bytes of working memory ISA-L wants for `level` (its "default" sizes).
fn level_buf_size(level: u32) -> usize {
    (match level {
        0 => ffi::ISAL_DEF_LVL0_DEFAULT,
        1 => ffi::ISAL_DEF_LVL1_DEFAULT,
        2 => ffi::ISAL_DEF_LVL2_LARGE,
        _ => ffi::ISAL_DEF_LVL3_LARGE,
    }) as usize
}

fn failed(what: &str, code: i32) -> io::Error {
    io::Error::other(format!("ISA-L deflate: {what} failed (code {code})"))
}

impl Deflater {
    /// A compressor at ISA-L `level` (0–3; others fail on first use).
    pub fn new(level: u32) -> Deflater {
        // SAFETY: isal_zstream is a plain C struct of integers and raw
        // pointers, for which all-zero is a valid value; isal_deflate_init
        // then sets it up. The box keeps its address fixed.
        let mut stream: Box<ffi::isal_zstream> = Box::new(unsafe { std::mem::zeroed() });
        unsafe { ffi::isal_deflate_init(&mut *stream) };
        Deflater {
            stream,
            level_buf: vec![0; level_buf_size(level)],
            level,
        }
    }

    /// Raw deflate of `data`, continuing from `dict` (at most its last
    /// 32 KiB are used), ended by a sync flush or, if `last`, the final block.
    pub fn compress(&mut self, data: &[u8], dict: &[u8], last: bool) -> io::Result<Vec<u8>> {
        let len = u32::try_from(data.len())
            .map_err(|_| io::Error::other("ISA-L deflate: chunk over 4 GiB"))?;
        let s = &mut *self.stream;
        // SAFETY: `s` was set up by isal_deflate_init; reset keeps it valid.
        unsafe { ffi::isal_deflate_reset(s) };
        s.level = self.level;
        s.level_buf = if self.level_buf.is_empty() {
            std::ptr::null_mut()
        } else {
            self.level_buf.as_mut_ptr()
        };
        s.level_buf_size = self.level_buf.len() as u32;
        s.gzip_flag = ffi::IGZIP_DEFLATE as u16;
        s.flush = ffi::SYNC_FLUSH as u16;
        s.end_of_stream = u16::from(last);
        if !dict.is_empty() {
            let dict_len = dict.len().min(ffi::IGZIP_HIST_SIZE as usize);
            let dict = &dict[dict.len() - dict_len..];
            // SAFETY: ISA-L only reads `dict_len` bytes from the pointer
            // (the parameter is `uint8_t *` but the dictionary is copied).
            let code =
                unsafe { ffi::isal_deflate_set_dict(s, dict.as_ptr() as *mut u8, dict_len as u32) };
            if code != ffi::COMP_OK as i32 {
                return Err(failed("setting the dictionary", code));
            }
        }
        let mut out: Vec<u8> = Vec::with_capacity(data.len() + data.len() / 8 + 1024);
        s.next_in = data.as_ptr() as *mut u8;
        s.avail_in = len;
        loop {
            if out.capacity() == out.len() {
                out.reserve(out.capacity().max(64 * 1024));
            }
            let room = out.capacity() - out.len();
            let room32 = room.min(u32::MAX as usize) as u32;
            let (in_before, out_len) = (s.avail_in, out.len());
            // SAFETY: next_out points at `room32` spare bytes of `out`,
            // which ISA-L writes at most; next_in points into `data`, which
            // it only reads (it advances next_in/avail_in itself).
            let code = unsafe {
                s.next_out = out.as_mut_ptr().add(out_len);
                s.avail_out = room32;
                ffi::isal_deflate(s)
            };
            let produced = (room32 - s.avail_out) as usize;
            // SAFETY: ISA-L initialised exactly `produced` bytes past out_len.
            unsafe { out.set_len(out_len + produced) };
            if code != ffi::COMP_OK as i32 {
                return Err(failed("compressing", code));
            }
            let state = s.internal_state.state;
            let done = if last {
                state == ffi::isal_zstate_state_ZSTATE_END
            } else {
                // ISA-L: with all input taken, room left in the output (or
                // a new-header state) means the sync flush is complete.
                s.avail_in == 0
                    && (s.avail_out > 0 || state == ffi::isal_zstate_state_ZSTATE_NEW_HDR)
            };
            if done {
                break;
            }
            if produced == 0 && s.avail_in == in_before && s.avail_out > 0 {
                return Err(io::Error::other("ISA-L deflate: no progress"));
            }
        }
        // No pointer into `data` or `out` may outlive this call.
        s.next_in = std::ptr::null_mut();
        s.next_out = std::ptr::null_mut();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};

    fn inflate(stream: &[u8], size: usize) -> Vec<u8> {
        let mut d = Decompress::new(false);
        let mut out = Vec::with_capacity(size + 1);
        d.decompress_vec(stream, &mut out, FlushDecompress::Finish)
            .unwrap();
        out
    }

    fn sample(seed: u64, len: usize) -> Vec<u8> {
        // half noise, half text-like repeats: both literal and match paths
        let mut v = crate::util::testdata::noise(seed, len / 2);
        while v.len() < len {
            v.extend_from_slice(b"usr/share/doc/sysup/changelog ");
        }
        v.truncate(len);
        v
    }

    #[test]
    fn chunks_concatenate_into_one_deflate_stream() {
        for level in 0..=3 {
            let data = sample(u64::from(level) + 1, 300_000);
            let (a, b) = data.split_at(120_000);
            let mut d = Deflater::new(level);
            let mut stream = d.compress(a, &[], false).unwrap();
            stream.extend(d.compress(b, a, true).unwrap());
            assert_eq!(inflate(&stream, data.len()), data, "level {level}");
        }
    }

    #[test]
    fn output_does_not_depend_on_earlier_chunks() {
        let data = sample(7, 200_000);
        let dict = &data[..50_000];
        let mut used = Deflater::new(1);
        used.compress(&sample(8, 90_000), &[], false).unwrap();
        let again = used.compress(&data[50_000..], dict, false).unwrap();
        let fresh = Deflater::new(1)
            .compress(&data[50_000..], dict, false)
            .unwrap();
        assert_eq!(again, fresh);
    }

    #[test]
    fn empty_chunks_and_incompressible_growth() {
        let mut d = Deflater::new(1);
        assert_eq!(inflate(&d.compress(&[], &[], true).unwrap(), 0), b"");
        // noise grows a little under deflate: the output buffer must grow
        let noise = crate::util::testdata::noise(3, 1 << 20);
        assert_eq!(
            inflate(&d.compress(&noise, &[], true).unwrap(), 1 << 20),
            noise
        );
    }

    #[test]
    fn an_unknown_level_is_an_error_not_a_crash() {
        let err = Deflater::new(9).compress(b"abc", &[], true).unwrap_err();
        assert!(err.to_string().contains("ISA-L deflate"), "{err}");
    }
}
