//! The streaming applier (docs/design.md §3): old tar forward in, new tar
//! forward out, old members kept only as the retention plan says
//! ([`retain`]), output held back behind re-gzipped members ([`held`]),
//! every input and output byte hashed and checked against the header.
//! Chaining is reader over reader:
//!
//! ```no_run
//! # use sysup::patch::PatchReader;
//! # use std::path::Path;
//! # fn f(base: impl std::io::Read) -> sysup::Result<()> {
//! let step1 = PatchReader::open(Path::new("world-1-20260101_2-20260102.patch"), base)?;
//! let mut step2 = PatchReader::open(Path::new("world-2-20260102_3-20260103.patch"), step1)?;
//! std::io::copy(&mut step2, &mut std::io::sink()).unwrap(); // EOF only after both verified
//! let report = step2.finish()?;
//! # Ok(()) }
//! ```
//!
//! Invariant: a patch's result is the new tar byte for byte, or an error —
//! never a plausible-looking wrong tar reported as success.

pub mod apply;
pub mod held;
pub mod retain;

pub use apply::{apply, apply_reader, ApplyReport, PatchReader};
