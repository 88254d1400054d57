//! `sysup man [--out DIR]`: the man pages, generated from the clap
//! definitions (clap_mangen) so they never drift from `--help`.
//!
//! With `--out DIR`, writes `sysup.1` and one `sysup-<command>.1` per
//! command into DIR (created if missing); without it, prints `sysup.1` on
//! stdout. Pages carry no date, so the same sysup always makes the same
//! bytes.
//!
//! Beyond what clap_mangen renders (NAME, SYNOPSIS, DESCRIPTION, OPTIONS,
//! COMMANDS), every page gets EXIT STATUS, ENVIRONMENT, FILES, EXAMPLES and
//! SEE ALSO, as the pages of apt-get(8) and rsync(1) have them. The
//! examples come from [`examples`], the same table `--help` prints them
//! from, so the two never disagree.

use std::path::PathBuf;

use clap_mangen::roff::{bold, roman, Roff};

use sysup::error::{Error, IoContext};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory to write sysup.1 and sysup-<command>.1 into (e.g.
    /// /usr/local/share/man/man1); without it, sysup.1 goes to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Example command lines of each command, with what each does: the one
/// source of the EXAMPLES of `--help` and of the man pages. `""` is the
/// top-level `sysup`.
pub fn examples(command: &str) -> &'static [(&'static str, &'static str)] {
    match command {
        "" => &[
            ("sysup update --root /mnt/img --mirror https://mirror.example/sysup --pubkey sysup.pub",
             "bring an image up to date from a signed mirror"),
            ("sysup status", "what is installed, kept and pending on this system"),
            ("sysup -q verify", "print nothing unless shipped files changed (for cron)"),
        ],
        "build" => &[
            ("sysup build binarydist/world.toml --tree /tmp/destdir --rev 14.2 --out /srv/dists",
             "turn a staged tree into world-14.2-<today>.tar.gz"),
            ("sysup build kernels/GENERIC.toml --tree /tmp/kdest --rev 14.2 --date 20261205",
             "build the GENERIC kernel dist of a given date"),
        ],
        "diff" => &[(
            "sysup diff world-14.1-20261101.tar.gz world-14.2-20261205.tar.gz --out /srv/dists",
            "make world-14.1-20261101_14.2-20261205.patch",
        )],
        "patch" => &[(
            "gunzip < world-14.1-20261101.tar.gz | sysup patch world-14.1-20261101_14.2-20261205.patch | tar -xpf - -C /tmp/new",
            "apply a patch as a filter, outside any host",
        )],
        "info" => &[("sysup info --json world-14.1-20261101_14.2-20261205.patch",
                     "the ids, sizes and digests a patch carries")],
        "publish" => &[("sysup publish /srv/dists --sign /root/sysup.key --make-patches 2",
                        "make missing patches from the two previous dists and sign the INDEX")],
        "update" => &[
            ("sysup update", "update to the newest dists of the mirror in etc/sysup.conf"),
            ("sysup update --to world-14.2-20261205 --download-only",
             "fetch and verify a chain now, apply it later"),
            ("sysup update --check", "exit 100 when an update is available, 0 when up to date (monitoring)"),
            ("sysup update --mirror file:///media/usb/mirror", "update from a mirror copied to a USB stick"),
        ],
        "apply" => &[
            ("sysup apply --root /mnt/img world-14.2-20261205.tar.gz", "install a full dist"),
            ("sysup apply --dry-run world-14.1-20261101_14.2-20261205.patch",
             "check and stream a patch, change nothing, say what would change"),
        ],
        "status" => &[("sysup status --json", "the installed ids, kept bases and any pending apply")],
        "verify" => &[
            ("sysup verify", "compare shipped files with the installed MANIFEST"),
            ("sysup verify --repair", "restore what differs from the installed base"),
        ],
        "history" => &[("sysup history | head", "the newest applies, repairs, rollbacks and cleans")],
        "rollback" => &[
            ("sysup rollback", "back to the newest kept world older than the installed one"),
            ("sysup rollback kernel-GENERIC --to kernel-GENERIC-14.1-20261101", "one kernel chain, to a given id"),
        ],
        "clean" => &[("sysup clean --keep 1 --dry-run", "what pruning to one base per name would remove")],
        "demo" => &[("sysup demo --dir /tmp/sysup-demo", "run the demo and keep what it made")],
        "man" => &[("sysup man --out /usr/local/share/man/man1", "install these pages")],
        "completions" => &[("sysup completions bash > /usr/share/bash-completion/completions/sysup",
                            "install bash completion")],
        _ => &[],
    }
}

/// The `--help` epilogue of a command: its examples.
pub fn help_examples(command: &str) -> String {
    let mut s = String::from("Examples:\n");
    for (line, what) in examples(command) {
        s.push_str(&format!("  {line}\n      {what}\n"));
    }
    s
}

