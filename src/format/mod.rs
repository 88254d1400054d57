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

/// Where sysup keeps a root's state, relative to the root (docs/design.md
/// §1): part of the contract, since no dist and no spec may name it, a path
/// inside it or a directory on its way.
pub const STATE_DIR: &str = "var/db/sysup";
