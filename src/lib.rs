//! sysup: atomic binary-diff system updates (the contract: docs/design.md).
//!
//! The folders follow the pipeline:
//! - [`format`]: what both sides read and write — dist names ([`format::name`]),
//!   specs, MANIFEST, the DIST file, gzip and tar ([`format::gz`],
//!   [`format::archive`]) and the patch wire format ([`format::patch`]);
//! - [`build`]: a staged tree → a reproducible dist (build host);
//! - [`diff`]: two dists → a patch (build host);
//! - [`patch`]: the streaming applier, old tar in → new tar out (any host);
//! - [`host`]: a root and its state — stage, verify, commit, cleanup, and the
//!   operations apply, rollback, clean, status and verify as library calls;
//! - [`mirror`]: the INDEX, publishing, signatures, downloads and `update`;
//! - [`util`]: digests, stream hashing, atomic files, progress counters,
//!   read-ahead, interrupts.
//!
//! The `sysup` command line (clap, progress bars, man pages, the demo and its
//! fixture trees) is the binary's own module tree, not part of this library.

pub mod build;
pub mod diff;
pub mod error;
pub mod format;
pub mod host;
pub mod mirror;
pub mod patch;
pub mod util;

pub use error::{Error, Result};
