//! Threat: MANIFEST shapes that cost a reader time or memory out of all
//! proportion to the dist — a path thousands of levels deep (the check that
//! nothing is listed below a non-directory once grew with the cube of the
//! depth), a path longer than any filesystem takes, and a MANIFEST at the
//! entry cap made of the cheapest entries (fifos: a 12 MB dist). Each is
//! refused from the MANIFEST by `sysup info` and `sysup apply`, or held
//! within the suite's memory bound, and the ancestor check stays linear.

use crate::common;
use crate::hostile_support;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;
use hostile_support::*;
use sysup::format::manifest::{MAX_DEPTH, MAX_ENTRIES, MAX_PATH};

/// A dist whose MANIFEST is `lines` (entry lines, sorted), announced as
/// `entries`, with the tree members `members` after it.
fn dist_of(s: &Site, lines: &str, entries: usize, members: &[u8]) -> std::path::PathBuf {
    let text = format!("{}\n{lines}", sysup::format::manifest::HEADER);
    let mut tar = head("world-2-20260102", &text, entries);
    tar.extend_from_slice(members);
    tar.extend(end());
    gz_tar(s.dir(), "world-2-20260102.tar.gz", &tar)
}

/// `depth` nested directories `d/d/…/d`, each listed.
fn nested_dirs(depth: usize) -> String {
    let mut lines = String::new();
    let mut p = String::new();
    for _ in 0..depth {
        if !p.is_empty() {
            p.push('/');
        }
        p.push('d');
        lines.push_str(&format!("{p} type=dir mode=0755 uid=0 gid=0 mtime=0\n"));
    }
    lines
}

/// A dist whose MANIFEST is `line(0..n)` announced as `n` entries, with no
/// members, streamed to the file: the test process, which runs every
/// integration test at once, never holds it whole.
fn streamed_dist(s: &Site, n: usize, line: &dyn Fn(usize) -> String) -> std::path::PathBuf {
    let text_len: usize =
        sysup::format::manifest::HEADER.len() + 1 + (0..n).map(|i| line(i).len()).sum::<usize>();
    let dist = format!("format = 1\nid = \"world-2-20260102\"\narch = \"x86_64\"\nentries = {n}\n");
    let mut start = member(
        &Hdr::new(b".sysup/DIST", b'0', dist.len() as u64),
        dist.as_bytes(),
    );
    start.extend(Hdr::new(b".sysup/MANIFEST", b'0', text_len as u64).bytes());
    gz_file(
        s.dir(),
        "world-2-20260102.tar.gz",
        &[&|w: &mut dyn Write| {
            w.write_all(&start).unwrap();
            let mut w = std::io::BufWriter::new(w);
            writeln!(w, "{}", sysup::format::manifest::HEADER).unwrap();
            for i in 0..n {
                w.write_all(line(i).as_bytes()).unwrap();
            }
            w.write_all(&vec![0u8; (B - text_len % B) % B]).unwrap();
            w.write_all(&end()).unwrap();
        }],
    )
}

