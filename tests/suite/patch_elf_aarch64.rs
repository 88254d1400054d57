//! aarch64 executables are diffed with reference prediction (patch format
//! 4) and come out byte for byte: two real builds of one C program, the
//! second with a function inserted, made by the Debian cross compiler
//! `aarch64-linux-gnu-gcc` (SKIPPED without it, a failure under CI);
//! synthetic aarch64 executables, some with hostile program headers; a
//! pair of different machines (not predicted). Each patch is compared with
//! the same diff made without prediction, and the predicted patches are
//! refused cut short, damaged, relabelled as format 3 (whose readers would
//! decode them as x86-64) or as a format newer than this build's.

use crate::patch_support;

use std::path::Path;

use patch_support::elf::{both_ways, build_pair};
use patch_support::*;
use sysup::format::patch::header::{PatchHeader, VERSION};

/// The cross compiler the real-build test needs (.ci/install-deps).
const CC: &str = "aarch64-linux-gnu-gcc";
/// The real build's patch with prediction is at most this share (in
/// percent) of the patch without; measured: 84.1% (1088 bytes against
/// 1294, Debian 12's aarch64-linux-gnu-gcc 12.2).
const MAX_PERCENT: u64 = 90;

/// `patch` with its header rewritten (same length, checksum recomputed).
fn relabel(patch: &[u8], version: u32) -> Vec<u8> {
    let mut h = PatchHeader::read(&mut &patch[..], patch.len() as u64, Path::new("p")).unwrap();
    h.version = version;
    let e = h.encode();
    [&e[..], &patch[e.len()..]].concat()
}

#[test]
fn two_aarch64_builds_of_a_c_program_diff_smaller_with_prediction() {
    let dir = tempfile::tempdir().unwrap();
    let Some((old, new)) = build_pair(CC, &["-O2", "-fno-inline", "-s"], dir.path()) else {
        return;
    };
    assert_eq!(
        u16::from_le_bytes([old[18], old[19]]),
        183,
        "an aarch64 ELF"
    );
    assert!(old.len() > 20_000, "{}", old.len());
    let mut a = Tree::new();
    a.insert("usr/bin/prog".into(), exe(old));
    let mut b = Tree::new();
    b.insert("usr/bin/prog".into(), exe(new));
    let (with, without, old_tar) = both_ways(dir.path(), &a, &b);
    eprintln!(
        "aarch64 build pair: {} bytes with prediction, {} without ({:.3}x)",
        with.size,
        without.size,
        with.size as f64 / without.size as f64
    );
    assert_eq!(
        (with.stats.xref, with.stats.diffed),
        (1, 1),
        "{:?}",
        with.stats
    );
    assert!(
        with.size * 100 <= without.size * MAX_PERCENT,
        "with prediction {} bytes, without {}",
        with.size,
        without.size
    );
    refusals(dir.path(), &with.patch, &old_tar);
}

/// A predicted patch cut short, with a byte flipped, or relabelled:
/// refused, never a wrong result.
fn refusals(dir: &Path, patch: &Path, old_tar: &[u8]) {
    let good = std::fs::read(patch).unwrap();
    let p = dir.join("bad.patch");
    let len = good.len();
    for cut in [len / 3, len / 2, len - 40, len - 1] {
        std::fs::write(&p, &good[..cut]).unwrap();
        assert!(apply(&p, old_tar).is_err(), "cut at {cut} of {len}");
    }
    for at in [len / 3, len / 2, len - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        std::fs::write(&p, &bad).unwrap();
        assert!(apply(&p, old_tar).is_err(), "flipped at {at}");
    }
    // As format 3, the record would mean x86-64 prediction: the bytes come
    // out wrong and the result's SHA-256 refuses them.
    std::fs::write(&p, relabel(&good, 3)).unwrap();
    let e = apply(&p, old_tar).expect_err("decoded as x86-64");
    eprintln!("as format 3: {e}");
    // What a reader of formats 1 to 3 says of this patch, from our side.
    std::fs::write(&p, relabel(&good, VERSION + 1)).unwrap();
    let e = apply(&p, old_tar).expect_err("a newer format");
    let want = format!("this sysup reads versions 1 to {VERSION}");
    assert!(e.to_string().contains(&want), "{e}");
}

/// A program header: type, offset, vaddr, filesz, memsz.
type Phdr = (u32, u64, u64, u64, u64);

