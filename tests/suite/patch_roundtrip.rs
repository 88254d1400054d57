//! A patch rebuilds the new tar byte for byte: for a world pair with every
//! kind of change, for members cut into windows, for members referenced out
//! of stream order (kept, and spilled to disk when big), for identical and
//! nearly empty dists, for tars with odd framing (non-zero padding, long
//! trailers, GNU long names), and for random trees (proptest).

use crate::patch_support;

use patch_support::*;
use proptest::prelude::*;
use std::io::Write;
use sysup::patch::PatchReader;

#[test]
fn world_pair_round_trips_and_is_small() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = world_pair();
    let (ga, ta) = make_dist(dir.path(), "world-1-20260101", &a);
    let (gb, tb) = make_dist(dir.path(), "world-2-20260102", &b);
    let r = diff(dir.path(), &ga, &gb);
    assert_eq!(
        r.patch,
        dir.path().join("world-1-20260101_2-20260102.patch")
    );
    assert_eq!(r.header.from.tar.size, ta.len() as u64);
    assert_eq!(r.header.to.tar.size, tb.len() as u64);
    let out = apply(&r.patch, &ta).unwrap();
    assert!(out == tb, "output differs from the new tar");

    // Member-aware pairing did its job: renamed and edited members were
    // diffed, identical ones (and the moved file) copied.
    let s = &r.stats;
    // tool, libfoo (version), libx (hash), big.a, conf, rebuilt.so
    assert!(s.diffed >= 6, "{s:?}");
    assert!(s.copied >= 4, "{s:?}"); // same, readme, long-name, moved-here, setuid
                                     // Only what is new is literal: usr/bin/added, doc/new, the formerly empty file.
    assert_eq!((s.literal, s.literal_bytes), (3, 12_000 + 9 + 16), "{s:?}");
    let gz_new = std::fs::metadata(&gb).unwrap().len();
    assert!(r.size * 8 < gz_new, "patch {} vs new dist {gz_new}", r.size);
}

#[test]
fn windowed_big_members_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let big = binary(40, 2_000_000);
    let mut grown = edit(&big, 41, 3000);
    grown.extend(binary(42, 700_000));
    let a: Tree = [
        ("big".to_string(), file(big.clone())),
        ("shrinks".into(), file(big.clone())),
    ]
    .into();
    let b: Tree = [
        ("big".to_string(), file(grown)),
        ("shrinks".into(), file(big[100_000..300_000].to_vec())),
    ]
    .into();
    let (ga, ta) = make_dist(dir.path(), "world-1-20260101", &a);
    let (gb, tb) = make_dist(dir.path(), "world-2-20260102", &b);
    let r = diff(dir.path(), &ga, &gb);
    // 64 KiB windows: the 2.7 MB member alone makes dozens of tasks.
    assert!(r.stats.diff_tasks > 40, "{:?}", r.stats);
    assert!(apply(&r.patch, &ta).unwrap() == tb);
    assert!(r.size < 900_000, "patch {} bytes", r.size);
}

#[test]
fn members_needed_out_of_order_are_kept_and_big_ones_spilled() {
    let dir = tempfile::tempdir().unwrap();
    let huge = binary(50, 1 << 20);
    let mid = binary(51, 30_000);
    let a: Tree = [
        ("m/mid".to_string(), file(mid.clone())),
        ("z/huge".into(), file(huge.clone())),
    ]
    .into();
    // Both old members are needed before the stream reaches them, one of
    // them twice, and the huge one is also bsdiffed later.
    let mut huge2 = huge.clone();
    huge2[500_000] ^= 1;
    let b: Tree = [
        ("a/huge-copy".to_string(), file(huge.clone())),
        ("b/mid-copy".into(), file(mid.clone())),
        ("c/mid-again".into(), file(mid)),
        ("z/huge".into(), file(huge2)),
    ]
    .into();
    let (ga, ta) = make_dist(dir.path(), "world-1-20260101", &a);
    let (gb, tb) = make_dist(dir.path(), "world-2-20260102", &b);
    let r = diff(dir.path(), &ga, &gb);
    assert!(r.size < 20_000, "patch {} bytes", r.size);
    // With the default limits everything stays in memory ...
    assert!(apply(&r.patch, &ta).unwrap() == tb);
    // ... with small ones the huge member (kept, then bsdiffed) spills.
    let mut reader = PatchReader::open(&r.patch, &ta[..])
        .unwrap()
        .with_memory_limits(256 * 1024, 512 * 1024);
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut out).unwrap();
    assert!(out == tb);
    let rep = reader.finish().unwrap();
    assert!(rep.spilled >= 1 << 20, "{rep:?}");
    assert_eq!(rep.output.size, tb.len() as u64);
}

