//! `sysup status [--root DIR] [--json]`: per dist name, what is installed,
//! its base and digests, when, the kept bases, and any interrupted apply with
//! the command that finishes it, and the config files awaiting the admin.
//! The facts are [`sysup::host::status`];
//! this file prints them.

use sysup::host::status::{status, Status};

/// `--root DIR --json`: all the command takes.
pub use super::args::HostArgs as Args;

pub fn run(a: Args) -> sysup::Result<()> {
    print(&status(&a.host.root)?, a.format.json)
}

fn print(s: &Status, json: bool) -> sysup::Result<()> {
    if json {
        return super::print_json(s);
    }
    // A pending apply first: it is what the admin must know before the rest.
    if let Some(p) = &s.pending {
        outln!("pending      {}", p.describe());
    } else if let Some(pid) = s.running {
        outln!("running      sysup pid {pid} is working on this root now");
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
            sysup::util::fsutil::human_size(i.base_size)
        );
        outln!("  tar size   {} bytes", i.tar.size);
        outln!("  tar md5    {}", i.tar.md5_hex());
        outln!("  tar sha256 {}", i.tar.sha256_hex());
        outln!("  kept       {}", kept.join(", "));
    }
    for p in &s.config_pending {
        outln!("config       {p} awaits you: new version in {p}.sysupnew (sysup config resolve)");
    }
    Ok(())
}
