//! One bsdiff control: the unit both sides of a member's delta agree on —
//! the differ's matcher makes them ([`crate::diff::matcher`]), the
//! controls section carries them ([`super::record`]), the applier follows
//! them and reference prediction maps through them ([`super::xref`]).
//!
//! Invariant: a plain value with no rule of its own; where it may point is
//! checked by whoever reads it from a patch.

/// Copy `add` bytes of the old member's data from `old_pos` (absolute),
/// adding the diff bytes to them, then take `extra` new bytes as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ctrl {
    pub old_pos: u64,
    pub add: u64,
    pub extra: u64,
}