#[test]
fn a_binary_installed_twice_is_diffed_once() {
    let dir = tempfile::tempdir().unwrap();
    let perl = binary(60, 300_000);
    let perl2 = edit(&perl, 61, 700);
    let a: Tree = [
        ("usr/bin/perl".to_string(), exe(perl.clone())),
        ("usr/bin/perl5.36".into(), exe(perl.clone())),
        ("usr/bin/perl5.36-x".into(), exe(perl)),
    ]
    .into();
    let b: Tree = [
        ("usr/bin/perl".to_string(), exe(perl2.clone())),
        ("usr/bin/perl5.36".into(), exe(perl2.clone())),
        ("usr/bin/perl5.36-x".into(), exe(perl2)),
    ]
    .into();
    let (ga, ta) = make_dist(dir.path(), "world-1-20260101", &a);
    let (gb, tb) = make_dist(dir.path(), "world-2-20260102", &b);
    // (Members cut into windows are not deduplicated: use whole members.)
    let mut o = opts();
    o.window = 1 << 20;
    let r = sysup::diff::diff_dists(&ga, &gb, dir.path(), &o).unwrap();
    assert_eq!(
        (r.stats.diffed, r.stats.diff_tasks),
        (3, 1),
        "{:?}",
        r.stats
    );
    assert!(apply(&r.patch, &ta).unwrap() == tb);
}

#[test]
fn identical_and_trivial_dists_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = world_pair();
    let (ga, ta) = make_dist(dir.path(), "world-1-20260101", &a);
    let (gb, tb) = make_dist(dir.path(), "world-1.1-20260101", &a);
    assert_eq!(ta, tb);
    let r = diff(dir.path(), &ga, &gb);
    assert!(apply(&r.patch, &ta).unwrap() == tb);
    assert!(
        r.size < 4000,
        "identical dists gave a {}-byte patch",
        r.size
    );

    let empty = Tree::new();
    let (ge, te) = make_dist(dir.path(), "world-2-20260102", &empty);
    let r = diff(dir.path(), &ga, &ge);
    assert!(apply(&r.patch, &ta).unwrap() == te);
    let r = diff(dir.path(), &ge, &ga);
    assert!(apply(&r.patch, &te).unwrap() == ta);
}

/// Tar framing GNU tar does not write but readers accept: junk in padding,
/// a long trailer with junk after the end blocks, GNU long-name members.
#[test]
fn odd_framing_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let mk = |seed: u64| {
        let mut b = tar::Builder::new(Vec::new());
        for (i, len) in [100usize, 513, 0, 4096, 77].into_iter().enumerate() {
            let mut h = tar::Header::new_gnu();
            h.set_size(len as u64);
            h.set_mode(0o644);
            h.set_mtime(seed);
            let name = format!("{}/f{i}", "long".repeat(40));
            b.append_data(&mut h, name, &binary(seed + i as u64, len)[..])
                .unwrap();
        }
        let mut t = b.into_inner().unwrap();
        // Junk in the first member's padding (after 100 data bytes).
        let first_data = 512 * 3; // GNU 'L' header + name block + header
        t[first_data + 100..first_data + 512].fill(0xA5);
        t.resize(t.len() + 9000, 0);
        let n = t.len();
        t[n - 10..].copy_from_slice(b"junk-after");
        t
    };
    let (ta, tb) = (mk(1), mk(2));
    let ga = dir.path().join("world-1-20260101.tar.gz");
    let gb = dir.path().join("world-2-20260102.tar.gz");
    write_gz(&ga, &ta);
    write_gz(&gb, &tb);
    let r = diff(dir.path(), &ga, &gb);
    assert!(apply(&r.patch, &ta).unwrap() == tb);
}

#[test]
fn readers_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = world_pair();
    let mut c = b.clone();
    c.insert(
        "usr/bin/tool".into(),
        exe(edit(&binary(1, 150_000), 99, 300)),
    );
    c.remove("aa/moved-here");
    let (ga, ta) = make_dist(dir.path(), "world-1-20260101", &a);
    let (gb, _) = make_dist(dir.path(), "world-2-20260102", &b);
    let (gc, tc) = make_dist(dir.path(), "world-3-20260103", &c);
    let p1 = diff(dir.path(), &ga, &gb).patch;
    let p2 = diff(dir.path(), &gb, &gc).patch;
    let r1 = PatchReader::open(&p1, &ta[..]).unwrap();
    let mut r2 = PatchReader::open(&p2, r1).unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut r2, &mut out).unwrap();
    assert!(out == tc);
    let rep = r2.finish().unwrap();
    assert_eq!(rep.output.size, tc.len() as u64);
}

