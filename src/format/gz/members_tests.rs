use super::*;
use crate::format::gz::read::Reader;
use std::io::Read;

/// A tar of `n` files of assorted sizes (some big), names from `seed`.
fn tar_of(seed: u64, n: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..n {
        let size = match i % 7 {
            0 => 300_000 + i * 11,
            1 => 0,
            _ => 1_000 + (i * 7919) % 40_000,
        };
        let mut data = crate::util::testdata::noise(seed.wrapping_add(i as u64 % 5), size / 2);
        data.resize(size, b'a' + (i % 26) as u8);
        let mut h = tar::Header::new_ustar();
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, format!("usr/share/f{i:05}"), &data[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

fn write(data: &[u8], old: Option<Old>, threads: usize, piece: usize) -> (Vec<u8>, Arc<Counts>) {
    write_with(Engine::Fast(1), data, old, threads, piece)
}

fn write_with(
    engine: Engine,
    data: &[u8],
    old: Option<Old>,
    threads: usize,
    piece: usize,
) -> (Vec<u8>, Arc<Counts>) {
    let mut w = Writer::with_threads(Vec::new(), engine, old, |_| {}, threads);
    let counts = w.counts();
    for p in data.chunks(piece) {
        w.write_all(p).unwrap();
    }
    (w.finish().unwrap(), counts)
}

fn gunzip(z: &[u8], index: Option<Index>) -> Vec<u8> {
    let mut r = Reader::new(z);
    if let Some(i) = index {
        r = r.with_index(i);
    }
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    out
}

/// `z` in a file, and the index its reading made.
fn old_of(z: &[u8]) -> Old {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(z).unwrap();
    let index = Index::default();
    gunzip(z, Some(index.clone()));
    Old { file: f, index }
}

#[test]
fn round_trips_in_many_members_however_it_is_fed() {
    let data = tar_of(1, 120);
    let (a, c) = write(&data, None, 1, 7777);
    let (b, _) = write(&data, None, 3, 1 << 20);
    assert_eq!(a, b, "cuts depend on the bytes only");
    assert_eq!(gunzip(&a, None), data);
    let members = c.deflated.load(Ordering::Relaxed);
    assert!(members > 5, "{members} members");
    assert!(a.len() < data.len() / 2, "{} of {}", a.len(), data.len());
    // empty input: one empty member
    let (e, _) = write(b"", None, 2, 10);
    assert_eq!(gunzip(&e, None), b"");
}

#[test]
fn unchanged_groups_are_copied_from_the_old_base() {
    let old_tar = tar_of(1, 120);
    let (old_z, _) = write(&old_tar, None, 2, 65536);
    // the new tar: the old one with one file in the middle changed
    let mut new_tar = old_tar.clone();
    let mid = new_tar.len() / 2;
    new_tar[mid] ^= 0x55;
    let (z, c) = write(&new_tar, Some(old_of(&old_z)), 2, 65536);
    assert_eq!(gunzip(&z, None), new_tar);
    let (copied, deflated) = (
        c.copied.load(Ordering::Relaxed),
        c.deflated.load(Ordering::Relaxed),
    );
    assert!(
        copied > 5 * deflated,
        "{copied} copied, {deflated} deflated"
    );
    assert_eq!(c.refused.load(Ordering::Relaxed), 0);
}

#[test]
fn an_old_base_changed_after_it_was_read_is_not_copied_from() {
    let old_tar = tar_of(2, 80);
    let (old_z, _) = write(&old_tar, None, 2, 65536);
    let old = old_of(&old_z);
    // what the reader held would be copied without reading the file
    old.index.stop_holding();
    // every member's deflate bytes damaged (header and trailer intact),
    // then the whole file swapped for another tar's base
    for damage in [1usize, 2] {
        let mut bad = old_z.clone();
        if damage == 1 {
            for i in (200..bad.len()).step_by(4099) {
                bad[i] ^= 0x10;
            }
        } else {
            bad = write(&tar_of(9, 80), None, 2, 65536).0;
        }
        let mut f = old.file.try_clone().unwrap();
        f.set_len(0).unwrap();
        f.write_all_at(&bad, 0).unwrap();
        f.flush().unwrap();
        let old2 = Old {
            file: old.file.try_clone().unwrap(),
            index: old.index.clone(),
        };
        let (z, c) = write(&old_tar, Some(old2), 2, 65536);
        assert_eq!(gunzip(&z, None), old_tar, "damage {damage}");
        assert!(c.refused.load(Ordering::Relaxed) > 0, "damage {damage}");
    }
}

#[test]
fn gnu_tar_and_gunzip_read_a_base_of_many_members() {
    let data = tar_of(3, 60);
    let (z, _) = write(&data, None, 2, 4096);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b.tar.gz");
    std::fs::write(&p, &z).unwrap();
    let out = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, data);
    let out = std::process::Command::new("tar")
        .arg("-tzf")
        .arg(&p)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 60);
}

#[test]
fn a_base_another_engine_wrote_is_copied_from_and_stored_ones_too() {
    // zlib-rs level 2 wrote the bases of "fast" before libdeflate, and
    // "none" writes stored blocks: their members are copied all the same
    let old_tar = tar_of(4, 100);
    let mut new_tar = old_tar.clone();
    let at = new_tar.len() / 3;
    new_tar[at] ^= 0x21;
    for engine in [Engine::Portable(2), Engine::Stored] {
        let (old_z, _) = write_with(engine, &old_tar, None, 2, 65536);
        let (z, c) = write(&new_tar, Some(old_of(&old_z)), 2, 65536);
        assert_eq!(gunzip(&z, None), new_tar, "{engine:?}");
        let copied = c.copied.load(Ordering::Relaxed);
        let deflated = c.deflated.load(Ordering::Relaxed);
        assert!(
            copied > 3 * deflated,
            "{engine:?}: {copied} copied, {deflated} deflated"
        );
        assert_eq!(c.refused.load(Ordering::Relaxed), 0);
    }
}

#[test]
fn cuts_can_be_set_for_benchmarks_and_still_round_trip() {
    let data = tar_of(5, 90);
    // the cuts of the first bases deflated in members: ~200 KiB groups
    let p = cuts::Params {
        min: 128 << 10,
        max: 512 << 10,
        step: 256 << 10,
        big: 128 << 10,
        hit: 8,
    };
    let mut w = Writer::with_threads(Vec::new(), Engine::Fast(1), None, |_| {}, 2).with_cuts(p);
    let counts = w.counts();
    w.write_all(&data).unwrap();
    let z = w.finish().unwrap();
    assert_eq!(gunzip(&z, None), data);
    let (_, default) = write(&data, None, 2, 65536);
    let (coarser, finer) = (
        counts.deflated.load(Ordering::Relaxed),
        default.deflated.load(Ordering::Relaxed),
    );
    assert!(finer > 2 * coarser, "{finer} members against {coarser}");
}

#[test]
fn members_held_since_they_were_read_are_copied_without_the_file() {
    let old_tar = tar_of(6, 100);
    let (old_z, _) = write(&old_tar, None, 2, 65536);
    let old = old_of(&old_z);
    // the file emptied: only what the reader held can be copied, and is
    old.file.set_len(0).unwrap();
    let (z, c) = write(&old_tar, Some(old), 2, 65536);
    assert_eq!(gunzip(&z, None), old_tar);
    let copied = c.copied.load(Ordering::Relaxed);
    assert!(copied > 10, "{copied} copied");
    assert_eq!(c.held.load(Ordering::Relaxed), copied);
    assert_eq!(c.deflated.load(Ordering::Relaxed), 0);
    assert_eq!(z, old_z, "the same members, copied");
}
