//! The restart report (docs/monitoring.md): what still runs old code after
//! an apply — sysup never restarts anything, it says what needs it.
//!
//! - **processes**: every process that executes or maps a file under the
//!   root that is no longer the installed one ([`scan`]), kept only where
//!   that path is one sysup ships or shipped — in a MANIFEST of a kept base
//!   of an installed name (the installed revision and the ones before it),
//!   or removed by the apply reporting — so the admin's own deleted files
//!   (`/tmp`, `/dev/shm`, `memfd:`) are never listed; with its systemd
//!   unit where its cgroup names one;
//! - **reboot**: needed while a kernel dist (`kernel-<CONF>`) was installed
//!   after this machine booted (sysup cannot tell which kernel a root boots,
//!   so a newer install than the boot is taken as not running yet), and
//!   while a process maps an old copy of a critical file (the C library,
//!   the dynamic loader: nearly every process maps them and PID 1 is among
//!   them, so restarting them all is a reboot in all but name).
//!
//! Invariants: read-only, and it never fails — whatever cannot be read
//! (`/proc`, a base, the boot time) becomes a note, so an apply is never
//! failed by its report. The same function serves the apply's report and
//! `sysup status`, which recomputes it live: once a process is restarted,
//! it is no longer listed.

mod scan;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Serialize;

use crate::host::state::{Installed, State};

pub use scan::unit_of;

/// What needs a restart, or a reboot, for the installed files to run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Restart {
    pub reboot_needed: bool,
    /// Why, one sentence each.
    pub reboot_reasons: Vec<String>,
    /// By pid.
    pub processes: Vec<Process>,
    /// What could not be checked.
    pub notes: Vec<String>,
}

/// A process running old code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Process {
    pub pid: u32,
    pub comm: String,
    /// Its systemd unit (`nginx.service`), if its cgroup names one.
    pub unit: Option<String>,
    /// The replaced or removed files it executes or maps, root-relative, sorted.
    pub files: Vec<String>,
}

/// The restart report of the root `state` belongs to, now; `removed` are
/// root-relative paths an apply just removed (the kept bases may not ship
/// them any more). Read-only; never fails (see the module doc).
pub fn report(state: &State, removed: &[String]) -> Restart {
    let mut out = Restart::default();
    let installed = match state.installed_all() {
        Ok(i) => i,
        Err(e) => {
            out.notes
                .push(format!("could not read what is installed: {e}"));
            vec![]
        }
    };
    kernel_reasons(&installed, Path::new("/proc/stat"), &mut out);
    match std::fs::canonicalize(state.root()) {
        Ok(root) => {
            let found = scan::scan(Path::new("/proc"), &root);
            out.notes.extend(found.notes);
            if !found.procs.is_empty() {
                let shipped = shipped(state, &installed, removed, &mut out.notes);
                attribute(found.procs, &shipped, &mut out);
            }
        }
        Err(e) => out.notes.push(format!(
            "could not resolve {}: {e}; no process was checked",
            state.root().display()
        )),
    }
    out.reboot_needed = !out.reboot_reasons.is_empty();
    out
}

/// A reboot reason for each kernel dist installed after the boot.
fn kernel_reasons(installed: &[Installed], proc_stat: &Path, out: &mut Restart) {
    let kernels: Vec<&Installed> = installed.iter().filter(|i| i.id.name.is_kernel()).collect();
    if kernels.is_empty() {
        return;
    }
    let Some(boot) = boot_time(proc_stat) else {
        out.notes.push(format!(
            "could not read the boot time from {}: whether a kernel dist waits for a reboot is unknown",
            proc_stat.display()
        ));
        return;
    };
    for k in kernels.into_iter().filter(|k| k.installed_at >= boot) {
        out.reboot_reasons.push(format!(
            "{} was installed after this system booted: reboot to run it",
            k.id
        ));
    }
}