fn arb_content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => (any::<u64>(), 0usize..20_000).prop_map(|(s, n)| binary(s, n)),
        1 => Just(Vec::new()),
        1 => (any::<u64>(), 150_000usize..250_000).prop_map(|(s, n)| binary(s, n)),
    ]
}

/// What happens to an old file in the new tree.
#[derive(Clone, Debug)]
enum Fate {
    Keep,
    Edit(u64),
    Remove,
    Rename(String),
    /// `lib.so.1.N` → `lib.so.1.N+1`
    Bump,
}

fn arb_fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        3 => Just(Fate::Keep),
        3 => any::<u64>().prop_map(Fate::Edit),
        1 => Just(Fate::Remove),
        1 => "[a-z]{1,3}/[a-z]{1,6}".prop_map(Fate::Rename),
        1 => Just(Fate::Bump),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]
    #[test]
    fn random_trees_round_trip(
        files in proptest::collection::btree_map("[a-c]{1,2}/[a-z]{1,5}", (arb_content(), arb_fate()), 0..10),
        added in proptest::collection::btree_map("[a-d]{1,2}/n[a-z]{0,4}", arb_content(), 0..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Tree::new();
        let mut b = Tree::new();
        for (i, (path, (data, fate))) in files.iter().enumerate() {
            let path = format!("{path}.so.1.{i}");
            a.insert(path.clone(), file(data.clone()));
            match fate {
                Fate::Keep => { b.insert(path, file(data.clone())); }
                Fate::Edit(s) => { b.insert(path, file(edit(data, *s, 257))); }
                Fate::Remove => {}
                Fate::Rename(to) => { b.insert(format!("{to}{i}"), file(data.clone())); }
                Fate::Bump => { b.insert(format!("{}.1.{}", path.rsplit_once(".1.").unwrap().0, i + 1), file(edit(data, 3, 999))); }
            }
        }
        for (path, data) in added {
            b.entry(path).or_insert_with(|| file(data));
        }
        // Directories created implicitly must not collide with files.
        let clash = |t: &Tree| t.keys().any(|k| t.keys().any(|o| o.starts_with(&format!("{k}/"))));
        prop_assume!(!clash(&a) && !clash(&b));
        let (ga, ta) = make_dist(dir.path(), "world-1-20260101", &a);
        let (gb, tb) = make_dist(dir.path(), "world-2-20260102", &b);
        let r = diff(dir.path(), &ga, &gb);
        let out = apply(&r.patch, &ta).unwrap();
        prop_assert!(out == tb, "output differs");
    }
}

/// A gzip file as `gzip -9n` writes it (zlib reproduces it), with an
/// optional file name field.
fn gzip9(raw: &[u8], name: Option<&str>) -> Vec<u8> {
    let mut h = sysup::format::patch::regz::GZIP_9N_HEADER.to_vec();
    if let Some(n) = name {
        h[3] = 8;
        h.extend_from_slice(n.as_bytes());
        h.push(0);
    }
    sysup::format::patch::regz::rebuild(&h, raw, 9).unwrap()
}

/// A text of `lines` changelog-like lines.
fn text(seed: u64, lines: usize) -> Vec<u8> {
    let words = [
        "fix ", "the ", "parser ", "update ", "docs ", "libc ", "again ",
    ];
    binary(seed, lines * 8)
        .chunks(8)
        .flat_map(|c| {
            let mut l: Vec<u8> = b"  * ".to_vec();
            for &b in c {
                l.extend_from_slice(words[usize::from(b) % words.len()].as_bytes());
            }
            l.push(b'\n');
            l
        })
        .collect()
}

