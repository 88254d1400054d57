//! The one place that calls C zlib's deflate: raw deflate streams (window
//! 2^15, default strategy) at a level and memLevel, for the re-gzipped
//! ([`regz`](super::regz)) and re-zipped ([`rezip`](super::rezip))
//! members, whose bytes must be exactly what zlib makes.
//!
//! Invariants: the output is a function of the input and the [`Deflate`]
//! settings only (one `Z_FINISH`, no other flush), whatever the chunking
//! of the sink; a setting outside [`Deflate::check`] is refused before
//! zlib sees it.

use std::io;
use std::os::raw::{c_int, c_uint, c_void};

use libz_sys as z;

/// zlib deflate settings: `deflateInit2(level, Z_DEFLATED, -15, mem_level,
/// Z_DEFAULT_STRATEGY)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Deflate {
    /// 1–9.
    pub level: u8,
    /// 1–9 (zlib's default 8).
    pub mem_level: u8,
}

impl Deflate {
    /// Settings zlib accepts (and that allocate at most ~400 KiB).
    pub fn check(&self) -> Result<(), &'static str> {
        if !(1..=9).contains(&self.level) || !(1..=9).contains(&self.mem_level) {
            return Err("a deflate setting outside levels 1-9, memLevels 1-9");
        }
        Ok(())
    }
}

unsafe extern "C" fn zalloc(_: z::voidpf, items: z::uInt, size: z::uInt) -> z::voidpf {
    // SAFETY: calloc with the sizes zlib asks for; zlib checks for null.
    unsafe { libc::calloc(items as usize, size as usize) }
}

unsafe extern "C" fn zfree(_: z::voidpf, p: z::voidpf) {
    // SAFETY: `p` came from `zalloc` above.
    unsafe { libc::free(p as *mut c_void) }
}

pub fn version() -> String {
    // SAFETY: zlibVersion returns a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(z::zlibVersion()) }
        .to_string_lossy()
        .into_owned()
}

/// Whether [`deflate_raw`] of `data` with `d` is exactly `expected`. Stops
/// at the first chunk that differs, so a setting that does not reproduce a
/// stream costs a fraction of a whole deflate.
pub fn deflates_to(data: &[u8], d: Deflate, expected: &[u8]) -> bool {
    let mut at = 0;
    let finished = deflate_raw(data, d, |chunk| {
        let same = expected.get(at..at + chunk.len()) == Some(chunk);
        at += chunk.len();
        same
    });
    finished.unwrap_or(false) && at == expected.len()
}

/// Raw-deflate `data`, handing the output to `sink` in chunks of at most
/// `OUT_CHUNK` bytes; stop as soon as `sink` returns false. Returns
/// whether the stream was finished (false: `sink` stopped it). The bytes do
/// not depend on the chunking: zlib's output is a function of the input and
/// the flushes asked for, here one `Z_FINISH`.
pub fn deflate_raw(
    data: &[u8],
    d: Deflate,
    mut sink: impl FnMut(&[u8]) -> bool,
) -> io::Result<bool> {
    d.check().map_err(io::Error::other)?;
    let len = c_uint::try_from(data.len())
        .map_err(|_| io::Error::other("too large to deflate in one call"))?;
    let mut s = z::z_stream {
        next_in: data.as_ptr() as *mut u8,
        avail_in: len,
        total_in: 0,
        next_out: std::ptr::null_mut(),
        avail_out: 0,
        total_out: 0,
        msg: std::ptr::null_mut(),
        state: std::ptr::null_mut(),
        zalloc,
        zfree,
        opaque: std::ptr::null_mut(),
        data_type: 0,
        adler: 0,
        reserved: 0,
    };
    let mut out = vec![0u8; OUT_CHUNK];
    // SAFETY: `s` is a fully initialised z_stream that stays in place
    // (zlib keeps a pointer to it) until deflateEnd; next_in/next_out
    // point into buffers that outlive every call and whose lengths are
    // the avail_* given; deflateEnd runs on every path after a
    // successful init.
    unsafe {
        let size = std::mem::size_of::<z::z_stream>() as c_int;
        let r = z::deflateInit2_(
            &mut s,
            c_int::from(d.level),
            z::Z_DEFLATED,
            -15,
            c_int::from(d.mem_level),
            z::Z_DEFAULT_STRATEGY,
            z::zlibVersion(),
            size,
        );
        if r != z::Z_OK {
            return Err(io::Error::other(format!("zlib deflateInit2 failed ({r})")));
        }
        let result = loop {
            s.next_out = out.as_mut_ptr();
            s.avail_out = OUT_CHUNK as c_uint;
            let r = z::deflate(&mut s, z::Z_FINISH);
            let made = OUT_CHUNK - s.avail_out as usize;
            if r != z::Z_OK && r != z::Z_STREAM_END {
                break Err(io::Error::other(format!("zlib deflate failed ({r})")));
            }
            if !sink(&out[..made]) {
                break Ok(false);
            }
            if r == z::Z_STREAM_END {
                break Ok(true);
            }
        };
        z::deflateEnd(&mut s);
        result
    }
}

/// Output handed over per call of a [`deflate_raw`] sink.
const OUT_CHUNK: usize = 64 << 10;
