//! Man pages and completion scripts, generated from the clap definitions,
//! render and cover every command.

use std::fs;
use std::process::Command;

use crate::common::*;

/// The visible subcommands, from `sysup --help`.
fn subcommands() -> Vec<String> {
    let help = ok(sysup().arg("--help"));
    let list = help
        .split("Commands:\n")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap();
    let cmds: Vec<String> = list
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect();
    assert!(cmds.len() >= 13, "{cmds:?}");
    cmds
}

#[test]
fn man_pages_render_and_cover_every_command() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("man1");
    ok(sysup().arg("man").arg("--out").arg(&dir));
    let top = fs::read_to_string(dir.join("sysup.1")).unwrap();
    for cmd in subcommands() {
        let page = dir.join(format!("sysup-{cmd}.1"));
        assert!(page.exists(), "no man page for {cmd}");
        assert!(
            top.contains(&format!("sysup\\-{cmd}")),
            "sysup.1 does not list {cmd}"
        );
    }
    let cmds = subcommands();
    for listed in ["man", "completions"] {
        assert!(
            cmds.iter().any(|c| c == listed),
            "`sysup --help` lists {listed}"
        );
    }
    // every page has the sections an admin looks for, EXAMPLES from the
    // same table `--help` prints them from
    for page in fs::read_dir(&dir).unwrap() {
        let page = page.unwrap().path();
        let text = fs::read_to_string(&page).unwrap();
        for section in [
            "EXIT STATUS",
            "ENVIRONMENT",
            "FILES",
            "EXAMPLES",
            "SEE ALSO",
        ] {
            assert!(
                text.contains(&format!(".SH \"{section}\""))
                    || text.contains(&format!(".SH {section}")),
                "{} has no {section}",
                page.display()
            );
        }
    }
    let help = ok(sysup().args(["apply", "--help"]));
    let example = "sysup apply --root /mnt/img world-14.2-20261205.tar.gz";
    assert!(help.contains(example), "{help}");
    let apply_page = fs::read_to_string(dir.join("sysup-apply.1")).unwrap();
    assert!(
        apply_page.contains(&example.replace('-', "\\-")),
        "{apply_page}"
    );
    assert!(apply_page.contains("var/db/sysup/journal"), "{apply_page}");
    // `sysup man` alone prints the same top page
    assert_eq!(ok(sysup().arg("man")), top);
    // it renders, without warnings
    let o = run(Command::new("man")
        .args(["--warnings", "-l", "-E", "UTF-8"])
        .arg(dir.join("sysup-apply.1"))
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat"));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "", "groff warnings");
    assert!(
        text.contains("NAME") && text.contains("--dry-run"),
        "{text}"
    );
}

#[test]
fn bash_completion_is_valid_and_knows_every_command() {
    let script = ok(sysup().args(["completions", "bash"]));
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("sysup.bash");
    fs::write(&f, &script).unwrap();
    let o = run(Command::new("bash").arg("-n").arg(&f));
    assert!(
        o.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // sourcing it registers the completion
    let o = run(Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p sysup", f.display())));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("sysup"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for cmd in subcommands() {
        assert!(
            script.contains(&format!("sysup,{cmd})")),
            "bash completion lacks {cmd}"
        );
    }
    for shell in ["zsh", "fish"] {
        let s = ok(sysup().args(["completions", shell]));
        assert!(s.contains("rollback"), "{shell}");
    }
}
