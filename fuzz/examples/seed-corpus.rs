//! `seed-corpus OUT_DIR`: the seed corpora of the fuzz targets, generated
//! from sysup's fixtures (never committed; `fuzz/seed.sh` runs this).
//!
//! Trees: fixture world revisions 1–3 and kernel `GENERIC` revisions 1–2
//! (`src/cli/fixtures.rs`), and two revisions of a tiny tree (a few small files,
//! a symlink, a hard link pair, a fifo, a device node when run as root, a
//! critical file, a setuid file, a path over 100 bytes, an xattr, an x86-64
//! and an aarch64 executable whose code moves, so its patch uses reference
//! prediction of both machines) whose
//! dists are small enough for fast mutation. Dists, patches (xz and zstd)
//! and a signed INDEX are made with the real `sysup` binary (`$SYSUP`, by
//! default `sysup` on `PATH`) through its documented command line, then
//! written in each target's input layout (see `sysup_fuzz::*`):
//! - `patch_apply/`: every patch with its old tar, raw, resealed and
//!   structured (sections decompressed);
//! - `dist_stage/`: the tiny dists' tars, raw and in consistent mode (the
//!   fixture world applies at a few per second under instrumentation);
//! - `manifest_parse/`: every dist's MANIFEST;
//! - `index_verify/`: the INDEX and INDEX.minisig of each publish directory,
//!   signed with `fuzz/keys/fuzz.key`.
//!
//! Invariant: deterministic (same sysup, same seeds), and it writes only
//! under OUT_DIR and a temporary directory it removes.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sysup::format::patch::header::{PatchHeader, SectionKind};
use sysup::format::patch::section::SectionReader;
use sysup_fuzz::{dist, index, patch};

/// The demo's fixture trees (the sysup binary's own module, shared here).
#[path = "../../src/cli/fixtures.rs"]
mod fixtures;

fn sysup() -> Command {
    Command::new(std::env::var_os("SYSUP").unwrap_or_else(|| "sysup".into()))
}