#[test]
fn gzipped_members_are_diffed_uncompressed_when_zlib_rebuilds_them() {
    let dir = tempfile::tempdir().unwrap();
    let old_log = text(60, 3000);
    let new_log = [text(61, 20), old_log.clone()].concat();
    let stored = |raw: &[u8]| {
        let mut e = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::none());
        e.write_all(raw).unwrap();
        e.finish().unwrap()
    };
    let mut bad_crc = gzip9(&old_log, None);
    let n = bad_crc.len();
    bad_crc[n - 5] ^= 0x40;
    let a: Tree = [
        ("doc/changelog.gz".to_string(), file(gzip9(&old_log, None))),
        (
            "doc/named.gz".into(),
            file(gzip9(&old_log[..5000], Some("named"))),
        ),
        ("doc/stored.gz".into(), file(stored(&old_log[..8000]))),
        ("doc/damaged.gz".into(), file(bad_crc)),
    ]
    .into();
    let b: Tree = [
        ("doc/changelog.gz".to_string(), file(gzip9(&new_log, None))),
        (
            "doc/named.gz".into(),
            file(gzip9(&new_log[..5100], Some("named"))),
        ),
        ("doc/stored.gz".into(), file(stored(&new_log[..8000]))),
        ("doc/damaged.gz".into(), file(gzip9(&text(62, 3000), None))),
    ]
    .into();
    let (ga, ta) = make_dist(dir.path(), "world-1-20260101", &a);
    let (gb, tb) = make_dist(dir.path(), "world-2-20260102", &b);
    let r = diff(dir.path(), &ga, &gb);
    let out = apply(&r.patch, &ta).unwrap();
    assert!(out == tb, "output differs from the new tar");
    // changelog and named are rebuilt by zlib; stored blocks are not what
    // zlib makes, and the damaged old one does not inflate: plain bsdiff.
    let s = &r.stats;
    assert_eq!((s.diffed, s.regzipped), (4, 2), "{s:?}");
    let size = |p: &str| match &b[p] {
        Entry::File { data, .. } => data.len() as u64,
        _ => unreachable!(),
    };
    assert_eq!(
        s.regzipped_bytes,
        size("doc/changelog.gz") + size("doc/named.gz"),
        "{s:?}"
    );
    // The edit at the top of the changelog changes every compressed byte
    // after it; diffed uncompressed, it costs little next to the damaged
    // member, which is as big and goes in literally.
    let damaged_alone = size("doc/damaged.gz");
    assert!(size("doc/changelog.gz") > damaged_alone * 9 / 10);
    assert!(
        r.size < damaged_alone + 4000,
        "patch {} bytes; the damaged member alone is {damaged_alone} literal bytes",
        r.size
    );
    assert_eq!(r.header.version, sysup::format::patch::header::VERSION);
}

/// More re-gzipped members in a row than the deflate thread may have queued
/// (`held::MAX_JOBS`), between plain members that change and members that do
/// not: the applier waits for the thread when it must, and every member
/// comes out at its place, whether the new tar is taken in big writes
/// (`apply`) or a few bytes at a time (the `Read` path a host chains).
#[test]
fn many_re_gzipped_members_in_a_row_come_out_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let n = 2 * sysup::patch::held::MAX_JOBS as u64 + 5;
    let (mut a, mut b) = (Tree::new(), Tree::new());
    for i in 0..n {
        let page = text(100 + i, 40 + 10 * i as usize);
        let mut newer = page.clone();
        newer.extend_from_slice(format!("  * version {i}.1\n").as_bytes());
        a.insert(format!("man/p{i:03}.1.gz"), file(gzip9(&page, None)));
        b.insert(format!("man/p{i:03}.1.gz"), file(gzip9(&newer, None)));
        let plain = binary(200 + i, 3000);
        a.insert(format!("man/p{i:03}.same"), file(plain.clone()));
        b.insert(format!("man/p{i:03}.same"), file(plain.clone()));
        if i % 3 == 0 {
            let mut changed = plain;
            changed[100] ^= 1;
            b.insert(format!("man/p{i:03}.same"), file(changed));
        }
    }
    let (ga, ta) = make_dist(dir.path(), "world-1-20260101", &a);
    let (gb, tb) = make_dist(dir.path(), "world-2-20260102", &b);
    let r = diff(dir.path(), &ga, &gb);
    assert_eq!(r.stats.regzipped, n, "{:?}", r.stats);
    assert!(apply(&r.patch, &ta).unwrap() == tb, "apply: output differs");
    let mut reader = PatchReader::open(&r.patch, &ta[..]).unwrap();
    let mut out = Vec::new();
    let mut piece = [0u8; 777];
    loop {
        let k = std::io::Read::read(&mut reader, &mut piece).unwrap();
        if k == 0 {
            break;
        }
        out.extend_from_slice(&piece[..k]);
    }
    assert!(out == tb, "read in small pieces: output differs");
    reader.finish().unwrap();
}
