//! Binary patches between uncompressed dist tars (DESIGN §3): the patch
//! engine, build side and host side.
//!
//! Making a patch ([`diff_dists`]): [`scan`] (gunzip + segment to temp files)
//! → [`pairing`] (same path, version-stripped name, identical content) →
//! diff tasks ([`matcher`], bsdiff on a suffix array, big members in windows
//! placed by [`align`], under a memory budget in [`schedule`]) → records ([`record`]) into three sections ([`section`]) →
//! header ([`format`]) → the file, renamed into place ([`generate`]).
//!
//! Applying one ([`PatchReader`], [`apply`]): old tar forward in, new tar
//! forward out, old members kept only as the retention plan says
//! ([`retain`]), every input and output byte hashed and checked against the
//! header. Chaining is reader over reader:
//!
//! ```no_run
//! # use sysup::delta::PatchReader;
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

pub mod align;
pub mod apply;
pub mod format;
pub mod generate;
pub mod hashing;
pub mod held;
pub mod matcher;
pub mod pairing;
pub mod record;
pub mod regz;
pub mod retain;
pub mod scan;
pub mod schedule;
pub mod section;
pub mod zeros;

pub use apply::{apply, ApplyReport, PatchReader};
pub use format::PatchHeader;
pub use generate::{diff_dists, DiffOptions, DiffReport};
