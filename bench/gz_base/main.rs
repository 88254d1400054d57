//! Gzips one file the way an apply writes a host's base: through
//! `sysup::format::gz::Writer` (1 MiB dictionary-primed chunks, one worker per
//! core), with one engine, into a sink that only counts. Prints the engine,
//! the bytes in and out, the ratio and the wall time, so that a shell loop
//! can run the engines alternately in separate processes (bench/README.md,
//! "Base gzip").
//!
//! Usage: cargo run --release --example gz-base [--features isal] -- ENGINE FILE
//! ENGINE: `fast` (ISA-L level 1 with the `isal` feature, else zlib-rs
//! level 1), `zlib1` (zlib-rs level 1) or `stored`.

use std::io::{self, Write};
use std::time::Instant;

use sysup::format::gz::{Engine, Writer};

/// A sink that keeps only the number of bytes written to it.
struct Count(u64);

impl Write for Count {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [name, path] = &args[..] else {
        eprintln!("usage: gz-base fast|zlib1|stored FILE");
        std::process::exit(2);
    };
    let engine = match name.as_str() {
        "fast" => Engine::Fast(1),
        "zlib1" => Engine::Portable(1),
        "stored" => Engine::Stored,
        _ => {
            eprintln!("unknown engine {name}");
            std::process::exit(2);
        }
    };
    // Read ahead of the clock, as an apply's tar comes from memory (the
    // patch's output), not from disk.
    let data = std::fs::read(path)?;
    let t = Instant::now();
    let mut w = Writer::with_engine(Count(0), engine);
    let mut rest = &data[..];
    while !rest.is_empty() {
        // the 256 KiB writes of an apply's tar writer
        let n = rest.len().min(256 * 1024);
        w.write_all(&rest[..n])?;
        rest = &rest[n..];
    }
    let out = w.finish()?.0;
    let secs = t.elapsed().as_secs_f64();
    let isal = if cfg!(feature = "isal") {
        "isal"
    } else {
        "no isal"
    };
    println!(
        "{name} ({isal}): {} -> {out} B ({:.3}), {secs:.3} s, {:.0} MB/s",
        data.len(),
        out as f64 / data.len() as f64,
        data.len() as f64 / secs / 1e6
    );
    Ok(())
}