const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "Success (for verify: shipped files are as installed)."),
    ("1", "Operational failure: bad input, a mismatch, a refusal, or drift found by verify. Nothing was changed unless the message says so; an interrupted apply is finished by running the same command again."),
    ("2", "Usage error: an unknown option or a missing argument."),
    ("100", "update --check only: an update is available (0 there means up to date), as dnf check-update says it."),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    ("HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY", "Proxy for mirror downloads (update), as curl reads them."),
    ("TMPDIR", "Where demo makes its temporary directory."),
    ("SYSUP_CRASH_AT", "Test hook: kill sysup at a named checkpoint (crash tests only; never set it on a real host)."),
];

const FILES: &[(&str, &str)] = &[
    (
        "ROOT/etc/sysup.conf",
        "Host configuration (TOML): [apply], [clean], [mirror]; see docs/mirrors.md.",
    ),
    (
        "ROOT/var/db/sysup/installed/NAME",
        "What is installed for each dist name.",
    ),
    (
        "ROOT/var/db/sysup/bases/ID.tar.gz",
        "Kept gzipped bases: the basis of the next patch and of rollback.",
    ),
    (
        "ROOT/var/db/sysup/journal",
        "The apply in progress, if any; the next run finishes or undoes it.",
    ),
    (
        "ROOT/var/db/sysup/history",
        "Append-only audit log (sysup history).",
    ),
    (
        "ROOT/var/db/sysup/lock",
        "Held by the one running sysup; holds its pid.",
    ),
    (
        "ROOT/var/db/sysup/download/",
        "Downloads of sysup update, resumed on the next run.",
    ),
];

/// The sections sysup adds after clap_mangen's own.
fn extra_sections(name: &str) -> String {
    let mut r = Roff::new();
    let table = |r: &mut Roff, heading: &str, rows: &[(&str, &str)]| {
        r.control("SH", [heading]);
        for (term, what) in rows {
            r.control("TP", []);
            r.text([bold(*term)]);
            r.text([roman(*what)]);
        }
    };
    table(&mut r, "EXIT STATUS", EXIT_STATUS);
    table(&mut r, "ENVIRONMENT", ENVIRONMENT);
    table(&mut r, "FILES", FILES);
    let command = name
        .strip_prefix("sysup")
        .unwrap_or(name)
        .trim_start_matches('-');
    r.control("SH", ["EXAMPLES"]);
    for (line, what) in examples(command) {
        r.control("TP", []);
        r.text([bold(*line)]);
        r.text([roman(*what)]);
    }
    r.control("SH", ["SEE ALSO"]);
    let mut see: Vec<String> = Vec::new();
    if command.is_empty() {
        for sub in super::command().get_subcommands() {
            see.push(format!("sysup-{}(1)", sub.get_name()));
        }
    } else {
        see.push("sysup(1)".into());
    }
    see.extend(["tar(1)", "gzip(1)", "minisign(1)"].map(String::from));
    r.text([roman(see.join(", "))]);
    r.control("PP", []);
    r.text([roman(
        "The design contract, the JSON documents and the host configuration are described in docs/ of the sysup source.",
    )]);
    // No apostrophe preamble: clap_mangen's page already carries it.
    r.to_roff()
}

/// `sysup`, or `sysup-<command>` (the display name clap gives a built
/// subcommand).
fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name().unwrap_or(cmd.get_name()).to_string()
}

/// One page: clap_mangen's rendering of `cmd`, then [`extra_sections`].
fn page(cmd: clap::Command) -> std::io::Result<Vec<u8>> {
    let name = page_name(&cmd);
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    out.extend_from_slice(extra_sections(&name).as_bytes());
    Ok(out)
}

pub fn run(a: Args, ui: &super::progress::Ui) -> sysup::Result<()> {
    // As clap_mangen::generate_to prepares it: no `help` pseudo-command; the
    // examples are rendered by `page`, not as clap's after-help.
    let mut cmd = super::bare_command().disable_help_subcommand(true);
    cmd.build();
    let Some(dir) = a.out else {
        let top = page(cmd).map_err(|e| Error::io("write", PathBuf::from("<stdout>"), e))?;
        return super::print_bytes(&top);
    };
    std::fs::create_dir_all(&dir).ctx("create directory", &dir)?;
    let mut pages = vec![(dir.join("sysup.1"), page(cmd.clone()))];
    for sub in cmd.get_subcommands() {
        let file = dir.join(format!("{}.1", page_name(sub)));
        pages.push((file, page(sub.clone())));
    }
    let n = pages.len();
    for (file, bytes) in pages {
        let bytes = bytes.ctx("render", &file)?;
        std::fs::write(&file, bytes).ctx("write", &file)?;
    }
    if !ui.quiet {
        outln!("wrote {n} man pages into {}", dir.display());
    }
    Ok(())
}
