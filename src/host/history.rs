//! The audit log `var/db/sysup/history`: one JSON object per line for every
//! apply, repair, rollback and clean — when, who, from, to, what changed,
//! and how it ended.
//!
//! Invariants: records are only ever appended (O_APPEND) and fsynced, never
//! rewritten; a torn line left by a crash mid-append is sealed by the next
//! append and skipped — and counted, so it is reported, never hidden — when
//! reading; a record carrying a transaction id already at the end of the log
//! is not appended twice (a re-run after a crash in cleanup); the log is
//! reached through the state directory's descriptor, never through a link
//! (state.rs).

use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};
use crate::host::state::State;

/// The log's file name in the state directory.
const NAME: &str = "history";

/// One history record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unix time.
    pub time: i64,
    /// Who ran it (user name, or uid).
    pub user: String,
    /// `install`, `upgrade`, `repair`, `rollback`, `clean`, `config-resolve`.
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
    /// Config files merged three ways (docs/config-merge.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_merged: Vec<String>,
    /// Config files kept as modified locally, new version in `<path>.sysupnew`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_kept: Vec<String>,
    /// Of `config_kept`: those with a conflicted merge in `<path>.sysupmerge`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_conflicted: Vec<String>,
    /// A `config-resolve` record: which file, and what was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<Resolution>,
}

/// How `sysup config resolve` settled a kept config file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// Root-relative path of the config file.
    pub path: String,
    /// `theirs`, `ours` or `merged`.
    pub took: String,
}

impl Event {
    /// A record of `action` on `name` by the current user, now: `ok`, with
    /// nothing changed or removed and no ids — a caller sets what differs
    /// (`Event { to, changed, ..Event::new(action, name) }`).
    pub fn new(action: impl Into<String>, name: impl Into<String>) -> Event {
        Event {
            time: now(),
            user: current_user(),
            action: action.into(),
            name: name.into(),
            from: None,
            to: None,
            changed: 0,
            removed: 0,
            result: "ok".into(),
            error: None,
            warning: None,
            txid: None,
            config_merged: vec![],
            config_kept: vec![],
            config_conflicted: vec![],
            resolved: None,
        }
    }
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
    crate::util::time::unix_now()
}

/// The log as read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Log {
    pub events: Vec<Event>,
    /// Lines that are not records (torn by a crash mid-append).
    pub damaged: usize,
}

/// Read every complete record, counting lines that are not.
pub fn read(state: &State) -> Result<Log> {
    Ok(parse(&state.read_file(NAME)?.unwrap_or_default()))
}

fn parse(bytes: &[u8]) -> Log {
    let mut log = Log::default();
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice(line) {
            Ok(e) => log.events.push(e),
            Err(_) => log.damaged += 1,
        }
    }
    log
}

/// Append a record and fsync it.
/// Writes: appends one line to the log (after a newline if it ends torn).
pub fn append(state: &State, event: &Event) -> Result<()> {
    let path = state.history_path();
    let mut f = state
        .open_file(NAME, libc::O_RDWR | libc::O_APPEND | libc::O_CREAT, 0o600)?
        .expect("O_CREAT");
    let mut existing = Vec::new();
    f.read_to_end(&mut existing).ctx("read history", &path)?;
    if let Some(tx) = &event.txid {
        if parse(&existing).events.last().and_then(|e| e.txid.as_ref()) == Some(tx) {
            return Ok(());
        }
    }
    let mut line = Vec::new();
    if !existing.is_empty() && existing.last() != Some(&b'\n') {
        line.push(b'\n'); // seal a torn line so it stays a single bad line
    }
    line.extend(serde_json::to_vec(event).expect("events serialize"));
    line.push(b'\n');
    crate::host::checkpoint::fault_write(&mut f, &line, "history-append")
        .ctx("append to history", &path)?;
    f.sync_data().ctx("fsync history", &path)
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
            ..Event::new("upgrade", "world")
        }
    }

    #[test]
    fn torn_lines_are_tolerated_and_sealed() {
        let d = tempfile::tempdir().unwrap();
        let s = State::open(d.path()).unwrap();
        let p = s.history_path();
        append(&s, &ev("a")).unwrap();
        // a crash mid-append leaves half a line
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        std::io::Write::write_all(&mut f, br#"{"time":2,"us"#).unwrap();
        let log = read(&s).unwrap();
        assert_eq!((log.events, log.damaged), (vec![ev("a")], 1));
        append(&s, &ev("b")).unwrap();
        // sealed: the next record is whole, the torn line still counted
        let log = read(&s).unwrap();
        assert_eq!((log.events, log.damaged), (vec![ev("a"), ev("b")], 1));
    }

    #[test]
    fn records_without_the_config_lists_still_parse() {
        let line = br#"{"time":1,"user":"root","action":"upgrade","name":"world","from":null,"to":null,"changed":0,"removed":0,"result":"ok"}"#;
        let log = parse(line);
        assert_eq!(log.damaged, 0);
        assert!(log.events[0].config_merged.is_empty() && log.events[0].resolved.is_none());
        // and empty lists are not written
        let text = serde_json::to_string(&log.events[0]).unwrap();
        assert!(!text.contains("config_"), "{text}");
    }

    #[test]
    fn the_same_transaction_is_recorded_once() {
        let d = tempfile::tempdir().unwrap();
        let s = State::open(d.path()).unwrap();
        append(&s, &ev("a")).unwrap();
        append(&s, &ev("a")).unwrap();
        append(&s, &ev("b")).unwrap();
        assert_eq!(read(&s).unwrap().events.len(), 2);
    }
}
