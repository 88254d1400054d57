//! The patch wire format (docs/patch-format.md), shared by the generator
//! ([`crate::diff`]) and the applier ([`crate::patch`]) so both speak exactly
//! one encoding: the [`header`], the records of the controls section
//! ([`record`], each member's bsdiff [`ctrl`]s), the compressed body [`section`]s, zero-run coding of the diff
//! section ([`zeros`]), the re-gzip recipe of a gzipped member ([`regz`])
//! and the re-encode recipe of an xz or zstd member or a zip archive
//! ([`recode`], with [`rexz`], [`rezstd`] and [`rezip`]), all deflating
//! through C zlib ([`zlib`]).

pub mod ctrl;
pub mod header;
pub mod recode;
pub mod record;
pub mod regz;
pub mod rexz;
pub mod rezip;
pub mod rezstd;
pub mod section;
pub mod xref;
pub mod zeros;
pub mod zlib;

pub use header::PatchHeader;
