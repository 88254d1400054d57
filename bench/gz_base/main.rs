//! Gzips one file the way an apply writes a host's base: through
//! `sysup::format::gz::Writer` (1 MiB dictionary-primed chunks, one worker per
//! core), with one engine, into a sink that only counts. Prints the engine,
//! the bytes in and out, the ratio and the wall time, so that a shell loop
//! can run the engines alternately in separate processes (bench/README.md,
//! "Base gzip").
//!
//! Usage: cargo run --release --example gz-base -- ENGINE FILE
//! ENGINE: `fast` (zlib-rs level 2 in this writer), `zlibN` (zlib-rs level
//! N, 1-9) or `stored`.
//!
//! `gz-base deflatedN OLD.tar NEW.tar` deflates, one by one on one
//! thread with libdeflate level N, the groups of NEW's base that OLD's
//! does not hold (what an apply deflates), and splits bytes and time by
//! ratio (bench/log/issue-23.md, "Third pass").
//!
//! `gz-base members-ENGINE OLD.tar NEW.tar` times a base's steps instead
//! (see [`members`]); there ENGINE is `fastN` (libdeflate level N),
//! `zlibN` or `stored`.

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
    if let [cmd, old, new] = &args[..] {
        if cmd == "groups" {
            return groups(old, new);
        }
        if let Some(level) = cmd.strip_prefix("deflated") {
            return deflated(level.parse().unwrap_or(1), old, new);
        }
        if let Some(engine) = cmd.strip_prefix("members-") {
            return members(engine, old, new);
        }
    }
    let [name, path] = &args[..] else {
        eprintln!("usage: gz-base fast|zlibN|stored FILE");
        std::process::exit(2);
    };
    let engine = match name.as_str() {
        "fast" => Engine::Fast(1),
        "stored" => Engine::Stored,
        z if z.starts_with("zlib") && z[4..].parse::<u32>().is_ok() => {
            Engine::Portable(z[4..].parse().unwrap_or(1))
        }
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
    println!(
        "{name}: {} -> {out} B ({:.3}), {secs:.3} s, {:.0} MB/s",
        data.len(),
        out as f64 / data.len() as f64,
        data.len() as f64 / secs / 1e6
    );
    Ok(())
}

/// The cuts to try: `GZ_CUTS=MIN,MAX,STEP,BIG,HIT` (the first four in KiB)
/// in the environment, else sysup's own.
fn cut_params() -> sysup::format::gz::cuts::Params {
    let Ok(v) = std::env::var("GZ_CUTS") else {
        return Default::default();
    };
    let n: Vec<u64> = v.split(',').filter_map(|x| x.trim().parse().ok()).collect();
    let [min, max, step, big, hit] = n[..] else {
        eprintln!("GZ_CUTS=MIN,MAX,STEP,BIG,HIT (KiB, KiB, KiB, KiB, 1 in HIT)");
        std::process::exit(2);
    };
    sysup::format::gz::cuts::Params {
        min: (min << 10) as usize,
        max: (max << 10) as usize,
        step: step << 10,
        big: big << 10,
        hit,
    }
}

/// `groups OLD.tar NEW.tar`: how a base of NEW is cut into members
/// (`sysup::format::gz::cuts`) and how many of its bytes are in members
/// that a base of OLD holds too (same CRC-32 and length), which an apply
/// copies instead of deflating.
fn groups(old: &str, new: &str) -> io::Result<()> {
    let cut = |path: &str| -> io::Result<(Vec<(u32, usize)>, usize)> {
        let data = std::fs::read(path)?;
        let mut at = 0;
        let mut out = Vec::new();
        for len in sysup::format::gz::cuts::groups_with(&data, 256 * 1024, cut_params()) {
            let mut crc = flate2::Crc::new();
            crc.update(&data[at..at + len]);
            out.push((crc.sum(), len));
            at += len;
        }
        Ok((out, data.len()))
    };
    let (a, _) = cut(old)?;
    let (b, total) = cut(new)?;
    let known: std::collections::HashSet<_> = a.iter().copied().collect();
    let same: usize = b.iter().filter(|g| known.contains(g)).map(|g| g.1).sum();
    let hits = b.iter().filter(|g| known.contains(g)).count();
    println!(
        "new: {} groups, mean {} B; {hits} groups ({same} B, {:.3} of the tar) also in old",
        b.len(),
        total / b.len().max(1),
        same as f64 / total as f64
    );
    Ok(())
}

/// Wall and CPU (user + system, all threads) seconds since it was made:
/// on a machine others are busy on, the CPU figure is the steadier one.
struct Clock(Instant, f64);

/// This process's user + system CPU seconds so far.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(u.ru_utime) + s(u.ru_stime)
}

impl Clock {
    fn start() -> Clock {
        Clock(Instant::now(), cpu_secs())
    }
    fn show(&self) -> String {
        format!(
            "{:.3} s wall, {:.3} s CPU",
            self.0.elapsed().as_secs_f64(),
            cpu_secs() - self.1
        )
    }
}

