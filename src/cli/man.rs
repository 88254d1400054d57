//! `sysup man [--out DIR]`: the man pages, generated from the clap
//! definitions (clap_mangen) so they never drift from `--help`.
//!
//! With `--out DIR`, writes `sysup.1` and one `sysup-<command>.1` per visible
//! command into DIR (created if missing); without it, prints `sysup.1` on
//! stdout. Pages carry no date, so the same sysup always makes the same
//! bytes.

use std::path::PathBuf;

use crate::error::{Error, IoContext};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory to write sysup.1 and sysup-<command>.1 into (e.g.
    /// /usr/local/share/man/man1); without it, sysup.1 goes to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn run(a: Args, ui: &super::progress::Ui) -> crate::Result<()> {
    // As clap_mangen::generate_to prepares it: no `help` pseudo-command.
    let cmd = super::command().disable_help_subcommand(true);
    let Some(dir) = a.out else {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut page)
            .map_err(|e| Error::io("write", PathBuf::from("<stdout>"), e))?;
        return super::print_bytes(&page);
    };
    std::fs::create_dir_all(&dir).ctx("create directory", &dir)?;
    let pages = 1 + cmd.get_subcommands().filter(|s| !s.is_hide_set()).count();
    clap_mangen::generate_to(cmd, &dir).ctx("write man pages into", &dir)?;
    if !ui.quiet {
        outln!("wrote {pages} man pages into {}", dir.display());
    }
    Ok(())
}
