//! The operations a soak runs, and kills, on its root.

/// An operation the soak runs (and kills) on the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `sysup apply --root R A.tar.gz` on an empty root.
    Install,
    /// `sysup apply --root R A_B.patch` (A → B).
    ApplyPatch,
    /// `sysup update` from the mirror (A → B, by the patch).
    UpdateForward,
    /// `sysup rollback` (B → A, from the kept base).
    Rollback,
    /// `sysup apply --root R A.tar.gz` over B.
    ApplyDistA,
    /// `sysup update --to A` from the mirror (B → A, the full dist).
    UpdateBack,
}

impl Op {
    pub const ALL: [Op; 6] = [
        Op::Install,
        Op::ApplyPatch,
        Op::UpdateForward,
        Op::Rollback,
        Op::ApplyDistA,
        Op::UpdateBack,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Op::Install => "install",
            Op::ApplyPatch => "apply-patch",
            Op::UpdateForward => "update",
            Op::Rollback => "rollback",
            Op::ApplyDistA => "apply-dist",
            Op::UpdateBack => "update-back",
        }
    }
    pub fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.name() == s)
    }
    /// Whether the op ends on B (else on A).
    pub fn to_b(self) -> bool {
        matches!(self, Op::ApplyPatch | Op::UpdateForward)
    }
    pub(super) fn needs_mirror(self) -> bool {
        matches!(self, Op::UpdateForward | Op::UpdateBack)
    }
}