/// An aarch64 ELF header with program headers `phdrs` (type, offset,
/// vaddr, filesz, memsz), then `funcs` functions of 16 words, each calling
/// a helper and a later function (BL), branching (B.cond) and loading a
/// global through ADRP + LDR; `insert` words go before the functions.
fn synthetic_elf(funcs: usize, insert: usize, phdrs: &[Phdr]) -> Vec<u8> {
    let mut v = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0\xb7\0".to_vec();
    v.resize(64, 0);
    v[32..40].copy_from_slice(&64u64.to_le_bytes());
    v[54..56].copy_from_slice(&56u16.to_le_bytes());
    v[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
    for &(kind, off, va, fs, ms) in phdrs {
        let mut ph = [0u8; 56];
        ph[..4].copy_from_slice(&kind.to_le_bytes());
        ph[8..16].copy_from_slice(&off.to_le_bytes());
        ph[16..24].copy_from_slice(&va.to_le_bytes());
        ph[32..40].copy_from_slice(&fs.to_le_bytes());
        ph[40..48].copy_from_slice(&ms.to_le_bytes());
        v.extend_from_slice(&ph);
    }
    v.resize(v.len().next_multiple_of(16), 0);
    let word = |v: &mut Vec<u8>, w: u32| v.extend_from_slice(&w.to_le_bytes());
    let helpers = v.len();
    for k in 0..16u32 {
        word(&mut v, 0x8b00_0000 | (k * 97 % 0x1f_ffff));
        word(&mut v, 0xd65f_03c0); // ret
    }
    for _ in 0..insert {
        word(&mut v, 0xd503_201f); // nop
    }
    let start = v.len();
    let global = (start + funcs * 64 + 64).next_multiple_of(64);
    let rel = |at: usize, t: usize| (t as i64 - at as i64) >> 2;
    for f in 0..funcs {
        let at = start + f * 64;
        // Distinct filler, so the matcher aligns each function with itself.
        let mut w: [u32; 16] =
            std::array::from_fn(|k| 0x8b00_0000 | ((f * 16 + k) as u32 & 0x1f_ffff));
        w[2] = 0x9400_0000 | (rel(at + 8, helpers + (f % 16) * 8) as u32 & 0x3ff_ffff);
        let next = start + ((f * 7 + 1) % funcs) * 64;
        w[5] = 0x9400_0000 | (rel(at + 20, next) as u32 & 0x3ff_ffff);
        let page = (global as i64 >> 12) - ((at + 28) as i64 >> 12);
        w[7] = 0x9000_0000 | ((page as u32 & 3) << 29) | ((page as u32 >> 2 & 0x7_ffff) << 5) | 1;
        w[8] = 0xf940_0000 | (((global & 0xfff) as u32 >> 3) << 10) | 1 << 5 | 2;
        w[10] = 0x5400_0001 | ((rel(at + 40, at + 60) as u32 & 0x7_ffff) << 5);
        for x in w {
            word(&mut v, x);
        }
    }
    // The globals: distinct words, so the matcher carries them.
    v.resize(global, 0);
    for k in 0..16u32 {
        word(&mut v, 0x0012_3400 + k);
    }
    v
}

/// One PT_LOAD of the whole file (and as much zero-filled memory again) at
/// 0x400000.
fn whole(len: u64) -> [Phdr; 1] {
    [(1, 0, 0x40_0000, len, 2 * len)]
}

/// A synthetic executable whose one segment covers it, as it is.
fn covered(funcs: usize, insert: usize) -> Vec<u8> {
    let len = synthetic_elf(funcs, insert, &whole(0)).len() as u64;
    synthetic_elf(funcs, insert, &whole(len))
}

#[test]
fn a_synthetic_aarch64_executable_is_predicted() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Tree::new();
    a.insert("usr/lib/libsyn.so".into(), exe(covered(3000, 0)));
    a.insert("usr/bin/small".into(), exe(covered(40, 0)));
    let mut b = Tree::new();
    b.insert("usr/lib/libsyn.so".into(), exe(covered(3000, 1000)));
    b.insert("usr/bin/small".into(), exe(covered(40, 12)));
    let (with, without, old_tar) = both_ways(dir.path(), &a, &b);
    assert_eq!(with.stats.xref, 2, "{:?}", with.stats);
    assert!(with.stats.diff_tasks > 3, "{:?}", with.stats);
    assert!(
        with.size < without.size,
        "with prediction {} bytes, without {}",
        with.size,
        without.size
    );
    refusals(dir.path(), &with.patch, &old_tar);
}

#[test]
fn hostile_program_headers_still_round_trip() {
    // Tables that overlap, wrap around the address space, claim more than
    // the file, sit at the top of memory, or are too many to use: the
    // prediction is only arithmetic, so the result is exact either way.
    let max = u64::MAX;
    let tables: [&[Phdr]; 4] = [
        &[(1, 0, max - 100, max, max), (1, 0, 0, 1 << 40, max)],
        &[(1, 0, 0x1000, 0x100, 0x100), (1, 0x40, 0x1000, max, 0)],
        &[(1, max, max, max, max); 3],
        &[(1, 0, 0x40_0000, 0x10_0000, 0x10_0000); 17],
    ];
    for (i, t) in tables.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Tree::new();
        a.insert("usr/bin/x".into(), exe(synthetic_elf(300, 0, t)));
        let mut b = Tree::new();
        b.insert("usr/bin/x".into(), exe(synthetic_elf(300, 7, t)));
        let (with, _, _) = both_ways(dir.path(), &a, &b);
        assert!(with.stats.xref <= 1, "table {i}: {:?}", with.stats);
    }
}

#[test]
fn executables_of_different_machines_are_not_predicted() {
    let dir = tempfile::tempdir().unwrap();
    let old = covered(200, 0);
    let mut new = covered(200, 5);
    new[18] = 0x3e; // x86-64
    let mut a = Tree::new();
    a.insert("usr/bin/x".into(), exe(old));
    let mut b = Tree::new();
    b.insert("usr/bin/x".into(), exe(new));
    let (with, _, _) = both_ways(dir.path(), &a, &b);
    assert_eq!(
        (with.stats.xref, with.stats.diffed),
        (0, 1),
        "{:?}",
        with.stats
    );
}
