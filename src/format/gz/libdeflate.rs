//! libdeflate (Eric Biggers' C library, built by `cc` from the
//! `libdeflate-sys` crate) for the members of a host's base: whole-buffer
//! raw deflate and inflate, and the CRC-32 of their trailers. A base's members are independent and at most
//! [`super::cuts::HARD_MAX`] bytes, so each is one call either way — the
//! shape libdeflate is built for, where it deflates faster than zlib-rs
//! into fewer bytes and inflates about twice as fast (bench/log/issue-23.md,
//! "libdeflate"). The whole FFI surface of sysup's libdeflate use is here.
//!
//! Invariants:
//! - every call reads only the input slice and writes only the output
//!   slice it is given (their lengths are passed, and libdeflate never goes
//!   past them); no pointer outlives its call;
//! - bad input is a value ([`Inflated::Bad`], [`Inflated::TooBig`]), never a
//!   panic: libdeflate's decompressor checks every length and code against
//!   its buffers (it is fuzzed for that upstream);
//! - a [`Deflater`]'s output depends only on its level and the input (it
//!   keeps no state between calls); libdeflate picks SIMD code at run time,
//!   so its bytes may differ between CPU types: local state only (a host's
//!   bases), never dists.

use std::ffi::c_void;
use std::io;
use std::ptr::NonNull;

use libdeflate_sys as ffi;

/// A raw-deflate compressor at one level, for one thread.
pub struct Deflater(NonNull<ffi::libdeflate_compressor>);

// SAFETY: a libdeflate compressor is plain heap memory used by one call at
// a time (every method takes `&mut self`); it is not tied to a thread.
unsafe impl Send for Deflater {}

impl Deflater {
    /// A compressor at libdeflate `level` (0–12).
    pub fn new(level: u32) -> io::Result<Deflater> {
        let lvl = i32::try_from(level).unwrap_or(i32::MAX);
        // SAFETY: plain allocation; NULL (a bad level, no memory) is handled.
        let p = unsafe { ffi::libdeflate_alloc_compressor(lvl) };
        NonNull::new(p)
            .map(Deflater)
            .ok_or_else(|| io::Error::other(format!("libdeflate: no compressor at level {level}")))
    }

    /// Append `data` to `out` as one raw deflate stream, ended by a final block.
    pub fn deflate(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        // SAFETY: the compressor is live; the bound is pure arithmetic.
        let bound = unsafe { ffi::libdeflate_deflate_compress_bound(self.0.as_ptr(), data.len()) };
        out.reserve(bound);
        let start = out.len();
        let spare = out.spare_capacity_mut();
        // SAFETY: libdeflate reads `data.len()` bytes of `data` and writes at
        // most `spare.len()` bytes into `spare`, returning how many (0 if
        // they did not fit, which the bound rules out).
        let n = unsafe {
            ffi::libdeflate_deflate_compress(
                self.0.as_ptr(),
                data.as_ptr().cast::<c_void>(),
                data.len(),
                spare.as_mut_ptr().cast::<c_void>(),
                spare.len(),
            )
        };
        if n == 0 || n > spare.len() {
            return Err(io::Error::other(
                "libdeflate: deflate output over its bound",
            ));
        }
        // SAFETY: libdeflate initialised the first `n` bytes of the spare capacity.
        unsafe { out.set_len(start + n) };
        Ok(())
    }
}

impl Drop for Deflater {
    fn drop(&mut self) {
        // SAFETY: allocated by libdeflate_alloc_compressor, freed once.
        unsafe { ffi::libdeflate_free_compressor(self.0.as_ptr()) }
    }
}

/// A raw-deflate decompressor, for one thread.
pub struct Inflater(NonNull<ffi::libdeflate_decompressor>);

// SAFETY: as for [`Deflater`].
unsafe impl Send for Inflater {}

/// What [`Inflater::inflate`] found at the start of its input.
#[derive(Debug, PartialEq, Eq)]
pub enum Inflated {
    /// A whole deflate stream of `used` bytes, which inflated to `made` bytes.
    Whole { used: usize, made: usize },
    /// A stream that inflates to more than the output holds.
    TooBig,
    /// Not a deflate stream, or one cut short by the end of the input.
    Bad,
}

impl Inflater {
    /// A decompressor; `None` only if there is no memory for one.
    pub fn new() -> Option<Inflater> {
        // SAFETY: plain allocation; NULL is handled.
        NonNull::new(unsafe { ffi::libdeflate_alloc_decompressor() }).map(Inflater)
    }