/// `members-ENGINE OLD.tar NEW.tar`: the steps of an apply's base, timed
/// one by one: OLD's base written with no old base (every member deflated),
/// that base read back as the apply reads it (gunzip, recording its
/// members; zlib-rs streaming it as a peer), then NEW's base written
/// copying from it, and without copying. Prints each step's wall and CPU
/// time, the sizes, and what was copied.
fn members(engine: &str, old: &str, new: &str) -> io::Result<()> {
    use sysup::format::gz::{members, read};
    let level = |prefix: &str| {
        engine
            .strip_prefix(prefix)
            .and_then(|l| l.parse::<u32>().ok())
    };
    let engine = match engine {
        "fast" => Engine::Fast(1),
        "stored" => Engine::Stored,
        _ if level("fast").is_some() => Engine::Fast(level("fast").unwrap_or(1)),
        _ if level("zlib").is_some() => Engine::Portable(level("zlib").unwrap_or(1)),
        _ => {
            eprintln!("members-fast[N], members-zlibN or members-stored");
            std::process::exit(2);
        }
    };
    let (a, b) = (std::fs::read(old)?, std::fs::read(new)?);
    let (za, clock, ca) = write_base(engine, &a, None)?;
    println!(
        "old base: {} -> {} B ({:.3}), {}; {ca}",
        a.len(),
        za.len(),
        za.len() as f64 / a.len() as f64,
        clock.show()
    );
    let path = std::env::temp_dir().join(format!("gz-base-old-{}", std::process::id()));
    std::fs::write(&path, &za)?;
    // the peer: zlib-rs streaming every member, as gunzip does
    let clock = Clock::start();
    let mut r = flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(
        256 * 1024,
        std::fs::File::open(&path)?,
    ));
    let n = io::copy(&mut r, &mut Count(0))?;
    println!("read old base, zlib-rs streaming: {n} B, {}", clock.show());
    let clock = Clock::start();
    let index = read::Index::default();
    let mut r = read::Reader::new(std::fs::File::open(&path)?).with_index(index.clone());
    let n = io::copy(&mut r, &mut Count(0))?;
    println!(
        "read old base: {n} B, {} members indexed, {}",
        index.len(),
        clock.show()
    );
    let old = members::Old {
        file: std::fs::File::open(&path)?,
        index,
    };
    let (zb, clock, cb) = write_base(engine, &b, Some(old))?;
    std::fs::remove_file(&path)?;
    println!(
        "new base: {} -> {} B ({:.3}), {}; {cb}",
        b.len(),
        zb.len(),
        zb.len() as f64 / b.len() as f64,
        clock.show()
    );
    let (_, clock, _) = write_base(engine, &b, None)?;
    println!("new base, nothing copied: {}", clock.show());
    Ok(())
}

/// `data`'s base written by `members::Writer`, copying from `old`: the
/// bytes, the clock started before, and what was copied.
fn write_base(
    engine: Engine,
    data: &[u8],
    old: Option<sysup::format::gz::members::Old>,
) -> io::Result<(Vec<u8>, Clock, String)> {
    use std::sync::atomic::Ordering::Relaxed;
    let clock = Clock::start();
    let mut w = sysup::format::gz::members::Writer::new(Vec::new(), engine, old, |_| {})
        .with_cuts(cut_params());
    let counts = w.counts();
    for p in data.chunks(256 * 1024) {
        w.write_all(p)?;
    }
    let out = w.finish()?;
    let c = format!(
        "{} members deflated ({} B), {} copied ({} B; {} held), {} refused",
        counts.deflated.load(Relaxed),
        counts.deflated_bytes.load(Relaxed),
        counts.copied.load(Relaxed),
        counts.copied_bytes.load(Relaxed),
        counts.held.load(Relaxed),
        counts.refused.load(Relaxed)
    );
    Ok((out, clock, c))
}

/// `deflatedN OLD.tar NEW.tar`: the groups of NEW's base that OLD's does
/// not hold (those an apply deflates), each deflated alone by libdeflate
/// at level N on one thread: bytes, time, and how they split by ratio.
fn deflated(level: u32, old: &str, new: &str) -> io::Result<()> {
    use sysup::format::gz::libdeflate::Deflater;
    let cut = |data: &[u8]| -> Vec<(u32, usize, usize)> {
        let mut at = 0;
        let mut out = Vec::new();
        for len in sysup::format::gz::cuts::groups_with(data, 256 * 1024, cut_params()) {
            let mut crc = flate2::Crc::new();
            crc.update(&data[at..at + len]);
            out.push((crc.sum(), at, len));
            at += len;
        }
        out
    };
    let (a, b) = (std::fs::read(old)?, std::fs::read(new)?);
    let known: std::collections::HashSet<(u32, usize)> =
        cut(&a).iter().map(|g| (g.0, g.2)).collect();
    let mut d = Deflater::new(level)?;
    // buckets by ratio: [0, .3), [.3, .5), [.5, .7), [.7, .9), [.9, ...)
    let mut sums = [(0usize, 0usize, 0f64, 0usize); 5];
    let mut out = Vec::new();
    for (crc, at, len) in cut(&b) {
        if known.contains(&(crc, len)) {
            continue;
        }
        out.clear();
        let t = Instant::now();
        d.deflate(&b[at..at + len], &mut out)?;
        let secs = t.elapsed().as_secs_f64();
        let r = out.len() as f64 / len as f64;
        let i = [0.3, 0.5, 0.7, 0.9].iter().filter(|&&x| r >= x).count();
        sums[i].0 += len;
        sums[i].1 += out.len();
        sums[i].2 += secs;
        sums[i].3 += 1;
    }
    for (i, (inb, outb, secs, n)) in sums.iter().enumerate() {
        println!(
            "bucket {i}: {n} groups, {inb} B -> {outb} B ({:.3}), {secs:.3} s, {:.0} MB/s",
            *outb as f64 / (*inb).max(1) as f64,
            *inb as f64 / secs.max(1e-9) / 1e6
        );
    }
    Ok(())
}
