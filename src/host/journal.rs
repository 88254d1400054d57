//! The apply journal (`var/db/sysup/journal`): an append-only file of JSON
//! lines that says how far an apply got, so the next run can finish or undo
//! it.
//!
//! Records, in the order an apply writes them:
//! - `begin` (fsynced): a transaction id and its target; staging starts.
//! - `mkdir` / `dir` / `new` (fsynced): a directory created outside the
//!   dist's own entries / a directory that is about to receive staged names
//!   / a staged critical `.new` name; each durable before the change it
//!   describes, so even after a power loss the undo finds every staged name.
//! - `staged` (fsynced; the commit point): the complete commit plan, written
//!   only after every staged byte is durable and verified. From here on a
//!   re-run rolls *forward*; before it, a re-run removes what was staged.
//! - `committed`, `recorded`: the commit and record phases are done.
//!
//! Invariants:
//! - a torn last line (crash mid-append, or a write that failed half way)
//!   is ignored: it can only be a record whose action had not started yet;
//!   and it is cut off before anything is appended after it;
//! - every path a record holds that the finish or the undo acts on is
//!   relative to the root (directories and staged names) or to `bases/`
//!   (the new base's temporary), so a root mounted elsewhere (a rescue
//!   system's `--root /mnt/sysimage`, then the real boot) finishes the same
//!   apply; `begin`'s `inputs` are the files as the admin named them, only
//!   shown (`status` prints the command that resumes), never opened;
//! - `begin` carries the journal [`FORMAT`]; a journal of another format (an
//!   older sysup's, with absolute paths) is refused, never guessed at;
//! - the journal is reached through the state directory's descriptor,
//!   never through a link (state.rs).

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::format::name::DistId;
use crate::host::checkpoint::{fault, fault_write};
use crate::host::plan::Plan;
use crate::host::state::State;

/// The journal's file name in the state directory.
const NAME: &str = "journal";

/// The format of the records written here: 2 holds root-relative paths only.
pub const FORMAT: u32 = 2;

/// One journal line.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Record {
    Begin {
        /// [`FORMAT`]; missing (0) in an older sysup's journal.
        #[serde(default)]
        format: u32,
        txid: String,
        target: DistId,
        from: Option<DistId>,
        /// As named on the command line: shown, never opened.
        inputs: Vec<PathBuf>,
        /// The single input is the kept base of the target (a rollback or
        /// a repair from it).
        #[serde(default)]
        kept_base: bool,
        started_at: i64,
    },
    /// A directory sysup created (not a dist entry): removed if empty on abort.
    Mkdir {
        path: Vec<u8>,
    },
    /// A directory that holds staged names of this transaction, and its
    /// mtime before (restored when the staging is undone).
    Dir {
        path: Vec<u8>,
        mtime: i64,
    },
    /// A staged name without the transaction's prefix (a critical `.new`).
    New {
        path: Vec<u8>,
    },
    Staged {
        plan: Box<Plan>,
    },
    Committed,
    Recorded,
}

impl Record {
    /// Names of the failpoints before this record's write and its fsync.
    fn failpoints(&self) -> (&'static str, &'static str) {
        match self {
            Record::Begin { .. } => ("journal-begin", "journal-begin-fsync"),
            Record::Mkdir { .. } => ("journal-mkdir", "journal-mkdir-fsync"),
            Record::Dir { .. } => ("journal-dir", "journal-dir-fsync"),
            Record::New { .. } => ("journal-new", "journal-new-fsync"),
            Record::Staged { .. } => ("journal-staged", "journal-staged-fsync"),
            Record::Committed => ("journal-committed", "journal-committed-fsync"),
            Record::Recorded => ("journal-recorded", "journal-recorded-fsync"),
        }
    }
}

/// What a journal says, folded.
#[derive(Debug, Default)]
pub struct Status {
    pub txid: Option<String>,
    pub target: Option<DistId>,
    pub from: Option<DistId>,
    pub inputs: Vec<PathBuf>,
    pub kept_base: bool,
    pub started_at: i64,
    pub mkdirs: Vec<Vec<u8>>,
    pub dirs: Vec<(Vec<u8>, i64)>,
    pub news: Vec<Vec<u8>>,
    pub plan: Option<Plan>,
    pub committed: bool,
    pub recorded: bool,
}

