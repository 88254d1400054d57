//! Fuzz harnesses for sysup (issue 7, item 2): one `run` function per
//! cargo-fuzz target in `fuzz_targets/`, and the input encodings that the
//! targets and the seed generator (`examples/seed-corpus.rs`) share.
//!
//! | target | library code under test | oracle besides "no panic" |
//! |---|---|---|
//! | `patch_apply` | `PatchHeader::read`, section checks and decoders, `PatchReader` | a clean EOF means the output is exactly the header's to-tar |
//! | `manifest_parse` | `Manifest::parse` | a parsed MANIFEST is sorted, unique, safe, and renders back to itself |
//! | `index_verify` | `PublicKey::verify`, `Index::parse`, `update::plan` | a parsed INDEX renders to the same bytes; plans are chains |
//! | `dist_stage` | `sysup apply` of a dist (segmenter, member parser, stager, commit) | nothing outside the root changes; a refused apply leaves the root as it was |
//!
//! Checksums are walls a mutation fuzzer cannot climb, so the harnesses
//! recompute them (tar header checksums; a patch's header and section
//! SHA-256) in some modes — see each module. Nothing in the library is
//! switched off for fuzzing: every input a harness builds is one a hostile
//! party could build too.
//!
//! Invariants: a harness only writes inside its own per-process scratch
//! directory (`/dev/shm/fuzz-<target>-<pid>`, or under the temporary
//! directory when `/dev/shm` is missing); `dist_stage` never lets the dist's
//! `upgrade` step run (inputs that carry one are skipped before `apply`).

use std::path::{Path, PathBuf};

pub mod dist;
pub mod index;
pub mod manifest;
pub mod patch;
pub mod tarfix;

/// A scratch directory of this process for `target` (created on first use).
pub fn scratch(target: &str) -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let d = base.join(format!("fuzz-{target}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("create the fuzz scratch directory");
    d
}

/// Reads little-endian fields off the front of a fuzz input.
pub struct Fields<'a>(pub &'a [u8]);

impl<'a> Fields<'a> {
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    pub fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }
    pub fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    }
    pub fn u64(&mut self) -> Option<u64> {
        self.bytes(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    }
    /// A `u32` length, then that many bytes.
    pub fn chunk(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.bytes(n)
    }
    pub fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// Append a `u32` length and the bytes (the inverse of [`Fields::chunk`]).
pub fn put_chunk(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}
