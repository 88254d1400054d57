//! The `dist_stage` harness: an arbitrary tar stream, gzipped under a dist
//! name and given to the real `sysup apply` code (`host::apply::apply`) with
//! a small temporary root.
//!
//! Input layout: one mode byte, then an uncompressed tar. Header checksums
//! are repaired first ([`crate::tarfix`]). Then
//! - mode 0, **raw**: the tar is the dist, as is (reaches the segmenter, the
//!   member parser, the `.sysup/` head and the stager's MANIFEST checks);
//! - mode 1, **consistent**: the harness drops the tar's own `.sysup/`
//!   members and puts in front a `DIST` and a `MANIFEST` that describe the
//!   remaining members exactly (types, modes, owners, links, devices,
//!   content hashes; `*.new` members as critical files, `etc/*` as config),
//!   keeping the members' raw header bytes — so hostile names, links and
//!   types get past the MANIFEST and reach staging and commit.
//!
//! The root holds `etc/hostname`, `usr/lib/`, and three symlinks a dist may
//! try to write through: `lib -> usr/lib`, `up -> ../outside` and
//! `abs -> <absolute path of outside>`; `outside/secret` lies beside it.
//!
//! Oracle: no panic; nothing beside the root appears, disappears or
//! changes; an apply that fails before its commit point leaves the root
//! exactly as it was (sysup's own `var/db/sysup` aside).
//!
//! Safety: an input whose dist would carry an `upgrade` step (the one
//! external program an apply runs) is skipped before `apply`, found with the
//! same segmenter and member parser `apply` uses.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sysup::format::archive::member::{self, MemberMeta};
use sysup::format::archive::segment::{Item, Segmenter};
use sysup::format::archive::write::TarWriter;
use sysup::format::dist::{DistMeta, DIST_MEMBER, UPGRADE_MEMBER};
use sysup::format::manifest::{Entry, Kind, Manifest};
use sysup::host::apply::{apply, ApplyOptions};
use sysup::util::digest::Digests;

/// The dist id the consistent mode writes (and raw mode falls back to).
pub const ID: &str = "world-1-20260101";

pub const RAW: u8 = 0;
pub const CONSISTENT: u8 = 1;

/// Build an input from a mode and a tar.
pub fn encode(mode: u8, tar: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(tar);
    v
}

/// One parsed member: its metadata (if it parses), raw byte range, data.
struct Parsed {
    meta: Option<MemberMeta>,
    range: (usize, usize),
    data: Vec<u8>,
}

/// Segment `tar` as `apply` would; stops at the first framing error and
/// returns the offset where parsing stopped.
fn members(tar: &[u8]) -> (Vec<Parsed>, usize) {
    let mut seg = Segmenter::new(tar, "fuzz");
    let mut out = Vec::new();
    while let Ok(Some(Item::Member(m))) = seg.next_item() {
        let mut data = Vec::new();
        if seg.data().read_to_end(&mut data).is_err() {
            break;
        }
        let end = (m.end() as usize).min(tar.len());
        out.push(Parsed {
            meta: member::parse(&m.header).ok(),
            range: (m.offset as usize, end),
            data,
        });
    }
    let at = out.last().map_or(0, |p| p.range.1);
    (out, at)
}

/// Whether `apply` could meet an `upgrade` member in `tar`.
fn carries_upgrade(ms: &[Parsed]) -> bool {
    ms.iter().any(|p| {
        p.meta
            .as_ref()
            .is_some_and(|m| m.path == UPGRADE_MEMBER.as_bytes())
    })
}

/// The id a raw tar's `.sysup/DIST` names, when it parses.
fn dist_id(ms: &[Parsed]) -> Option<String> {
    let first = ms.first()?;
    if first.meta.as_ref()?.path != DIST_MEMBER.as_bytes() {
        return None;
    }
    let meta = DistMeta::parse(Path::new("d"), &first.data).ok()?;
    Some(meta.id.to_string())
}

