//! Executables for the `patch_elf*` tests: a C program of many functions
//! built by a real compiler (this machine's `cc`, or a cross compiler), and
//! a diff made with and without reference prediction, both checked to
//! rebuild the new tar.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use sysup::diff::{self, DiffOptions, DiffReport};
use sysup::format::patch::header::VERSION;

use super::*;

/// Diff `old` → `new` into `dir`, with or without reference prediction.
pub fn diff_with(dir: &Path, old: &Path, new: &Path, xref: bool) -> DiffReport {
    let out = dir.join(if xref { "xref" } else { "plain" });
    let opts = DiffOptions { xref, ..opts() };
    diff::diff_dists(old, new, &out, &opts).expect("diff")
}

/// Diff `a` → `b` with and without prediction; both must rebuild the new
/// tar exactly. Returns (with, without, old tar) and keeps `dir`'s files.
pub fn both_ways(dir: &Path, a: &Tree, b: &Tree) -> (DiffReport, DiffReport, Vec<u8>) {
    let (ga, ta) = make_dist(dir, "world-1-20260101", a);
    let (gb, tb) = make_dist(dir, "world-2-20260102", b);
    let with = diff_with(dir, &ga, &gb, true);
    let without = diff_with(dir, &ga, &gb, false);
    for r in [&with, &without] {
        assert_eq!(r.header.version, VERSION);
        let out = apply(&r.patch, &ta).unwrap();
        assert!(out == tb, "output differs from the new tar");
        let o = sysup_patch(&r.patch, &ta);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(o.stdout == tb, "sysup patch output differs");
    }
    assert_eq!(without.stats.xref, 0);
    (with, without, ta)
}

/// A C program of `n` functions calling each other, branching and reading
/// and writing globals and a table (x86-64: rel32 calls and jumps,
/// RIP-relative operands; aarch64: BL, B.cond, CBZ, ADRP with ADD and
/// LDR/STR), with `extra` inserted before the first.
pub fn program(n: usize, extra: bool) -> String {
    let mut s = String::from(
        "#include <stdio.h>\nvolatile int g[64];\nint h[256] = {1, 2, 3};\nconst char *names[] = {\"a\", \"bb\", \"ccc\"};\n",
    );
    if extra {
        s.push_str("int inserted(int x) { for (int i = 0; i < x; i++) g[i % 64] += i * 3 + h[i & 255]; return g[5]; }\n");
    }
    for i in 0..n {
        let _ = writeln!(s, "__attribute__((noinline)) int f{i}(int x);");
    }
    for i in 0..n {
        let (a, b) = ((i * 7 + 3) % n, (i * 13 + 5) % n);
        let call = if i == 0 {
            "x".to_string()
        } else {
            format!("f{}(x - 1)", a.min(i - 1))
        };
        let _ = writeln!(
            s,
            "__attribute__((noinline)) int f{i}(int x) {{ if (x <= 0) return g[{}] + h[{}]; g[{}] += x; if (x == {i}) puts(names[x % 3]); return {call} + g[{}] * {}; }}",
            i % 64,
            (i * 3) % 256,
            b % 64,
            (i + 1) % 64,
            i + 1
        );
    }
    let _ = write!(s, "int main(int c, char **v) {{ int t = 0;");
    if extra {
        s.push_str(" t += inserted(c);");
    }
    for i in (0..n).step_by(5) {
        let _ = write!(s, " t += f{i}(c + {i});");
    }
    s.push_str(" printf(\"%d\\n\", t); return 0; }\n");
    s
}

/// Compile `src` with `cc` (a compiler command: `cc`, or a cross
/// compiler) and `flags` in `dir`; `None` when there is no such compiler.
pub fn compile(cc: &str, flags: &[&str], dir: &Path, name: &str, src: &str) -> Option<Vec<u8>> {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).unwrap();
    let out = dir.join(name);
    let status = Command::new(cc)
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&c)
        .status();
    match status {
        Ok(s) => {
            assert!(s.success(), "{cc} failed on {name}.c");
            Some(std::fs::read(out).unwrap())
        }
        Err(_) => None,
    }
}

/// The program of 400 functions built by `cc` with `flags` in `dir`, then
/// again with a function inserted: (old, new) executables. `None` when
/// there is no such compiler, after saying SKIPPED — under CI a missing
/// compiler is a failure.
pub fn build_pair(cc: &str, flags: &[&str], dir: &Path) -> Option<(Vec<u8>, Vec<u8>)> {
    match (
        compile(cc, flags, dir, "old", &program(400, false)),
        compile(cc, flags, dir, "new", &program(400, true)),
    ) {
        (Some(old), Some(new)) => Some((old, new)),
        _ => {
            assert!(std::env::var_os("CI").is_none(), "CI must have {cc}");
            eprintln!("SKIPPED: no {cc}");
            None
        }
    }
}
