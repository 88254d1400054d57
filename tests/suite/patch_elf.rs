//! x86-64 executables are diffed with reference prediction (patch format 3)
//! and come out byte for byte: two real builds of one C program, the second
//! with a function inserted (needs `cc`; SKIPPED without it, a failure under
//! CI), and a synthetic executable big enough to be diffed in windows. Each
//! patch is compared with the same diff made without prediction.

use crate::patch_support;

use patch_support::elf::{both_ways, build_pair};
use patch_support::*;

#[test]
fn two_builds_of_a_c_program_diff_smaller_with_prediction() {
    if !cfg!(target_arch = "x86_64") {
        eprintln!("SKIPPED: the program is compiled for this machine, not x86-64");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some((old, new)) = build_pair("cc", &["-O2", "-fno-inline"], dir.path()) else {
        return;
    };
    assert!(old.len() > 20_000, "{}", old.len());
    let mut a = Tree::new();
    a.insert("usr/bin/prog".into(), exe(old));
    let mut b = Tree::new();
    b.insert("usr/bin/prog".into(), exe(new));
    let (with, without, _) = both_ways(dir.path(), &a, &b);
    assert_eq!(
        (with.stats.xref, with.stats.diffed),
        (1, 1),
        "{:?}",
        with.stats
    );
    assert!(
        with.size < without.size,
        "with prediction {} bytes, without {}",
        with.size,
        without.size
    );
}

/// An x86-64 ELF header, then `funcs` functions of filler, each calling a
/// helper near the start and a later function, and loading a global
/// RIP-relatively; `insert` bytes go between the helpers and the functions.
fn synthetic_elf(funcs: usize, insert: usize) -> Vec<u8> {
    let mut v = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0\x3e\0".to_vec();
    v.resize(64 + 56, 0);
    // One program header: PT_LOAD of the whole file at 0x400000.
    v[32..40].copy_from_slice(&64u64.to_le_bytes());
    v[54..56].copy_from_slice(&56u16.to_le_bytes());
    v[56..58].copy_from_slice(&1u16.to_le_bytes());
    v[64..68].copy_from_slice(&1u32.to_le_bytes());
    v[80..88].copy_from_slice(&0x400000u64.to_le_bytes());
    v.resize(128, 0);
    let helpers = v.len();
    // Helpers: 16 of 16 bytes, each distinct, so the matcher aligns them.
    v.extend((0..256usize).map(|j| match (j * 37 % 251) as u8 {
        0xe8 | 0xe9 | 0x0f => 0x90,
        b => b,
    }));
    v.extend(std::iter::repeat_n(0xccu8, insert));
    let start = v.len();
    const F: usize = 96;
    let global = start + funcs * F + 64;
    for f in 0..funcs {
        let at = start + f * F;
        let mut body = vec![0x90u8; F];
        let mut put = |k: usize, op: &[u8], target: usize| {
            body[k..k + op.len()].copy_from_slice(op);
            let next = at + k + op.len() + 4;
            let d = target as i64 - next as i64;
            body[k + op.len()..k + op.len() + 4].copy_from_slice(&(d as i32).to_le_bytes());
        };
        put(8, &[0xe8], helpers + (f % 16) * 16);
        put(24, &[0xe8], start + ((f * 7 + 1) % funcs) * F);
        put(40, &[0x48, 0x8b, 0x05], global);
        put(60, &[0x0f, 0x84], start + ((f + 1) % funcs) * F);
        // Per-function bytes, so matches are unique.
        body[80..88].copy_from_slice(&(f as u64).to_le_bytes());
        v.extend_from_slice(&body);
    }
    v.resize(global + 64, 0);
    // The segment covers the file, and as much zero-filled memory again.
    let len = v.len() as u64;
    v[96..104].copy_from_slice(&len.to_le_bytes());
    v[104..112].copy_from_slice(&(2 * len).to_le_bytes());
    v
}

#[test]
fn a_big_synthetic_executable_is_predicted_across_windows() {
    // 3000 functions: ~290 KiB, several of the tests' 64 KiB windows.
    let mut a = Tree::new();
    a.insert("usr/lib/libsyn.so".into(), exe(synthetic_elf(3000, 0)));
    a.insert("usr/bin/small".into(), exe(synthetic_elf(50, 0)));
    let mut b = Tree::new();
    b.insert("usr/lib/libsyn.so".into(), exe(synthetic_elf(3000, 4000)));
    b.insert("usr/bin/small".into(), exe(synthetic_elf(50, 48)));
    let dir = tempfile::tempdir().unwrap();
    let (with, without, _) = both_ways(dir.path(), &a, &b);
    assert_eq!(with.stats.xref, 2, "{:?}", with.stats);
    assert!(with.stats.diff_tasks > 3, "{:?}", with.stats);
    assert!(
        with.size < without.size,
        "with prediction {} bytes, without {}",
        with.size,
        without.size
    );
}

#[test]
fn executables_prediction_does_not_help_stay_plain() {
    // The same code at the same offsets, one byte changed: nothing moved,
    // so the plain encoding is kept.
    let old = synthetic_elf(200, 0);
    let mut new = old.clone();
    new[5000] ^= 0x55;
    let mut a = Tree::new();
    a.insert("usr/bin/x".into(), exe(old));
    let mut b = Tree::new();
    b.insert("usr/bin/x".into(), exe(new));
    let dir = tempfile::tempdir().unwrap();
    let (with, _, _) = both_ways(dir.path(), &a, &b);
    assert_eq!(
        (with.stats.xref, with.stats.diffed),
        (0, 1),
        "{:?}",
        with.stats
    );
}

#[test]
fn a_tiny_executable_is_predicted() {
    let mut a = Tree::new();
    a.insert("usr/bin/exe".into(), exe(synthetic_elf(24, 0)));
    let mut b = Tree::new();
    b.insert("usr/bin/exe".into(), exe(synthetic_elf(24, 24)));
    let dir = tempfile::tempdir().unwrap();
    let (with, _, _) = both_ways(dir.path(), &a, &b);
    assert_eq!(with.stats.xref, 1, "{:?}", with.stats);
}
