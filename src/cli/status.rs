//! `sysup status [--root DIR] [--json]`: per dist name, what is installed,
//! its base and digests, when, the kept bases, and any interrupted apply with
//! the command that finishes it.

use std::path::PathBuf;

use serde::Serialize;

use crate::host::journal::Journal;
use crate::host::state::{Installed, KeptBase, State};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The root to act on (default: this system).
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct NameStatus {
    installed: Installed,
    base: PathBuf,
    kept: Vec<KeptBase>,
}

#[derive(Serialize)]
struct Pending {
    target: String,
    committed: bool,
    command: String,
}

#[derive(Serialize)]
struct Status {
    root: PathBuf,
    names: Vec<NameStatus>,
    pending: Option<Pending>,
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:~".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub fn run(a: Args) -> crate::Result<()> {
    let state = State::open(&a.root)?;
    let mut names = Vec::new();
    for i in state.installed_all()? {
        names.push(NameStatus {
            base: state.base_path(&i.id),
            kept: state.bases(&i.id.name)?,
            installed: i,
        });
    }
    let pending = Journal::load(&state)?.and_then(|j| {
        let target = j.target?;
        let mut cmd = format!(
            "sysup apply --root {}",
            shell_quote(&a.root.to_string_lossy())
        );
        let kept = j.kept_base.then(|| state.base_path(&target));
        for f in j.inputs.iter().chain(&kept) {
            cmd.push(' ');
            cmd.push_str(&shell_quote(&f.to_string_lossy()));
        }
        Some(Pending {
            target: target.to_string(),
            committed: j.plan.is_some(),
            command: cmd,
        })
    });
    let s = Status {
        root: state.root().to_path_buf(),
        names,
        pending,
    };
    if a.json {
        return super::print_json(&s);
    }
    outln!("root         {}", s.root.display());
    if s.names.is_empty() {
        outln!("installed    nothing");
    }
    for n in &s.names {
        let i = &n.installed;
        let kept: Vec<String> = n.kept.iter().map(|k| k.id.to_string()).collect();
        outln!("{}", i.id.name);
        outln!(
            "  installed  {} ({}), on {} UTC",
            i.id,
            i.arch,
            super::utc_time(i.installed_at)
        );
        outln!(
            "  base       {} ({})",
            n.base.display(),
            crate::fsutil::human_size(i.base_size)
        );
        outln!("  tar size   {} bytes", i.tar.size);
        outln!("  tar md5    {}", i.tar.md5_hex());
        outln!("  tar sha256 {}", i.tar.sha256_hex());
        outln!("  kept       {}", kept.join(", "));
    }
    if let Some(p) = &s.pending {
        outln!(
            "pending      interrupted apply to {} ({}); finish it with:\n  {}",
            p.target,
            if p.committed {
                "verified, partly committed"
            } else {
                "staging, will be redone"
            },
            p.command
        );
    }
    Ok(())
}
