//! Threat: a dist whose `OBSOLETE` list names sysup's own state — the
//! history, the new base, the installed record, the state directory or a
//! directory on its way — so that cleanup removes them (history gone, base
//! gone, `status` saying nothing is installed). Refused before anything is
//! staged, naming the entry; the root unchanged, nothing written outside it.

use crate::common;
use crate::hostile_support;

use common::*;
use hostile_support::*;

/// Dist world-2 (the small world again) with `OBSOLETE` listing `paths`.
fn with_obsolete(s: &Site, paths: &[&str]) -> std::path::PathBuf {
    let entries: Vec<_> = small_world().into_iter().map(|c| c.entry).collect();
    let n = entries.len();
    let mut tar = head("world-2-20260102", &manifest_of(entries), n);
    let list: String = paths.iter().map(|p| format!("{p}\n")).collect();
    tar.extend(member(
        &Hdr::new(b".sysup/OBSOLETE", b'0', list.len() as u64),
        list.as_bytes(),
    ));
    tar.extend(small_world_members());
    tar.extend(end());
    gz_tar(s.dir(), "world-2-20260102.tar.gz", &tar)
}

#[test]
fn obsolete_entries_naming_sysups_state_are_refused() {
    let cases: [&[&str]; 4] = [
        &[
            "var/db/sysup/history",
            "var/db/sysup/bases/world-2-20260102.tar.gz",
            "var/db/sysup/installed/world",
        ],
        &["var/db/sysup/installed/world"],
        &["var/db/sysup"],
        &["var/db"],
    ];
    for paths in cases {
        let s = Site::new();
        let dist = with_obsolete(&s, paths);
        let needle = format!("OBSOLETE entry '{}'", paths[0]);
        s.refused(&dist, &[&needle, "sysup's own state directory"]);
        assert_eq!(
            installed_world(&s.root).as_deref(),
            Some("world-1-20260101")
        );
        assert!(s.root.join("var/db/sysup/history").is_file());
    }
}