/// An open journal being written.
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Start a new journal. The caller finished or undid any earlier one;
    /// what may remain is a journal of nothing (a crash before its first
    /// record was whole), which is emptied.
    /// Writes: creates (or empties) the journal file, fsyncs the state
    /// directory (a record fsynced into a file whose name is not durable yet
    /// would be lost with it).
    pub fn create(state: &State) -> Result<Journal> {
        let path = state.journal_path();
        let file = state
            .open_file(NAME, libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT, 0o600)?
            .expect("O_CREAT");
        file.set_len(0).ctx("create journal", &path)?;
        state.fd().sync().ctx("fsync directory", state.dir())?;
        Ok(Journal { file, path })
    }

    /// Reopen an existing journal to append. A record torn by a crash or a
    /// failed write (ENOSPC, EIO half way) is cut off first: left there, the
    /// next record would be glued to it, and that line — no longer the last,
    /// so no longer ignored — would make the whole journal unreadable.
    /// Writes: truncates a torn last line away (fsynced).
    pub fn reopen(state: &State) -> Result<Journal> {
        let path = state.journal_path();
        let Some(mut file) = state.open_file(NAME, libc::O_RDWR | libc::O_APPEND, 0)? else {
            return Err(Error::io(
                "open journal",
                &path,
                std::io::Error::from_raw_os_error(libc::ENOENT),
            ));
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ctx("read journal", &path)?;
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if whole < bytes.len() {
            file.set_len(whole as u64)
                .and_then(|()| file.sync_data())
                .ctx("cut the torn record off journal", &path)?;
        }
        Ok(Journal { file, path })
    }

    /// Append a record; with `durable`, fsync before returning.
    pub fn append(&mut self, rec: &Record, durable: bool) -> Result<()> {
        let mut line = serde_json::to_vec(rec).expect("journal records serialize");
        line.push(b'\n');
        let (fp_write, fp_sync) = rec.failpoints();
        fault_write(&mut self.file, &line, fp_write).ctx("write journal", &self.path)?;
        if durable {
            fault(fp_sync)
                .and_then(|()| self.file.sync_data())
                .ctx("fsync journal", &self.path)?;
        }
        Ok(())
    }

    /// Read and fold a journal; `None` when there is none.
    pub fn load(state: &State) -> Result<Option<Status>> {
        let path = state.journal_path();
        let Some(bytes) = state.read_file(NAME)? else {
            return Ok(None);
        };
        let mut st = Status::default();
        let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        let last = lines.len().saturating_sub(1);
        for (i, line) in lines.iter().enumerate() {
            if line.is_empty() {
                continue;
            }
            let rec: Record = match serde_json::from_slice(line) {
                Ok(r) => r,
                // a torn final line: its action never started
                Err(_) if i == last => break,
                Err(e) => {
                    return Err(Error::Metadata {
                        what: "journal",
                        path,
                        reason: format!("line {}: {e}", i + 1),
                    })
                }
            };
            match rec {
                Record::Begin { format, .. } if format != FORMAT => {
                    return Err(Error::Refused(format!(
                        "'{}' is an interrupted apply journal of format {format}, written by \
                         another version of sysup (this one reads format {FORMAT}); finish it \
                         with that version, or check the root and remove the journal",
                        path.display()
                    )))
                }
                Record::Begin {
                    format: _,
                    txid,
                    target,
                    from,
                    inputs,
                    kept_base,
                    started_at,
                } => {
                    st.txid = Some(txid);
                    st.target = Some(target);
                    st.from = from;
                    st.inputs = inputs;
                    st.kept_base = kept_base;
                    st.started_at = started_at;
                }
                Record::Mkdir { path } => st.mkdirs.push(path),
                Record::Dir { path, mtime } => st.dirs.push((path, mtime)),
                Record::New { path } => st.news.push(path),
                Record::Staged { plan } => st.plan = Some(*plan),
                Record::Committed => st.committed = true,
                Record::Recorded => st.recorded = true,
            }
        }
        Ok(Some(st))
    }

    /// Remove the journal and make that durable.
    /// Writes: unlinks the journal, fsyncs its directory.
    pub fn remove(state: &State) -> Result<()> {
        state.remove_file(NAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    #[test]
    fn a_torn_record_is_cut_off_before_the_next_append() {
        // Without the cut, a record torn by a failed write gets the next
        // one glued to it, and the journal becomes unreadable.
        let d = tempfile::tempdir().unwrap();
        let s = State::open(d.path()).unwrap();
        let p = s.journal_path();
        let mut j = Journal::create(&s).unwrap();
        j.append(&Record::Committed, true).unwrap();
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        std::io::Write::write_all(&mut f, br#"{"op":"reco"#).unwrap();
        assert!(Journal::load(&s).unwrap().unwrap().committed);
        Journal::reopen(&s)
            .unwrap()
            .append(&Record::Recorded, true)
            .unwrap();
        let st = Journal::load(&s).unwrap().unwrap();
        assert!(st.committed && st.recorded);
        // and create empties a journal of nothing
        std::fs::write(&p, br#"{"op":"beg"#).unwrap();
        Journal::create(&s).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"");
    }

    #[test]
    fn a_journal_of_an_older_format_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let s = State::open(d.path()).unwrap();
        std::fs::write(
            s.journal_path(),
            concat!(
                r#"{"op":"begin","txid":"ab","target":"world-2-20260102","from":null,"#,
                r#""inputs":["/x/world-2-20260102.tar.gz"],"started_at":1}"#,
                "\n"
            ),
        )
        .unwrap();
        let e = Journal::load(&s).unwrap_err().to_string();
        assert!(e.contains("journal of format 0"), "{e}");
    }
}