/// Mode 1: a DIST and a MANIFEST describing the members, then the members.
fn consistent(tar: &[u8]) -> Vec<u8> {
    let (ms, stopped) = members(tar);
    let mut entries: BTreeMap<Vec<u8>, Entry> = BTreeMap::new();
    let mut body = Vec::new();
    for p in &ms {
        let Some(m) = &p.meta else {
            body.extend_from_slice(&tar[p.range.0..p.range.1]);
            continue;
        };
        if m.path.starts_with(b".sysup/") || m.path == b".sysup" {
            continue;
        }
        body.extend_from_slice(&tar[p.range.0..p.range.1]);
        let (path, critical) = match m.path.strip_suffix(b".new") {
            Some(s) if m.kind == Kind::File && !s.is_empty() => (s.to_vec(), true),
            _ => (m.path.clone(), false),
        };
        if entries.contains_key(&path) {
            continue;
        }
        let mut e = Entry::new(path.clone(), m.kind);
        e.mode = m.mode;
        e.uid = m.uid;
        e.gid = m.gid;
        e.mtime = m.mtime;
        e.xattrs = m.xattrs.clone();
        e.critical = critical;
        e.config = m.kind == Kind::File && path.starts_with(b"etc/");
        match m.kind {
            Kind::File => {
                e.size = m.size;
                e.sha256 = Some(Digests::of(&p.data).sha256);
            }
            Kind::Hardlink => {
                let target = m.link.clone().unwrap_or_default();
                let t = target.strip_suffix(b".new").unwrap_or(&target).to_vec();
                let held = entries.get(&t).or_else(|| entries.get(&target));
                e.size = held.map_or(0, |h| h.size);
                e.sha256 = Some(held.and_then(|h| h.sha256).unwrap_or([0; 32]));
                e.link = Some(held.map_or(target, |h| h.path.clone()));
            }
            Kind::Symlink => e.link = m.link.clone(),
            Kind::Char | Kind::Block => e.dev = m.dev,
            Kind::Dir | Kind::Fifo => {}
        }
        entries.insert(path, e);
    }
    body.extend_from_slice(&tar[stopped.min(tar.len())..]);
    let n = entries.len();
    let manifest = Manifest::new(entries.into_values().collect())
        .map(|m| m.render())
        .unwrap_or_default();
    let dist = format!("format = 1\nid = \"{ID}\"\narch = \"x86_64\"\nentries = {n}\n");
    let mut w = TarWriter::new(Vec::new());
    for (name, data) in [
        (DIST_MEMBER, dist.as_bytes()),
        (".sysup/MANIFEST", manifest.as_bytes()),
    ] {
        let m = MemberMeta {
            path: name.as_bytes().to_vec(),
            kind: Kind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: data.len() as u64,
            link: None,
            dev: None,
            xattrs: BTreeMap::new(),
        };
        w.append(&m, data).expect("writing to memory");
    }
    let head = w.written() as usize;
    let mut out = w.finish().expect("writing to memory");
    out.truncate(head);
    out.extend_from_slice(&body);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// What one entry of a tree looks like, for "nothing changed" checks.
#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    owner: (u32, u32),
    mtime: i64,
    size: u64,
    rdev: u64,
    link: Option<Vec<u8>>,
    content: Option<[u8; 32]>,
}

fn snapshot(top: &Path, skip: &dyn Fn(&[u8]) -> bool) -> BTreeMap<Vec<u8>, Node> {
    let mut out = BTreeMap::new();
    let mut todo = vec![top.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for de in rd.flatten() {
            let p = de.path();
            let rel = p.strip_prefix(top).unwrap().as_os_str().as_bytes().to_vec();
            if skip(&rel) {
                continue;
            }
            let Ok(md) = fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = md.file_type();
            let kind = match () {
                _ if ft.is_file() => "file",
                _ if ft.is_dir() => "dir",
                _ if ft.is_symlink() => "symlink",
                _ if ft.is_char_device() => "char",
                _ if ft.is_block_device() => "block",
                _ if ft.is_fifo() => "fifo",
                _ => "other",
            };
            if ft.is_dir() {
                todo.push(p.clone());
            }
            out.insert(
                rel,
                Node {
                    kind,
                    mode: md.mode(),
                    owner: (md.uid(), md.gid()),
                    mtime: md.mtime(),
                    size: if ft.is_dir() { 0 } else { md.len() },
                    rdev: md.rdev(),
                    link: fs::read_link(&p)
                        .ok()
                        .map(|l| l.as_os_str().as_bytes().to_vec()),
                    content: ft
                        .is_file()
                        .then(|| fs::read(&p).map(|b| Digests::of(&b).sha256).ok())
                        .flatten(),
                },
            );
        }
    }
    out
}

