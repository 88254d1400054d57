//! Shared setup for the `hostile_*` tests (one file per threat, as tough's
//! `target_path_safety.rs`): a root with a small world installed beside an
//! empty `outside` directory; raw tar, gzip and patch builders for inputs no
//! sane writer makes; and the one check every refusal must pass.
//!
//! That check ([`Site::refused`]): `sysup` exits 1 with an `error:` that
//! names the input file and contains the expected cause, never a panic; its
//! peak RSS (measured with `wait4` on that child) stays under
//! [`RSS_LIMIT_KIB`]; the root is exactly as it was (full snapshot, sysup's
//! history and lock aside); nothing appears outside the root; no staged or
//! temporary name is left.
//!
//! Invariant: everything is built in memory or in the test's temporary
//! directory; no test points sysup at anything but its own root.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::Digest;
use sysup::format::manifest::{Entry, Kind, Manifest};

use crate::common::*;

/// A tar block.
pub const B: usize = 512;

/// One raw ustar header, as hostile as needed.
#[derive(Clone, Debug)]
pub struct Hdr {
    pub name: Vec<u8>,
    pub typeflag: u8,
    pub size: u64,
    pub mode: u32,
    pub mtime: i64,
    pub link: Vec<u8>,
    pub dev: (u32, u32),
}

impl Hdr {
    pub fn new(name: &[u8], typeflag: u8, size: u64) -> Hdr {
        Hdr {
            name: name.to_vec(),
            typeflag,
            size,
            mode: if typeflag == b'5' { 0o755 } else { 0o644 },
            mtime: 0,
            link: Vec::new(),
            dev: (0, 0),
        }
    }

    /// The 512 header bytes (checksum set; sizes past octal go base-256).
    pub fn bytes(&self) -> [u8; B] {
        let mut h = [0u8; B];
        let n = self.name.len().min(100);
        h[..n].copy_from_slice(&self.name[..n]);
        octal(&mut h[100..108], u64::from(self.mode));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        if self.size < 0o77777777777 {
            octal(&mut h[124..136], self.size);
        } else {
            h[124] = 0x80;
            h[128..136].copy_from_slice(&self.size.to_be_bytes());
        }
        octal(&mut h[136..148], self.mtime as u64);
        h[156] = self.typeflag;
        let l = self.link.len().min(100);
        h[157..157 + l].copy_from_slice(&self.link[..l]);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        octal(&mut h[329..337], u64::from(self.dev.0));
        octal(&mut h[337..345], u64::from(self.dev.1));
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }
}

fn octal(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

/// `data` padded to whole blocks.
pub fn padded(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v.resize(data.len().div_ceil(B) * B, 0);
    v
}

/// A whole member: header, data, padding.
pub fn member(h: &Hdr, data: &[u8]) -> Vec<u8> {
    let mut v = h.bytes().to_vec();
    v.extend_from_slice(&padded(data));
    v
}

/// A PAX extended header (`x`) with these records, and its data.
pub fn pax(records: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut data = Vec::new();
    for (k, v) in records {
        let body = k.len() + v.len() + 3;
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        data.extend_from_slice(len.to_string().as_bytes());
        data.push(b' ');
        data.extend_from_slice(k);
        data.push(b'=');
        data.extend_from_slice(v);
        data.push(b'\n');
    }
    member(&Hdr::new(b"PaxHeader", b'x', data.len() as u64), &data)
}

/// A GNU long name (`L`) or long link (`K`) header and its data.
pub fn gnu_long(typeflag: u8, name: &[u8]) -> Vec<u8> {
    let mut data = name.to_vec();
    data.push(0);
    member(
        &Hdr::new(b"././@LongLink", typeflag, data.len() as u64),
        &data,
    )
}

/// A file entry whose MANIFEST line matches `data`.
pub fn file_entry(path: &[u8], data: &[u8]) -> Entry {
    let mut e = Entry::new(path.to_vec(), Kind::File);
    e.mode = 0o644;
    e.size = data.len() as u64;
    e.sha256 = Some(sha2::Sha256::digest(data).into());
    e
}

pub fn dir_entry(path: &[u8]) -> Entry {
    let mut e = Entry::new(path.to_vec(), Kind::Dir);
    e.mode = 0o755;
    e
}

/// MANIFEST text of `entries`, by the real renderer.
pub fn manifest_of(entries: Vec<Entry>) -> String {
    Manifest::new(entries).unwrap().render()
}

/// The `.sysup/DIST` and `.sysup/MANIFEST` members of dist `id`.
pub fn head(id: &str, manifest: &str, entries: usize) -> Vec<u8> {
    let dist = format!("format = 1\nid = \"{id}\"\narch = \"x86_64\"\nentries = {entries}\n");
    let mut v = member(
        &Hdr::new(b".sysup/DIST", b'0', dist.len() as u64),
        dist.as_bytes(),
    );
    v.extend(member(
        &Hdr::new(b".sysup/MANIFEST", b'0', manifest.len() as u64),
        manifest.as_bytes(),
    ));
    v
}

/// The end-of-archive blocks.
pub fn end() -> Vec<u8> {
    vec![0u8; 2 * B]
}

/// One piece of a gzipped file: writes its bytes (streamed, never held).
pub type Part<'a> = &'a dyn Fn(&mut dyn Write);

/// Gzip `parts` (streamed, level 1) into `dir/name`.
pub fn gz_file(dir: &Path, name: &str, parts: &[Part<'_>]) -> PathBuf {
    let p = dir.join(name);
    let f = fs::File::create(&p).unwrap();
    let mut gz =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(f), flate2::Compression::fast());
    for part in parts {
        part(&mut gz);
    }
    gz.finish().unwrap().flush().unwrap();
    p
}

/// Gzip one in-memory tar into `dir/name`.
pub fn gz_tar(dir: &Path, name: &str, tar: &[u8]) -> PathBuf {
    gz_file(dir, name, &[&|w: &mut dyn Write| w.write_all(tar).unwrap()])
}

/// Write `n` zero bytes to `w` (a bomb's payload, never held in memory).
pub fn zeros(w: &mut dyn Write, n: u64) {
    let chunk = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(chunk.len() as u64) as usize;
        w.write_all(&chunk[..k]).unwrap();
        left -= k as u64;
    }
}

