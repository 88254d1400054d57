//! `sysup status [--root DIR] [--json | --format FORMAT]`: per dist name, what is installed,
//! its base and digests, when, the kept bases, and any interrupted apply with
//! the command that finishes it, the config files awaiting the admin, the
//! keys accepted through a mirror's KEYS file, and what needs a restart or
//! a reboot.
//! `--format prometheus` prints the same as node_exporter textfile metrics
//! ([`prometheus`]). The facts are [`sysup::host::status`]; this file
//! prints them.

mod prometheus;

use serde::Serialize;
use sysup::host::status::{status, Status};
use sysup::mirror::kept::{self, KeyStatus};

use super::args::{JsonArg, RootArg};

/// `--root DIR --json`, or `--format FORMAT`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub host: RootArg,
    #[command(flatten)]
    pub format: JsonArg,
    /// Output format: `text`, `json` (as --json), or `prometheus`
    /// (node_exporter textfile metrics).
    #[arg(
        long = "format",
        value_name = "FORMAT",
        value_enum,
        conflicts_with = "json"
    )]
    pub output: Option<Output>,
}

/// What `--format` takes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
    Prometheus,
}

/// What `sysup status` shows: the root's status, and the keys it accepted
/// through a mirror's KEYS file as the next update judges them.
#[derive(Serialize)]
struct Shown {
    #[serde(flatten)]
    status: Status,
    keys: Vec<KeyStatus>,
}

pub fn run(a: Args) -> sysup::Result<()> {
    let s = status(&a.host.root)?;
    match a.output {
        Some(Output::Prometheus) => {
            let log = match sysup::host::state::State::open_existing(&a.host.root)? {
                Some(state) => sysup::host::history::read(&state)?,
                None => Default::default(),
            };
            super::write_stdout(|o| {
                std::io::Write::write_all(o, prometheus::render(&s, &log).as_bytes())
            })
        }
        o => {
            // Only these show the kept keys; the metrics have none.
            let now = sysup::util::time::unix_now().unsigned_abs();
            let keys = kept::statuses(&a.host.root, now)?;
            print(
                &Shown { status: s, keys },
                a.format.json || o == Some(Output::Json),
            )
        }
    }
}

fn print(shown: &Shown, json: bool) -> sysup::Result<()> {
    if json {
        return super::print_json(shown);
    }
    let s = &shown.status;
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
    for k in &shown.keys {
        print_key(k);
    }
    super::apply::print_restart(Some(&s.restart), "", false)
}

/// One key accepted from a mirror's KEYS file: where it is kept, whether
/// the next update trusts it, the last INDEX serial signed by it.
fn print_key(k: &KeyStatus) {
    let at = |u: u64| super::utc_time(i64::try_from(u).unwrap_or(i64::MAX));
    let trust = match (&k.error, k.trusted, k.until) {
        (Some(e), _, _) => format!("unusable, the next update refuses until it is removed: {e}"),
        (None, true, None) => "trusted, no end".to_string(),
        (None, true, Some(u)) => format!("trusted until {} UTC", at(u)),
        (None, false, u) => format!("expired {} UTC, no longer trusted", at(u.unwrap_or(0))),
    };
    let serial = k
        .serial
        .map_or("no INDEX accepted signed by it yet".to_string(), |n| {
            format!("last INDEX serial {n}")
        });
    outln!(
        "key          {} from the mirror's KEYS, kept in {}: {trust}; {serial}",
        k.key_id,
        k.path.display()
    );
}