    /// Inflate the raw deflate stream that starts `input` into `out`; the
    /// input may go on past the stream's end.
    pub fn inflate(&mut self, input: &[u8], out: &mut [u8]) -> Inflated {
        let (mut used, mut made) = (0usize, 0usize);
        // SAFETY: libdeflate reads at most `input.len()` bytes and writes at
        // most `out.len()` bytes, and sets the two counts it is given.
        let r = unsafe {
            ffi::libdeflate_deflate_decompress_ex(
                self.0.as_ptr(),
                input.as_ptr().cast::<c_void>(),
                input.len(),
                out.as_mut_ptr().cast::<c_void>(),
                out.len(),
                &mut used,
                &mut made,
            )
        };
        match r {
            ffi::libdeflate_result_LIBDEFLATE_SUCCESS
                if used <= input.len() && made <= out.len() =>
            {
                Inflated::Whole { used, made }
            }
            ffi::libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE => Inflated::TooBig,
            _ => Inflated::Bad,
        }
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: allocated by libdeflate_alloc_decompressor, freed once.
        unsafe { ffi::libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

/// The gzip CRC-32 of a stream, by libdeflate: its folding code picks the
/// widest carry-less multiply the CPU has at run time (512-bit VPCLMULQDQ
/// where there is one), about twice as fast as zlib-rs's here — and every
/// byte of a base is summed twice in an apply (read, written).
#[derive(Debug, Clone, Copy, Default)]
pub struct Crc32(u32);

impl Crc32 {
    /// The CRC-32 of nothing yet.
    pub fn new() -> Crc32 {
        Crc32(0)
    }

    /// The CRC-32 of `data` alone.
    pub fn of(data: &[u8]) -> u32 {
        let mut c = Crc32::new();
        c.update(data);
        c.sum()
    }

    /// Go on with `data`.
    pub fn update(&mut self, data: &[u8]) {
        // SAFETY: libdeflate reads exactly `data.len()` bytes of `data`.
        self.0 =
            unsafe { ffi::libdeflate_crc32(self.0, data.as_ptr().cast::<c_void>(), data.len()) };
    }

    /// The CRC-32 so far.
    pub fn sum(&self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reports_what_it_used() {
        let mut data = crate::util::testdata::noise(3, 200_000);
        data.extend(std::iter::repeat_n(b'q', 300_000));
        for level in [1, 2, 4, 6] {
            let mut z = b"head".to_vec();
            Deflater::new(level)
                .unwrap()
                .deflate(&data, &mut z)
                .unwrap();
            let body_len = z.len() - 4;
            z.extend_from_slice(b"trailing bytes");
            let mut inf = Inflater::new().unwrap();
            let mut out = vec![0u8; data.len() + 10];
            let got = inf.inflate(&z[4..], &mut out);
            assert_eq!(
                got,
                Inflated::Whole {
                    used: body_len,
                    made: data.len()
                },
                "level {level}"
            );
            assert_eq!(&out[..data.len()], &data[..]);
            // flate2 (zlib-rs) reads it too
            let mut d = flate2::Decompress::new(false);
            let mut back = Vec::with_capacity(data.len() + 1);
            d.decompress_vec(&z[4..], &mut back, flate2::FlushDecompress::Finish)
                .unwrap();
            assert_eq!(back, data);
        }
    }

    #[test]
    fn short_output_truncated_and_garbage_input_are_values() {
        let data = crate::util::testdata::noise(4, 100_000);
        let mut z = Vec::new();
        Deflater::new(2).unwrap().deflate(&data, &mut z).unwrap();
        let mut inf = Inflater::new().unwrap();
        let mut small = vec![0u8; data.len() - 1];
        assert_eq!(inf.inflate(&z, &mut small), Inflated::TooBig);
        let mut out = vec![0u8; data.len()];
        assert_eq!(inf.inflate(&z[..z.len() / 2], &mut out), Inflated::Bad);
        assert_eq!(inf.inflate(&[0xff; 64], &mut out), Inflated::Bad);
        assert_eq!(inf.inflate(&[], &mut out), Inflated::Bad);
    }

    #[test]
    fn crc32_is_gzip_s_in_any_cut() {
        let data = crate::util::testdata::noise(5, 300_001);
        let mut want = flate2::Crc::new();
        want.update(&data);
        assert_eq!(Crc32::of(&data), want.sum());
        let mut c = Crc32::new();
        for part in data.chunks(4097) {
            c.update(part);
        }
        assert_eq!(c.sum(), want.sum());
        assert_eq!(Crc32::of(b"123456789"), 0xcbf4_3926);
        assert_eq!(Crc32::of(&[]), 0);
    }

    #[test]
    fn empty_input_is_a_stream_too() {
        let mut z = Vec::new();
        Deflater::new(1).unwrap().deflate(&[], &mut z).unwrap();
        let mut out = [0u8; 4];
        let got = Inflater::new().unwrap().inflate(&z, &mut out);
        assert_eq!(
            got,
            Inflated::Whole {
                used: z.len(),
                made: 0
            }
        );
        assert!(Deflater::new(99).is_err());
    }
}
