//! `sysup status --format prometheus`: the status as Prometheus text
//! exposition (format 0.0.4), for node_exporter's textfile collector
//! (docs/monitoring.md says how to write it atomically).
//!
//! Every sample carries a `root` label, so several roots of one host can be
//! exported side by side. Invariants of the text (checked line by line by
//! tests/suite/status_prometheus.rs): each family is one `# HELP` then one
//! `# TYPE` line followed by its samples, all together; names match
//! `[a-zA-Z_:][a-zA-Z0-9_:]*`; label values escape `\`, `"` and newline.

use std::collections::BTreeMap;
use std::fmt::Write;

use sysup::host::history::Log;
use sysup::host::status::Status;

/// One metric family: name, help, and samples (labels, value).
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, i64)>,
}

/// A label value as the text format wants it.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// History records that are applies (not `clean`), last one per dist name.
fn last_applies(log: &Log) -> BTreeMap<&str, &sysup::host::history::Event> {
    let mut last = BTreeMap::new();
    for e in log
        .events
        .iter()
        .filter(|e| e.action != "clean" && !e.name.is_empty())
    {
        last.insert(e.name.as_str(), e);
    }
    last
}

/// The families of `s` and its history `log`.
fn families(s: &Status, log: &Log) -> Vec<Family> {
    let root = s.root.to_string_lossy().into_owned();
    let with_root = |more: Vec<(&'static str, String)>| {
        let mut l = vec![("root", root.clone())];
        l.extend(more);
        l
    };
    let per_name = |f: &dyn Fn(&sysup::host::status::NameStatus) -> i64| {
        s.names
            .iter()
            .map(|n| {
                (
                    with_root(vec![("name", n.installed.id.name.to_string())]),
                    f(n),
                )
            })
            .collect()
    };
    let last = last_applies(log);
    let last_of = |f: &dyn Fn(&sysup::host::history::Event) -> i64| {
        last.iter()
            .map(|(name, e)| (with_root(vec![("name", name.to_string())]), f(e)))
            .collect()
    };
    vec![
        Family {
            name: "sysup_installed_info",
            help: "The dist id installed, per dist name (always 1).",
            samples: s
                .names
                .iter()
                .map(|n| {
                    let id = &n.installed.id;
                    (
                        with_root(vec![("name", id.name.to_string()), ("id", id.to_string())]),
                        1,
                    )
                })
                .collect(),
        },
        Family {
            name: "sysup_installed_timestamp_seconds",
            help: "When the apply that installed the installed id finished (Unix time).",
            samples: per_name(&|n| n.installed.installed_at),
        },
        Family {
            name: "sysup_last_apply_timestamp_seconds",
            help: "When the last apply of a dist name (install, upgrade, repair, rollback) ended, from the history (Unix time).",
            samples: last_of(&|e| e.time),
        },
        Family {
            name: "sysup_last_apply_success",
            help: "Whether the last apply of a dist name ended ok (1) or in an error or an interrupt (0).",
            samples: last_of(&|e| i64::from(e.result == "ok")),
        },
        Family {
            name: "sysup_pending_apply",
            help: "An apply is running or was interrupted and waits to be finished (1), or none (0).",
            samples: vec![(with_root(vec![]), i64::from(s.pending.is_some()))],
        },
        Family {
            name: "sysup_config_pending",
            help: "Config files awaiting the admin: a `.sysupnew` beside them until `sysup config resolve`.",
            samples: vec![(with_root(vec![]), s.config_pending.len() as i64)],
        },
        Family {
            name: "sysup_restart_processes",
            help: "Processes that execute or map a file an apply replaced or removed: they run old code until restarted.",
            samples: vec![(with_root(vec![]), s.restart.processes.len() as i64)],
        },
        Family {
            name: "sysup_reboot_needed",
            help: "A reboot is needed: a kernel dist installed after the boot, or a critical library still mapped in its old version (1), or not (0).",
            samples: vec![(with_root(vec![]), i64::from(s.restart.reboot_needed))],
        },
        Family {
            name: "sysup_history_damaged_lines",
            help: "Lines of the history log that are not records (torn by a crash mid-append).",
            samples: vec![(with_root(vec![]), log.damaged as i64)],
        },
    ]
}

/// The text exposition of `s` and its history `log`.
pub fn render(s: &Status, log: &Log) -> String {
    let mut out = String::new();
    for f in families(s, log) {
        // HELP text escapes `\` and newline; ours has neither, kept honest anyway
        let help = f.help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(out, "# HELP {} {help}", f.name);
        let _ = writeln!(out, "# TYPE {} gauge", f.name);
        for (labels, value) in f.samples {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let _ = writeln!(out, "{}{{{}}} {value}", f.name, labels.join(","));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(escape_label("/plain"), "/plain");
    }
}