/// sysup's own state, which a refused apply may create.
fn is_state(rel: &[u8]) -> bool {
    rel == b"var" || rel == b"var/db" || rel.starts_with(b"var/db/sysup")
}

/// The harness's directories (see the module docs).
pub struct Sandbox {
    pub base: PathBuf,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let base = crate::scratch("dist_stage");
        let outside = base.join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret"), b"secret\n").unwrap();
        fs::create_dir_all(base.join("in")).unwrap();
        Sandbox { base }
    }

    pub fn root(&self) -> PathBuf {
        self.base.join("root")
    }

    /// A fresh root (see the module docs).
    pub fn reset(&self) {
        let root = self.root();
        if root.exists() {
            fs::remove_dir_all(&root).expect("remove the previous root");
        }
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        fs::write(root.join("etc/hostname"), b"fuzz\n").unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("../outside", root.join("up")).unwrap();
        std::os::unix::fs::symlink(self.base.join("outside"), root.join("abs")).unwrap();
        for e in fs::read_dir(self.base.join("in")).unwrap().flatten() {
            fs::remove_file(e.path()).unwrap();
        }
    }

    /// Panic if anything beside the root changed.
    pub fn check_outside(&self) {
        let mut top: Vec<_> = fs::read_dir(&self.base)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        top.sort();
        assert_eq!(
            top,
            ["in", "outside", "root"],
            "something appeared beside the root"
        );
        let outside: Vec<_> = fs::read_dir(self.base.join("outside"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            outside,
            ["secret"],
            "something was written outside the root"
        );
        let md = fs::symlink_metadata(self.base.join("outside/secret")).unwrap();
        assert!(
            md.is_file() && md.nlink() == 1,
            "outside/secret was linked or replaced"
        );
        assert_eq!(
            fs::read(self.base.join("outside/secret")).unwrap(),
            b"secret\n"
        );
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

/// The harness (see the module docs).
pub fn run(sandbox: &Sandbox, data: &[u8]) {
    let Some((&mode, tar)) = data.split_first() else {
        return;
    };
    let mut tar = tar.to_vec();
    crate::tarfix::fix_checksums(&mut tar);
    let (dist, id) = if mode % 2 == CONSISTENT {
        (consistent(&tar), ID.to_string())
    } else {
        let (ms, _) = members(&tar);
        let id = dist_id(&ms).unwrap_or_else(|| ID.to_string());
        (tar, id)
    };
    // The upgrade step is a shell script: never let apply reach one.
    if carries_upgrade(&members(&dist).0) {
        return;
    }
    sandbox.reset();
    let file = sandbox.base.join("in").join(format!("{id}.tar.gz"));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &dist).unwrap();
    fs::write(&file, gz.finish().unwrap()).unwrap();
    let root = sandbox.root();
    let before = snapshot(&root, &is_state);
    let result = apply(&ApplyOptions {
        root: root.clone(),
        files: vec![file],
        ..Default::default()
    });
    sandbox.check_outside();
    if result.is_err() && !root.join("var/db/sysup/journal").exists() {
        let after = snapshot(&root, &is_state);
        assert!(
            before == after,
            "a refused apply changed the root: {result:?}\nbefore: {before:#?}\nafter: {after:#?}"
        );
    }
}
