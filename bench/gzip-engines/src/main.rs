//! Measures the deflate engines sysup could gzip a host's base with, on one
//! core, the way `sysup::format::gz::Writer` drives them: 1 MiB chunks, each primed
//! with the previous chunk's last 32 KiB and ended by a sync flush (libdeflate
//! cannot take a dictionary: its chunks are independent). Every stream that
//! can be concatenated is inflated again and compared with the input. Then
//! zlib-rs and ISA-L inflate a gzip file, three times each, alternated.
//!
//! Usage: cargo run --release -- TAR [GZ]

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use isal_sys::igzip_lib as isal;
use std::time::Instant;

const CHUNK: usize = 1 << 20;
const DICT: usize = 32 * 1024;

fn zlibrs(level: u32, data: &[u8], dict: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).unwrap();
    }
    let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 1024);
    c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    assert_eq!(c.total_in() as usize, data.len());
    out
}

fn isal_chunk(level: u32, data: &[u8], dict: &[u8], last: bool) -> Vec<u8> {
    unsafe {
        let mut s: Box<isal::isal_zstream> = Box::new(std::mem::zeroed());
        isal::isal_deflate_init(&mut *s);
        let mut lvlbuf = vec![
            0u8;
            match level {
                0 => 0,
                1 => isal::ISAL_DEF_LVL1_DEFAULT as usize,
                2 => isal::ISAL_DEF_LVL2_DEFAULT as usize,
                _ => isal::ISAL_DEF_LVL3_DEFAULT as usize,
            }
        ];
        s.level = level;
        s.level_buf = if lvlbuf.is_empty() {
            std::ptr::null_mut()
        } else {
            lvlbuf.as_mut_ptr()
        };
        s.level_buf_size = lvlbuf.len() as u32;
        s.gzip_flag = isal::IGZIP_DEFLATE as u16;
        if !dict.is_empty() {
            let r =
                isal::isal_deflate_set_dict(&mut *s, dict.as_ptr() as *mut u8, dict.len() as u32);
            assert_eq!(r, 0);
        }
        let mut out = vec![0u8; data.len() + data.len() / 8 + 1024];
        s.next_in = data.as_ptr() as *mut u8;
        s.avail_in = data.len() as u32;
        s.next_out = out.as_mut_ptr();
        s.avail_out = out.len() as u32;
        s.end_of_stream = last as u16;
        s.flush = isal::SYNC_FLUSH as u16;
        loop {
            let r = isal::isal_deflate(&mut *s);
            assert_eq!(r, 0);
            if s.avail_in == 0 && s.avail_out > 0 {
                break;
            }
            let used = s.total_out as usize;
            out.resize(out.len() * 2, 0);
            s.next_out = out.as_mut_ptr().add(used);
            s.avail_out = (out.len() - used) as u32;
        }
        out.truncate(s.total_out as usize);
        out
    }
}

/// Inflate a gzip file with ISA-L into a reused 256 KiB buffer, as a
/// `Read` adapter would; returns the uncompressed length.
fn isal_inflate(gz: &[u8]) -> usize {
    const BUF: usize = 256 * 1024;
    let mut out = vec![0u8; BUF];
    let mut total = 0usize;
    // SAFETY: all-zero is a valid inflate_state before isal_inflate_init;
    // next_in/next_out point into live buffers of the stated lengths.
    unsafe {
        let mut s: Box<isal::inflate_state> = Box::new(std::mem::zeroed());
        isal::isal_inflate_init(&mut *s);
        s.crc_flag = isal::ISAL_GZIP;
        s.next_in = gz.as_ptr() as *mut u8;
        s.avail_in = gz.len() as u32;
        loop {
            s.next_out = out.as_mut_ptr();
            s.avail_out = BUF as u32;
            let r = isal::isal_inflate(&mut *s);
            assert_eq!(r, 0, "isal_inflate {r}");
            total += BUF - s.avail_out as usize;
            if s.block_state == isal::isal_block_state_ISAL_BLOCK_FINISH
                || (s.avail_in == 0 && s.avail_out > 0)
            {
                break;
            }
        }
    }
    total
}

fn deflate_engines(path: &str) {
    let data = std::fs::read(path).unwrap();
    let n = data.len();
    for which in [
        "zlibrs1",
        "isal0",
        "isal1",
        "isal2",
        "isal3",
        "libdeflate1",
        "libdeflate2",
    ] {
        let t = Instant::now();
        let mut total = 0usize;
        let mut stream: Vec<u8> = Vec::new();
        let keep = which.starts_with("isal") || which == "zlibrs1";
        let mut c = libdeflater::Compressor::new(
            libdeflater::CompressionLvl::new(if which == "libdeflate2" { 2 } else { 1 }).unwrap(),
        );
        let mut ld = vec![0u8; c.deflate_compress_bound(CHUNK)];
        for (i, chunk) in data.chunks(CHUNK).enumerate() {
            let start = i * CHUNK;
            let dict = &data[start.saturating_sub(DICT)..start];
            let last = start + chunk.len() == n;
            let out = match which {
                "zlibrs1" => zlibrs(1, chunk, dict),
                w if w.starts_with("isal") => {
                    isal_chunk(w[4..].parse().unwrap(), chunk, dict, last)
                }
                _ => {
                    let k = c.deflate_compress(chunk, &mut ld).unwrap();
                    total += k;
                    continue;
                }
            };
            total += out.len();
            if keep {
                stream.extend_from_slice(&out);
            }
        }
        let dt = t.elapsed().as_secs_f64();
        // verify raw stream round-trips (zlib-rs inflate), time it
        let mut vt = 0.0;
        if keep {
            let t2 = Instant::now();
            let mut d = Decompress::new(false);
            let mut out = vec![0u8; n + 16];
            d.decompress(&stream, &mut out, FlushDecompress::Finish)
                .ok();
            vt = t2.elapsed().as_secs_f64();
            let ok = d.total_out() as usize == n && out[..n] == data[..];
            println!(
                "{which}: {total} B, {:.2} s, {:.0} MB/s; inflate {:.2} s ok={ok}",
                dt,
                n as f64 / dt / 1e6,
                vt
            );
        } else {
            println!(
                "{which}: {total} B, {:.2} s, {:.0} MB/s (independent chunks)",
                dt,
                n as f64 / dt / 1e6
            );
        }
        let _ = vt;
    }
}

fn inflate_engines(gz_path: &str) {
    let gz = std::fs::read(gz_path).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let mut d = flate2::read::GzDecoder::new(&gz[..]);
        let mut buf = vec![0u8; 256 * 1024];
        let mut tot = 0usize;
        loop {
            let k = std::io::Read::read(&mut d, &mut buf).unwrap();
            if k == 0 {
                break;
            }
            tot += k;
        }
        println!(
            "inflate zlib-rs: {tot} B in {:.2} s",
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let n = isal_inflate(&gz);
        println!(
            "inflate ISA-L:   {n} B in {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    deflate_engines(&args[1]);
    if let Some(gz) = args.get(2) {
        inflate_engines(gz);
    }
}