/// The `btime` line of `/proc/stat`: when the machine booted (Unix time).
fn boot_time(proc_stat: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(proc_stat).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Paths sysup ships or shipped: every non-directory entry of every kept
/// base of the installed names (value: flagged critical in any), and
/// `removed`. A base that cannot be read is noted and left out.
fn shipped(
    state: &State,
    installed: &[Installed],
    removed: &[String],
    notes: &mut Vec<String>,
) -> HashMap<Vec<u8>, bool> {
    let mut out: HashMap<Vec<u8>, bool> = HashMap::new();
    for i in installed {
        let kept = match state.bases(&i.id.name) {
            Ok(k) => k,
            Err(e) => {
                notes.push(format!(
                    "could not list the kept bases of {}: {e}",
                    i.id.name
                ));
                continue;
            }
        };
        for b in kept {
            match state.base_metadata(&b.id) {
                Ok(m) => {
                    for e in m.manifest.entries() {
                        if e.kind != crate::format::manifest::Kind::Dir {
                            *out.entry(e.path.clone()).or_default() |= e.critical;
                        }
                    }
                }
                Err(e) => notes.push(format!(
                    "could not read the MANIFEST of {}: {e}; files only it ships are not checked",
                    b.id
                )),
            }
        }
    }
    for r in removed {
        out.entry(r.as_bytes().to_vec()).or_default();
    }
    out
}

/// Keep the processes' files that sysup ships; a critical one still mapped
/// is a reboot reason.
fn attribute(procs: Vec<scan::Seen>, shipped: &HashMap<Vec<u8>, bool>, out: &mut Restart) {
    // critical path → pids still mapping an old copy
    let mut critical: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for p in procs {
        let files: Vec<&Vec<u8>> = p
            .files
            .iter()
            .filter(|f| shipped.contains_key(*f))
            .collect();
        if files.is_empty() {
            continue;
        }
        for f in files.iter().filter(|f| shipped[**f]) {
            *critical.entry((*f).clone()).or_default() += 1;
        }
        out.processes.push(Process {
            pid: p.pid,
            comm: p.comm,
            unit: p.unit,
            files: files
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect(),
        });
    }
    for (path, n) in critical {
        out.reboot_reasons.push(format!(
            "{}, a critical file, was replaced and {n} process{} still map{} the old one: restart them all, or reboot",
            String::from_utf8_lossy(&path),
            if n == 1 { "" } else { "es" },
            if n == 1 { "s" } else { "" },
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn seen(pid: u32, files: &[&str]) -> scan::Seen {
        scan::Seen {
            pid,
            comm: "x".into(),
            unit: None,
            files: files
                .iter()
                .map(|f| f.as_bytes().to_vec())
                .collect::<BTreeSet<_>>(),
        }
    }

    #[test]
    fn only_shipped_files_count_and_critical_ones_need_a_reboot() {
        let shipped = HashMap::from([
            (b"usr/bin/a".to_vec(), false),
            (b"usr/lib/libc.so.6".to_vec(), true),
        ]);
        let mut out = Restart::default();
        attribute(
            vec![
                seen(1, &["usr/bin/a", "tmp/scratch"]),
                seen(2, &["dev/shm/x"]),
                seen(3, &["usr/lib/libc.so.6"]),
                seen(4, &["usr/lib/libc.so.6"]),
            ],
            &shipped,
            &mut out,
        );
        let pids: Vec<u32> = out.processes.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [1, 3, 4]);
        assert_eq!(out.processes[0].files, ["usr/bin/a"]);
        assert_eq!(out.reboot_reasons.len(), 1, "{:?}", out.reboot_reasons);
        assert!(out.reboot_reasons[0].contains("usr/lib/libc.so.6, a critical file"));
        assert!(out.reboot_reasons[0].contains("2 processes still map the old one"));
    }

    #[test]
    fn boot_time_from_proc_stat() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("stat");
        std::fs::write(&p, "cpu 1 2 3\nbtime 1700000000\nprocesses 9\n").unwrap();
        assert_eq!(boot_time(&p), Some(1_700_000_000));
        std::fs::write(&p, "cpu 1 2 3\n").unwrap();
        assert_eq!(boot_time(&p), None);
        assert!(boot_time(Path::new("/proc/stat")).is_some());
    }
}
