//! Making a patch between two dists of one name (docs/design.md §3), on the
//! build host.
//!
//! [`diff_dists`]: [`scan`] (gunzip + segment to temp files) → [`pairing`]
//! (same path, version-stripped name, identical content) → diff tasks
//! ([`matcher`], bsdiff on a suffix array, big members in windows placed by
//! [`align`], under a memory budget in [`schedule`]) → records and sections
//! of the wire format ([`crate::format::patch`]) → the file, renamed into
//! place ([`generate`]).
//!
//! Invariant: the patch's result is the new tar byte for byte; the header
//! carries that tar's size, MD5 and SHA-256.

pub mod align;
pub mod generate;
pub mod matcher;
pub mod pairing;
pub mod scan;
pub mod schedule;
pub mod version_key;

pub use generate::{diff_dists, DiffOptions, DiffReport};
