//! The audit log `var/db/sysup/history`: one JSON object per line for every
//! apply, repair, rollback and clean — when, who, from, to, what changed,
//! and how it ended.
//!
//! Invariants: records are only ever appended (O_APPEND) and fsynced, never
//! rewritten; a torn line left by a crash mid-append is sealed by the next
//! append and skipped — and counted, so it is reported, never hidden — when
//! reading; a record carrying a transaction id already at the end of the log
//! is not appended twice (a re-run after a crash in cleanup).

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// One history record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unix time.
    pub time: i64,
    /// Who ran it (user name, or uid).
    pub user: String,
    /// `install`, `upgrade`, `repair`, `rollback`, `clean`.
    pub action: String,
    /// Dist name (empty for clean of all names).
    pub name: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub changed: u64,
    pub removed: u64,
    /// `ok` or `error`.
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What an `ok` run left undone that the admin should know (an upgrade
    /// step not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txid: Option<String>,
}

/// The current user's name, for records.
pub fn current_user() -> String {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

/// Unix time now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The log as read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Log {
    pub events: Vec<Event>,
    /// Lines that are not records (torn by a crash mid-append).
    pub damaged: usize,
}

/// Read every complete record, counting lines that are not.
pub fn read(path: &Path) -> Result<Log> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Log::default()),
        Err(e) => return Err(Error::io("read history", path, e)),
    };
    let mut log = Log::default();
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice(line) {
            Ok(e) => log.events.push(e),
            Err(_) => log.damaged += 1,
        }
    }
    Ok(log)
}

/// Append a record and fsync it.
/// Writes: appends one line to `path` (after a newline if the file ends torn).
pub fn append(path: &Path, event: &Event) -> Result<()> {
    let existing = std::fs::read(path).unwrap_or_default();
    if let Some(tx) = &event.txid {
        if read(path)?.events.last().and_then(|e| e.txid.as_ref()) == Some(tx) {
            return Ok(());
        }
    }
    let mut line = Vec::new();
    if !existing.is_empty() && existing.last() != Some(&b'\n') {
        line.push(b'\n'); // seal a torn line so it stays a single bad line
    }
    line.extend(serde_json::to_vec(event).expect("events serialize"));
    line.push(b'\n');
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .ctx("open history", path)?;
    crate::host::checkpoint::fault_write(&mut f, &line, "history-append")
        .ctx("append to history", path)?;
    f.sync_data().ctx("fsync history", path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(tx: &str) -> Event {
        Event {
            time: 1,
            user: "root".into(),
            action: "upgrade".into(),
            name: "world".into(),
            from: Some("world-1-20260101".into()),
            to: Some("world-2-20260102".into()),
            changed: 3,
            removed: 1,
            result: "ok".into(),
            error: None,
            warning: None,
            txid: Some(tx.into()),
        }
    }

    #[test]
    fn torn_lines_are_tolerated_and_sealed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("history");
        append(&p, &ev("a")).unwrap();
        // a crash mid-append leaves half a line
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        std::io::Write::write_all(&mut f, br#"{"time":2,"us"#).unwrap();
        let log = read(&p).unwrap();
        assert_eq!((log.events, log.damaged), (vec![ev("a")], 1));
        append(&p, &ev("b")).unwrap();
        // sealed: the next record is whole, the torn line still counted
        let log = read(&p).unwrap();
        assert_eq!((log.events, log.damaged), (vec![ev("a"), ev("b")], 1));
    }

    #[test]
    fn the_same_transaction_is_recorded_once() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("history");
        append(&p, &ev("a")).unwrap();
        append(&p, &ev("a")).unwrap();
        append(&p, &ev("b")).unwrap();
        assert_eq!(read(&p).unwrap().events.len(), 2);
    }
}