/// A test's root (with the small world `world-1-20260101` installed) and
/// the empty `outside` directory beside it.
pub struct Site {
    pub t: tempfile::TempDir,
    pub root: PathBuf,
    pub outside: PathBuf,
    pub before: BTreeMap<Vec<u8>, Node>,
}

/// What the installed small world holds.
pub fn small_world() -> Vec<Crafted> {
    vec![
        Crafted::dir("etc"),
        Crafted::file("etc/hostname", b"hostile\n"),
        Crafted::dir("usr"),
        Crafted::dir("usr/bin"),
        Crafted::file("usr/bin/tool", b"#!/bin/sh\necho tool\n"),
        Crafted::symlink("bin", "usr/bin"),
    ]
}

/// The members of [`small_world`] as a dist holds them: a plain ustar
/// header (type, mode, link target) and the data of each, in order.
pub fn small_world_members() -> Vec<u8> {
    let mut tar = Vec::new();
    for c in small_world() {
        let e = &c.entry;
        let tf = match e.kind {
            sysup::format::manifest::Kind::Dir => b'5',
            sysup::format::manifest::Kind::Symlink => b'2',
            _ => b'0',
        };
        let mut h = Hdr::new(&e.path, tf, c.data.len() as u64);
        h.mode = e.mode;
        h.link = e.link.clone().unwrap_or_default();
        tar.extend(member(&h, &c.data));
    }
    tar
}

impl Site {
    pub fn new() -> Site {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let outside = t.path().join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&outside).unwrap();
        let dist = craft_dist(t.path(), "world-1-20260101", "x86_64", &small_world());
        apply_ok(&root, &[&dist]);
        fs::remove_file(dist).unwrap();
        let before = guarded_snapshot(&root);
        Site {
            t,
            root,
            outside,
            before,
        }
    }

    /// The directory hostile inputs are written to.
    pub fn dir(&self) -> &Path {
        self.t.path()
    }

    /// The installed base's uncompressed tar (what a patch must be made from).
    pub fn base_tar(&self) -> Vec<u8> {
        let mut v = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::MultiGzDecoder::new(
                fs::File::open(self.root.join("var/db/sysup/bases/world-1-20260101.tar.gz"))
                    .unwrap(),
            ),
            &mut v,
        )
        .unwrap();
        v
    }

    /// `sysup apply --root ROOT FILE` must be refused as the module docs say;
    /// returns the error text.
    pub fn refused(&self, file: &Path, needles: &[&str]) -> String {
        let o = run_measured(sysup().arg("apply").arg("--root").arg(&self.root).arg(file));
        let err = o.stderr.clone();
        check_refusal(&o, file, needles);
        assert_unchanged(&self.root, &self.before);
        assert_eq!(
            fs::read_dir(&self.outside).unwrap().count(),
            0,
            "something was written outside the root"
        );
        assert!(
            leftovers(&self.root).is_empty(),
            "{:?}",
            leftovers(&self.root)
        );
        err
    }
}

/// Exit 1, an `error:` naming `file` and every needle, no panic, RSS bound.
pub fn check_refusal(o: &Measured, file: &Path, needles: &[&str]) {
    let err = &o.stderr;
    assert_eq!(o.code, Some(1), "expected exit 1; stderr:\n{err}");
    assert!(
        err.starts_with("error: ") && !err.contains("panicked"),
        "{err}"
    );
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(
        err.contains(name.as_ref()),
        "the error does not name {name}:\n{err}"
    );
    for n in needles {
        assert!(err.contains(n), "expected '{n}' in:\n{err}");
    }
    assert!(
        o.max_rss_kib < RSS_LIMIT_KIB,
        "peak RSS {} KiB over the {RSS_LIMIT_KIB} KiB bound:\n{err}",
        o.max_rss_kib
    );
    // For the record (cargo test -- --nocapture shows it).
    eprintln!(
        "refused {name}: {} [peak RSS {} MiB]",
        err.lines().next().unwrap_or_default(),
        o.max_rss_kib / 1024
    );
}

/// `sysup info FILE` must be refused the same way (no root involved).
pub fn info_refused(file: &Path, needles: &[&str]) {
    let o = run_measured(sysup().arg("info").arg(file));
    check_refusal(&o, file, needles);
}