fn run(cmd: &mut Command) {
    let o = cmd.output().expect("run sysup");
    assert!(
        o.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn gunzip(p: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(p).unwrap())
        .read_to_end(&mut v)
        .unwrap();
    v
}

/// A tiny tree: revision `rev` changes one file, adds one, removes one.
/// A small x86-64 ELF file: one loadable segment, helpers, then functions
/// calling the helpers, each other and loading a global RIP-relatively;
/// revision 2 inserts bytes between helpers and functions.
fn fake_exe(rev: u32) -> Vec<u8> {
    let mut v = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0\x3e\0".to_vec();
    v.resize(128, 0);
    v[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    v[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    v[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    v[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    v[80..88].copy_from_slice(&0x400000u64.to_le_bytes()); // p_vaddr
    // distinct helper bytes, so bsdiff aligns the helpers where they are
    v.extend((0..64usize).map(|j| match (j * 37 % 251) as u8 {
        0xe8 | 0xe9 | 0x0f => 0x90,
        b => b,
    }));
    v.extend(std::iter::repeat_n(0xccu8, if rev >= 2 { 24 } else { 0 }));
    let start = v.len();
    let (funcs, f_len) = (24usize, 48usize);
    let global = start + funcs * f_len;
    for f in 0..funcs {
        let at = start + f * f_len;
        let mut body = vec![0x90u8; f_len];
        body[40..48].copy_from_slice(&(f as u64).to_le_bytes());
        for (k, op, target) in [
            (2, &[0xe8u8][..], 128 + (f % 4) * 16),
            (10, &[0xe8], start + ((f * 5 + 1) % funcs) * f_len),
            (20, &[0x48, 0x8b, 0x05], global),
        ] {
            body[k..k + op.len()].copy_from_slice(op);
            let next = at + k + op.len() + 4;
            let d = (target as i64 - next as i64) as i32;
            body[k + op.len()..k + op.len() + 4].copy_from_slice(&d.to_le_bytes());
        }
        v.extend_from_slice(&body);
    }
    v.resize(global + 16, 0);
    let len = v.len() as u64;
    v[96..104].copy_from_slice(&len.to_le_bytes()); // p_filesz
    v[104..112].copy_from_slice(&(len + 4096).to_le_bytes()); // p_memsz
    v
}

/// A small aarch64 ELF file: one loadable segment, helpers, then functions
/// calling the helpers and each other (BL), branching (B.cond) and loading
/// a global (ADRP + LDR); revision 2 inserts words before the functions.
fn fake_aarch64_exe(rev: u32) -> Vec<u8> {
    let mut v = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0\xb7\0".to_vec();
    v.resize(128, 0);
    v[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    v[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    v[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    v[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    v[80..88].copy_from_slice(&0x400000u64.to_le_bytes()); // p_vaddr
    let word = |v: &mut Vec<u8>, w: u32| v.extend_from_slice(&w.to_le_bytes());
    for k in 0..8u32 {
        word(&mut v, 0x8b00_0000 | k * 33); // add (shifted register)
        word(&mut v, 0xd65f_03c0); // ret
    }
    for _ in 0..if rev >= 2 { 6 } else { 0 } {
        word(&mut v, 0xd503_201f); // nop
    }
    let start = v.len();
    let (funcs, f_words) = (24usize, 12usize);
    let global = (start + funcs * f_words * 4 + 8).next_multiple_of(8);
    let rel = |from: usize, to: usize| ((to as i64 - from as i64) >> 2) as u32;
    for f in 0..funcs {
        let at = start + f * f_words * 4;
        let mut w = vec![0x8b00_0000u32 | f as u32; f_words];
        w[1] = 0x9400_0000 | (rel(at + 4, 128 + (f % 8) * 8) & 0x3ff_ffff); // bl helper
        let next = start + ((f * 5 + 1) % funcs) * f_words * 4;
        w[3] = 0x9400_0000 | (rel(at + 12, next) & 0x3ff_ffff); // bl function
        let page = ((global >> 12) as i64 - ((at + 20) >> 12) as i64) as u32;
        w[5] = 0x9000_0001 | (page & 3) << 29 | (page >> 2 & 0x7_ffff) << 5; // adrp x1
        w[6] = 0xf940_0022 | ((global & 0xfff) as u32 >> 3) << 10; // ldr x2, [x1, lo12]
        w[8] = 0x5400_0001 | (rel(at + 32, at + 44) & 0x7_ffff) << 5; // b.ne
        for x in w {
            word(&mut v, x);
        }
    }
    v.resize(global + 16, 0);
    let len = v.len() as u64;
    v[96..104].copy_from_slice(&len.to_le_bytes()); // p_filesz
    v[104..112].copy_from_slice(&(len + 4096).to_le_bytes()); // p_memsz
    v
}

/// A changelog of revision `rev` as xz (the way Linux compresses its
/// modules) and as zstd -19, made by sysup's own re-encoder so that the
/// differ finds their recipes.
fn compressed_logs(rev: u32) -> (Vec<u8>, Vec<u8>) {
    use sysup::format::patch::recode::{rebuild, Codec, Recipe};
    use sysup::format::patch::{rexz, rezstd};
    let mut log: Vec<u8> = (0..rev).map(|r| format!("* revision {r}\n")).collect::<String>().into();
    for i in 0..300u32 {
        log.extend_from_slice(format!("  - entry {} of the log\n", i * 7 % 97).as_bytes());
    }
    let xz = Codec::Xz(rexz::Params {
        check: 1,
        preset: 6,
        extreme: false,
        dict_size: 1 << 20,
        bcj: 0,
        block_size: 0,
    });
    let zst = Codec::Zstd(rezstd::Params {
        level: 19,
        checksum: true,
        pledged: true,
        content_size: true,
    });
    let make = |codec| {
        let r = Recipe {
            codec,
            raw_len: log.len() as u64,
        };
        rebuild(&r, &log).unwrap()
    };
    (make(xz), make(zst))
}

/// A wheel of revision `rev` (two modules deflated by zlib at level 6, as
/// Python's zipfile does, one stored file, the central directory): its
/// deflate entries are rebuilt by the differ's search, so the member is
/// re-zipped (patch format 5).
fn wheel(rev: u32) -> Vec<u8> {
    use sysup::format::patch::zlib::{deflate_raw, Deflate};
    let files: [(&str, Vec<u8>, bool); 3] = [
        ("pkg/__init__.py", format!("VERSION = {rev}\n").repeat(40).into_bytes(), true),
        (
            "pkg/core.py",
            (0..200u32)
                .map(|i| format!("def f{}(x):\n    return x + {}\n", i * 7 % 61, i + rev))
                .collect::<String>()
                .into_bytes(),
            true,
        ),
        ("pkg/logo.png", fixtures::noise(3, 300), false),
    ];
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, raw, deflated) in &files {
        let packed = if *deflated {
            let mut v = Vec::new();
            let d = Deflate { level: 6, mem_level: 8 };
            deflate_raw(raw, d, |c| {
                v.extend_from_slice(c);
                true
            })
            .unwrap();
            v
        } else {
            raw.clone()
        };
        let mut crc = flate2::Crc::new();
        crc.update(raw);
        let at = out.len() as u32;
        let method: u16 = if *deflated { 8 } else { 0 };
        let fields = |central: bool| {
            let mut h = Vec::new();
            if central {
                h.extend_from_slice(&20u16.to_le_bytes());
            }
            for v in [20u16, 0, method, 0, 0x21] {
                h.extend_from_slice(&v.to_le_bytes());
            }
            for v in [crc.sum(), packed.len() as u32, raw.len() as u32] {
                h.extend_from_slice(&v.to_le_bytes());
            }
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&[0; 2]);
            if central {
                h.extend_from_slice(&[0; 10]);
                h.extend_from_slice(&at.to_le_bytes());
            }
            h.extend_from_slice(name.as_bytes());
            h
        };
        out.extend_from_slice(b"PK\x03\x04");
        out.extend(fields(false));
        out.extend(&packed);
        central.extend_from_slice(b"PK\x01\x02");
        central.extend(fields(true));
    }
    let cd = out.len() as u32;
    out.extend(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0\x03\0\x03\0");
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd.to_le_bytes());
    out.extend_from_slice(&[0; 2]);
    out
}

fn tiny_tree(root: &Path, rev: u32) {
    let w = |p: &str, b: &[u8]| {
        let p = root.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b).unwrap();
    };
    w("etc/motd", format!("tiny revision {rev}\n").as_bytes());
    w("usr/bin/tool", &fixtures::noise(u64::from(rev), 700));
    w("usr/bin/same", &fixtures::noise(99, 300));
    // an x86-64 executable whose code moves: diffed with reference
    // prediction (patch format 3), so mutations reach that decoder
    w("usr/bin/exe", &fake_exe(rev));
    // the same for aarch64 (patch format 4)
    w("usr/bin/exe-arm64", &fake_aarch64_exe(rev));
    w(&format!("usr/share/r{rev}"), b"per revision\n");
    // xz and zstd members whose text gains a line: re-encoded (patch
    // format 4), so mutations reach those records and decoders
    let (xz, zst) = compressed_logs(rev);
    w("lib/modules/m.ko.xz", &xz);
    w("usr/share/doc/changes.zst", &zst);
    // a wheel whose module changes: re-zipped (patch format 5), so
    // mutations reach its table and the applier's walk of the old archive
    w("usr/share/python-wheels/pkg-1.0-py3-none-any.whl", &wheel(rev));
    fs::hard_link(root.join("usr/bin/same"), root.join("usr/bin/same2")).unwrap();
    // a critical file (see the tiny spec), a setuid one, a PAX-long path, an xattr
    w("usr/lib/libc.so.6", &fixtures::noise(7, 200 + rev as usize));
    w("usr/bin/su", b"su\n");
    fs::set_permissions(
        root.join("usr/bin/su"),
        std::os::unix::fs::PermissionsExt::from_mode(0o4755),
    )
    .unwrap();
    w(&format!("usr/share/{}/long", "d".repeat(110)), b"long\n");
    let _ = sysup::util::fsutil::set_xattr(&root.join("usr/bin/tool"), "user.fuzz", b"seed");
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    fs::create_dir_all(root.join("dev")).unwrap();
    nix::unistd::mkfifo(
        &root.join("dev/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    if fixtures::privileged() {
        nix::sys::stat::mknod(
            &root.join("dev/null"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
    }
    fixtures::set_mtimes(root, fixtures::rev_mtime(rev)).unwrap();
}

/// Build `tree` with `spec` as revision `rev` into `out`; the dist's path.
fn build(spec: &Path, tree: &Path, rev: u32, out: &Path) -> PathBuf {
    let date = format!("202601{rev:02}");
    let o = sysup()
        .arg("build")
        .arg(spec)
        .arg("--tree")
        .arg(tree)
        .args(["--rev", &rev.to_string(), "--date", &date, "--out"])
        .arg(out)
        .arg("--json")
        .output()
        .expect("run sysup build");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    PathBuf::from(v["path"].as_str().unwrap())
}

/// `sysup diff OLD NEW` into `out`; the patch's path.
fn diff(old: &Path, new: &Path, out: &Path, zstd: bool) -> PathBuf {
    let o = sysup()
        .arg("diff")
        .arg(old)
        .arg(new)
        .arg("--out")
        .arg(out)
        .args(["--compression", if zstd { "zstd" } else { "xz" }])
        .arg("--json")
        .output()
        .expect("run sysup diff");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    PathBuf::from(v["patch"].as_str().unwrap())
}

/// The structured (mode 2) form of a real patch.
fn structured(p: &Path, old: &[u8]) -> patch::Structured {
    let h = PatchHeader::read_file(p).unwrap();
    let raw = |kind| {
        let s = h.section(kind);
        let mut r = SectionReader::open(p, s, h.compression, h.window_log).unwrap();
        let mut v = Vec::new();
        r.read_into(&mut v, s.raw_len as usize).unwrap();
        v
    };
    patch::Structured {
        window_log: h.window_log,
        old_members: h.old_members,
        new_members: h.new_members,
        to: h.to.tar,
        controls: raw(SectionKind::Controls),
        diff: raw(SectionKind::Diff),
        extra: raw(SectionKind::Extra),
        old: old.to_vec(),
    }
}

/// (set name, dists in order, patches as (index of the old dist, patch)).
type Set = (&'static str, Vec<PathBuf>, Vec<(usize, PathBuf)>);

struct Out {
    dir: PathBuf,
}

impl Out {
    fn put(&self, target: &str, name: &str, bytes: &[u8]) {
        let d = self.dir.join(target);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(name), bytes).unwrap();
    }
}

fn main() {
    let out = Out {
        dir: PathBuf::from(std::env::args().nth(1).expect("usage: seed-corpus OUT_DIR")),
    };
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("keys/fuzz.key");
    let work = tempfile::Builder::new()
        .prefix("fuzz-seeds-")
        .tempdir()
        .unwrap();
    let w = work.path();
    let priv_ = fixtures::privileged();

    // Trees and specs.
    let world_spec = w.join("world.toml");
    fs::write(&world_spec, fixtures::WORLD_SPEC).unwrap();
    let kernel_spec = w.join("GENERIC.toml");
    fs::write(&kernel_spec, fixtures::kernel_spec("GENERIC")).unwrap();
    let tiny_spec = w.join("tiny.toml");
    fs::write(
        &tiny_spec,
        "name = \"world\"\narch = \"x86_64\"\ncritical = [\"usr/lib/libc.so.6\"]\n",
    )
    .unwrap();

    let mut sets: Vec<Set> = Vec::new();
    let (mut world, mut kernel, mut tiny) = (vec![], vec![], vec![]);
    for rev in 1..=3 {
        let t = w.join(format!("world-tree-{rev}"));
        fixtures::make_world(&t, rev, priv_).unwrap();
        world.push(build(&world_spec, &t, rev, &w.join("world")));
    }
    for rev in 1..=2 {
        let t = w.join(format!("kernel-tree-{rev}"));
        fixtures::make_kernel(&t, "GENERIC", rev).unwrap();
        kernel.push(build(&kernel_spec, &t, rev, &w.join("kernel")));
        let t = w.join(format!("tiny-tree-{rev}"));
        tiny_tree(&t, rev);
        tiny.push(build(&tiny_spec, &t, rev, &w.join("tiny")));
    }
    let wp = vec![
        (0, diff(&world[0], &world[1], &w.join("world"), false)),
        (1, diff(&world[1], &world[2], &w.join("world"), true)),
    ];
    let kp = vec![(0, diff(&kernel[0], &kernel[1], &w.join("kernel"), false))];
    let tz = w.join("tiny-zstd");
    fs::create_dir_all(&tz).unwrap();
    let tp = vec![
        (0, diff(&tiny[0], &tiny[1], &w.join("tiny"), false)),
        (0, diff(&tiny[0], &tiny[1], &tz, true)),
    ];
    sets.push(("world", world, wp));
    sets.push(("kernel", kernel, kp));
    sets.push(("tiny", tiny, tp));

    for (set, dists, patches) in &sets {
        for (i, d) in dists.iter().enumerate() {
            let tar = gunzip(d);
            let m = sysup::format::dist::read_dist_metadata(d).unwrap();
            out.put(
                "manifest_parse",
                &format!("{set}-{i}"),
                m.manifest.render().as_bytes(),
            );
            // The big fixture dists apply at a few per second under
            // instrumentation: dist_stage gets the tiny ones only.
            if *set != "tiny" {
                continue;
            }
            out.put(
                "dist_stage",
                &format!("{set}-{i}-raw"),
                &dist::encode(dist::RAW, &tar),
            );
            out.put(
                "dist_stage",
                &format!("{set}-{i}-consistent"),
                &dist::encode(dist::CONSISTENT, &tar),
            );
        }
        for (k, (from, p)) in patches.iter().enumerate() {
            let old = gunzip(&dists[*from]);
            let bytes = fs::read(p).unwrap();
            for (mode, tag) in [(patch::RAW, "raw"), (patch::RESEALED, "resealed")] {
                out.put(
                    "patch_apply",
                    &format!("{set}-{k}-{tag}"),
                    &patch::encode_file(mode, &bytes, &old),
                );
            }
            out.put(
                "patch_apply",
                &format!("{set}-{k}-structured"),
                &structured(p, &old).encode(),
            );
        }
        // A publish directory per set, signed with the fuzzing key.
        let pubdir = w.join(format!("publish-{set}"));
        fs::create_dir_all(&pubdir).unwrap();
        for f in dists.iter().chain(patches.iter().map(|(_, p)| p)) {
            fs::copy(f, pubdir.join(f.file_name().unwrap())).unwrap();
        }
        run(sysup().arg("publish").arg(&pubdir).arg("--sign").arg(&key));
        let ix = fs::read(pubdir.join("INDEX")).unwrap();
        let sig = fs::read(pubdir.join("INDEX.minisig")).unwrap();
        out.put("index_verify", set, &index::encode(&sig, &ix));
    }
    // Small hand-made inputs: empty and minimal documents.
    out.put("manifest_parse", "header-only", b"#sysup-manifest 1\n");
    out.put(
        "manifest_parse",
        "kinds",
        concat!(
            "#sysup-manifest 1\n",
            "a type=dir mode=0755 uid=0 gid=0 mtime=0\n",
            "a/c type=char mode=0666 uid=0 gid=0 mtime=0 dev=1,3\n",
            "a/f type=file mode=4755 uid=0 gid=0 mtime=-1 size=0 sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 xattr.security.capability=0100 flags=critical,config\n",
            "a/h type=hardlink mode=0644 uid=0 gid=0 mtime=0 size=0 sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 link=a/f\n",
            "a/l type=symlink mode=0777 uid=0 gid=0 mtime=0 link=..\\x2fx\n",
            "a/p type=fifo mode=0600 uid=0 gid=0 mtime=0\n",
        )
        .as_bytes(),
    );
    eprintln!("seed corpora written to {}", out.dir.display());
}
