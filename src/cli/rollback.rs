//! `sysup rollback [--root DIR] [NAME] [--to ID]`: back to a kept previous
//! base — a full apply of it, whose MANIFEST becomes the truth (files added
//! since are removed, config files handled as in apply).

use std::path::PathBuf;

use crate::error::Error;
use crate::host::apply::{apply, ApplyOptions};
use crate::host::state::State;
use crate::name::{DistId, DistName};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Dist name (default: world).
    pub name: Option<String>,
    /// The kept id to go back to (default: the newest kept one older than the installed).
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long)]
    pub json: bool,
    /// Kept bases per dist name after the rollback.
    #[arg(long)]
    pub keep: Option<usize>,
}

pub fn run(a: Args, ui: &super::progress::Ui) -> crate::Result<()> {
    let state = State::open(&a.root)?;
    let name: DistName = a.name.as_deref().unwrap_or("world").parse()?;
    let inst = state
        .installed(&name)?
        .ok_or_else(|| Error::Refused(format!("nothing is installed for {name}")))?;
    let kept = state.bases(&name)?;
    let target: DistId = match &a.to {
        Some(t) => {
            let id: DistId = t.parse()?;
            if !kept.iter().any(|k| k.id == id) {
                return Err(Error::Refused(format!(
                    "{id} is not kept in {}",
                    state.bases_dir().display()
                )));
            }
            id
        }
        None => kept
            .iter()
            .rev()
            .map(|k| &k.id)
            .find(|id| (id.date, &id.rev) < (inst.id.date, &inst.id.rev))
            .cloned()
            .ok_or_else(|| {
                Error::Refused(format!("no base older than {} is kept for {name}", inst.id))
            })?,
    };
    let r = ui.with_progress(|progress| {
        apply(&ApplyOptions {
            root: a.root,
            files: vec![state.base_path(&target)],
            keep: a.keep,
            action: Some("rollback".into()),
            progress: progress.clone(),
            ..Default::default()
        })
    })?;
    if a.json {
        return super::print_json(&r);
    }
    super::apply::print_report(&r, ui.quiet);
    Ok(())
}
