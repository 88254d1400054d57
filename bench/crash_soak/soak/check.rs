//! After each operation finishes: the root holds the target tree exactly
//! (against the snapshot of the source tree the dist was built from, not
//! anything sysup wrote), nothing temporary is left in it or in sysup's
//! state, and the history holds each finished transaction once.

use super::*;

impl Soak<'_> {
    /// The root holds `target` exactly, and nothing temporary is left.
    pub fn check(&self, target: &Side) -> Result<(), String> {
        let want = &target.tree;
        let keep_var_db = want.contains_key(b"var/db".as_slice());
        let skip = |rel: &[u8]| rel == b"var/db/sysup" || (!keep_var_db && rel == b"var/db");
        let got = snapshot(&self.root, &skip).map_err(|e| format!("snapshot root: {e}"))?;
        let d = diff(want, &got);
        if !d.is_empty() {
            let n = d.len();
            let shown: Vec<String> = d.into_iter().take(12).collect();
            return Err(format!(
                "the root is not {} ({n} differences):\n  {}",
                target.id,
                shown.join("\n  ")
            ));
        }
        let state = self.root.join("var/db/sysup");
        let mut left = Vec::new();
        let list = |sub: &str| -> Vec<String> {
            fs::read_dir(state.join(sub))
                .map(|r| {
                    r.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        for name in list("") {
            // `stat-<name>`: the stat cache an apply records (host/statcache.rs)
            let ok = matches!(
                name.as_str(),
                "lock" | "installed" | "bases" | "download" | "history" | "mirror"
            ) || name.starts_with("stat-");
            if !ok {
                left.push(name); // journal, upgrade.<txid>, temporaries
            }
        }
        for name in list("installed") {
            if name != "world" {
                left.push(format!("installed/{name}"));
            }
        }
        let bases = list("bases");
        for name in &bases {
            let known = [&self.pair.a.id, &self.pair.b.id]
                .iter()
                .any(|id| *name == format!("{id}.tar.gz"));
            if !known {
                left.push(format!("bases/{name}"));
            }
        }
        for name in list("download") {
            left.push(format!("download/{name}"));
        }
        for name in list("mirror") {
            // the accepted serial per signing key (`serial.<key id>`)
            if !name.starts_with("serial.") {
                left.push(format!("mirror/{name}"));
            }
        }
        if !left.is_empty() {
            return Err(format!("left in var/db/sysup: {left:?}"));
        }
        // the lock is free: no process holds it
        if let Ok(f) = fs::File::open(state.join("lock")) {
            // SAFETY: a valid descriptor.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                return Err("the lock is still held".into());
            }
        }
        let inst: serde_json::Value =
            serde_json::from_slice(&fs::read(state.join("installed/world")).unwrap_or_default())
                .map_err(|e| format!("installed/world: {e}"))?;
        if inst["id"].as_str() != Some(target.id.as_str()) {
            return Err(format!(
                "installed/world says {}, not {}",
                inst["id"], target.id
            ));
        }
        let base = state.join(format!("bases/{}.tar.gz", target.id));
        let sha = gunzip_sha256(&base).map_err(|e| format!("{}: {e}", base.display()))?;
        if sha != target.tar_sha256 {
            return Err(format!(
                "{} does not gunzip to the dist's tar",
                base.display()
            ));
        }
        // One `ok` record per finished op: none lost, none repeated (a re-run
        // after a kill in cleanup must not append its txid again). A run
        // killed after it finished is a repair when run again: not counted.
        let hist = fs::read_to_string(state.join("history")).unwrap_or_default();
        let oks: Vec<serde_json::Value> = hist
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["result"] == "ok" && v["action"] != "repair")
            .collect();
        if oks.len() != self.history_ok {
            return Err(format!(
                "history holds {} ok records, {} expected (one per finished op)",
                oks.len(),
                self.history_ok
            ));
        }
        if let Some(w) = oks
            .windows(2)
            .find(|w| w[0]["txid"].is_string() && w[0]["txid"] == w[1]["txid"])
        {
            return Err(format!("history repeats transaction {}", w[0]["txid"]));
        }
        Ok(())
    }
}
