//! Where a kill lands: when to SIGKILL a run, and the phase of the apply
//! it hit, read from the journal as it grows.

use super::*;

/// What the journal said after a kill: the phase the kill hit.
pub(super) fn phase(root: &Path, target_id: &str) -> String {
    let state = root.join("var/db/sysup");
    let text = match fs::read(state.join("journal")) {
        Ok(t) => t,
        Err(_) => {
            let installed = fs::read(state.join("installed/world")).unwrap_or_default();
            let on_target = serde_json::from_slice::<serde_json::Value>(&installed)
                .ok()
                .and_then(|v| v["id"].as_str().map(|s| s == target_id))
                .unwrap_or(false);
            let downloading = fs::read_dir(state.join("download"))
                .map(|mut r| r.next().is_some())
                .unwrap_or(false);
            return if on_target {
                "done"
            } else if downloading {
                "download"
            } else {
                "check"
            }
            .into();
        }
    };
    let mut ops = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) {
            if let Some(op) = v["op"].as_str() {
                ops.push(op.to_string());
            }
        }
    }
    let has = |o: &str| ops.iter().any(|x| x == o);
    if has("recorded") {
        "cleanup"
    } else if has("committed") {
        "record"
    } else if has("staged") {
        "commit"
    } else if has("begin") {
        "staging"
    } else {
        "check"
    }
    .into()
}

/// Follows the journal as it grows (it is append-only), noting which record
/// kinds have appeared, without re-reading what it already saw.
#[derive(Default)]
pub(super) struct JournalWatch {
    offset: u64,
    at_line_start: bool,
    pub(super) seen: Vec<String>,
    existed: bool,
}

impl JournalWatch {
    /// New record kinds since the last call; `None` once the journal is gone
    /// (after it existed).
    pub(super) fn poll(&mut self, root: &Path) -> Option<Vec<String>> {
        let p = root.join("var/db/sysup/journal");
        let Ok(mut f) = fs::File::open(&p) else {
            return if self.existed { None } else { Some(Vec::new()) };
        };
        if !self.existed {
            self.existed = true;
            self.at_line_start = true;
        }
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len <= self.offset {
            return Some(Vec::new());
        }
        use std::io::Seek;
        let mut buf = Vec::new();
        let _ = f.seek(io::SeekFrom::Start(self.offset));
        let _ = f.read_to_end(&mut buf);
        let mut new = Vec::new();
        let mut start = self.at_line_start;
        for (i, &b) in buf.iter().enumerate() {
            if start {
                // a prefix names the record, even while it is being written
                for op in ["begin", "staged", "committed", "recorded"] {
                    let tag = format!("{{\"op\":\"{op}\"");
                    if buf[i..].starts_with(tag.as_bytes()) && !self.seen.iter().any(|s| s == op) {
                        self.seen.push(op.to_string());
                        new.push(op.to_string());
                    }
                }
            }
            start = b == b'\n';
        }
        self.at_line_start = start;
        self.offset += buf.len() as u64;
        Some(new)
    }
}

/// When to SIGKILL a run: after this much running time from its start, or
/// from the moment its journal holds the `staged` record (the commit point),
/// so that kills meant for the roll-forward land there however busy the
/// machine is. Written `1234` / `c1234` (ms) in reports and `--replay`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kill {
    FromStart(Duration),
    FromCommitPoint(Duration),
}

impl Kill {
    pub fn label(&self) -> String {
        match self {
            Kill::FromStart(d) => d.as_millis().to_string(),
            Kill::FromCommitPoint(d) => format!("c{}", d.as_millis()),
        }
    }
    pub fn parse(s: &str) -> Option<Kill> {
        match s.strip_prefix('c') {
            Some(ms) => ms
                .parse()
                .ok()
                .map(|m| Kill::FromCommitPoint(Duration::from_millis(m))),
            None => s
                .parse()
                .ok()
                .map(|m| Kill::FromStart(Duration::from_millis(m))),
        }
    }
}
