//! The formats both sides share, each in one module: dist and patch file
//! names ([`name`]), build specs ([`spec`]), the MANIFEST ([`manifest`]) and
//! DIST metadata ([`dist`]) a dist carries, gzip ([`gz`]) and tar
//! ([`archive`]) framing, and the patch wire format ([`patch`]).
//!
//! Invariant: a parser here refuses what it does not understand with an
//! error naming the input and the cause; nothing here touches a root.

pub mod archive;
pub mod dist;
pub mod gz;
pub mod manifest;
pub mod name;
pub mod patch;
pub mod spec;
