//! What a soak records: every attempt, every failure with what replays it,
//! and the per-operation calibration of kill delays.

use super::*;

/// One run of a command within an op.
#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    /// When it was to be killed (`1234`, or `c1234` after the commit
    /// point; none: let it finish).
    pub kill: Option<String>,
    /// `killed` (and the phase it hit) or `exit <code>`.
    pub outcome: String,
    pub elapsed_ms: u64,
}

/// A failure, with what is needed to replay it.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub seed: u64,
    pub cycle: usize,
    pub op: String,
    pub attempts: Vec<Attempt>,
    pub reason: String,
    /// Arguments that replay this op with the same kill delays.
    pub replay: String,
}

/// Timing of an uninterrupted run of an op.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Calibration {
    pub total_ms: u64,
    /// When the journal first held each record kind (`begin`, `staged`,
    /// `committed`, `recorded`) and when it was dropped (`dropped`).
    pub phases_ms: BTreeMap<String, u64>,
}

/// What a soak did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub pair: String,
    pub seed: u64,
    pub target_kills: usize,
    /// Runs ended by SIGKILL.
    pub kills: usize,
    /// Kills by the phase the journal showed afterwards.
    pub kills_by_phase: BTreeMap<String, usize>,
    pub kills_by_op: BTreeMap<String, usize>,
    /// Runs meant to be killed that finished first.
    pub finished_before_kill: usize,
    /// Rollbacks killed after they finished, whose re-run was refused with
    /// "the last rollback finished" (expected, see docs/crash-safety.md).
    pub rollbacks_already_done: usize,
    /// Ops run (each ends with a run that finishes, then the checks).
    pub ops: usize,
    pub ops_by_op: BTreeMap<String, usize>,
    /// Ops whose root then matched the target with nothing left over.
    pub convergences: usize,
    pub failures: Vec<Failure>,
    pub calibration: BTreeMap<String, Calibration>,
    pub wall_s: f64,
}

impl Report {
    /// A few lines for people.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "crash soak on the {} pair, seed {}: {} kills ({} asked), {} ops, {} convergences, {} failures, {} runs finished before their kill, {:.0} s\n",
            self.pair,
            self.seed,
            self.kills,
            self.target_kills,
            self.ops,
            self.convergences,
            self.failures.len(),
            self.finished_before_kill,
            self.wall_s
        );
        s += &format!("  kills by phase: {:?}\n", self.kills_by_phase);
        s += &format!("  kills by op:    {:?}\n", self.kills_by_op);
        if self.rollbacks_already_done > 0 {
            s += &format!(
                "  rollbacks killed after finishing, re-run refused as done: {}\n",
                self.rollbacks_already_done
            );
        }
        s += &format!("  ops:            {:?}\n", self.ops_by_op);
        for (op, c) in &self.calibration {
            s += &format!(
                "  uninterrupted {op}: {} ms, journal {:?}\n",
                c.total_ms, c.phases_ms
            );
        }
        for f in &self.failures {
            s += &format!(
                "  FAILURE cycle {} op {} seed {}: {}\n    attempts: {:?}\n    replay: {}\n",
                f.cycle, f.op, f.seed, f.reason, f.attempts, f.replay
            );
        }
        s
    }
}