#[test]
fn a_path_8000_levels_deep_is_refused_fast() {
    // nested directories down to the depth cap, then a path 8000 levels
    // deep below them
    let s = Site::new();
    let d = |depth: usize| vec!["d"; depth].join("/");
    let dist = streamed_dist(&s, MAX_DEPTH + 1, &|i| {
        if i < MAX_DEPTH {
            format!("{} type=dir mode=0755 uid=0 gid=0 mtime=0\n", d(i + 1))
        } else {
            format!("{} type=fifo mode=0644 uid=0 gid=0 mtime=0\n", d(8000))
        }
    });
    let t = Instant::now();
    let needle = "path of 15999 bytes is longer than the 4096 bytes allowed";
    let line = format!("line {}", MAX_DEPTH + 2);
    info_refused(&dist, &[&line, needle]);
    s.refused(&dist, &[&line, needle]);
    // 8000 nested directories took 44 s before the caps; a generous bound
    // that cannot flake
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

#[test]
fn a_path_deeper_than_the_cap_is_refused() {
    let s = Site::new();
    let dist = dist_of(&s, &nested_dirs(MAX_DEPTH + 1), MAX_DEPTH + 1, &[]);
    let needle = format!(
        "is {} levels deep, more than the {MAX_DEPTH} allowed",
        MAX_DEPTH + 1
    );
    info_refused(&dist, &[&needle]);
    s.refused(&dist, &[&needle]);
    // at the cap, the MANIFEST is fine (info reads only the head)
    let dist = dist_of(&s, &nested_dirs(MAX_DEPTH), MAX_DEPTH, &[]);
    let o = run_measured(sysup().arg("info").arg(&dist));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
}

#[test]
fn a_path_or_link_longer_than_the_cap_is_refused() {
    let s = Site::new();
    let name = "n".repeat(255);
    let long: Vec<String> = (0..MAX_PATH / 256 + 1).map(|_| name.clone()).collect();
    let long = long.join("/");
    assert!(long.len() > MAX_PATH);
    let line = format!("{long} type=fifo mode=0644 uid=0 gid=0 mtime=0\n");
    let dist = dist_of(&s, &line, 1, &[]);
    let needle = format!(
        "path of {} bytes is longer than the 4096 bytes allowed",
        long.len()
    );
    info_refused(&dist, &[&needle]);
    s.refused(&dist, &[&needle]);
    let line = format!("l type=symlink mode=0777 uid=0 gid=0 mtime=0 link={long}\n");
    let dist = dist_of(&s, &line, 1, &[]);
    let needle = format!(
        "link of {} bytes is longer than the 4096 bytes allowed",
        long.len()
    );
    info_refused(&dist, &[&needle]);
    s.refused(&dist, &[&needle]);
}

#[test]
fn something_below_a_non_directory_is_still_found() {
    // The linear check must still see `a` (a fifo) above `a/x` when other
    // names sort between them (`a-b`, `a.c` and their children).
    let s = Site::new();
    let lines = "a type=fifo mode=0644 uid=0 gid=0 mtime=0\n\
                 a-b type=dir mode=0755 uid=0 gid=0 mtime=0\n\
                 a-b/c type=fifo mode=0644 uid=0 gid=0 mtime=0\n\
                 a.c type=fifo mode=0644 uid=0 gid=0 mtime=0\n\
                 a/x/y type=fifo mode=0644 uid=0 gid=0 mtime=0\n";
    let dist = dist_of(&s, lines, 5, &[]);
    let needle = "'a/x/y' is below 'a', which is a fifo";
    info_refused(&dist, &[needle, "line 6"]);
    s.refused(&dist, &[needle]);
}

#[test]
fn many_deep_paths_with_distinct_parents_are_checked_in_linear_time() {
    // Within the caps, the worst case of the old check: every entry at the
    // full depth with long names, none of its parents listed, each parent
    // distinct (so no answer can be reused).
    let s = Site::new();
    let comp = "x".repeat(MAX_PATH / MAX_DEPTH - 1);
    let n = 5_000;
    let dist = streamed_dist(&s, n, &|i| {
        let mut p = format!("{i:06}");
        while p.len() + 1 + comp.len() <= MAX_PATH && p.split('/').count() < MAX_DEPTH {
            p.push('/');
            p.push_str(&comp);
        }
        format!("{p} type=fifo mode=0644 uid=0 gid=0 mtime=0\n")
    });
    let t = Instant::now();
    let o = run_measured(sysup().arg("info").arg(&dist));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

#[test]
fn a_manifest_past_the_entry_cap_is_refused_within_the_memory_bound() {
    // MAX_ENTRIES fifos (the cheapest entry) and one more: a reader holds
    // every entry up to the cap before it can refuse the next.
    let s = Site::new();
    let n = MAX_ENTRIES as usize + 1;
    let path = streamed_dist(&s, n, &|i| {
        format!("f{i:08} type=fifo mode=0644 uid=0 gid=0 mtime=0\n")
    });
    let needle = format!("more than the {MAX_ENTRIES} entries");
    info_refused(&path, &[&needle]);
    s.refused(&path, &[&needle]);
}
