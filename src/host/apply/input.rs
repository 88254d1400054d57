//! What an apply reads, and the check that it fits the host: a dist or a
//! chain of patches ([`classify`]), a chain whose target is already
//! installed taken as a repair from the kept base ([`already_installed`]),
//! the stream opened from the recorded base ([`Checked::open`]), and who is
//! blamed when the stream turns out wrong ([`Checked::blame`]).
//!
//! Invariants: nothing here writes; a chain is accepted only if it starts
//! at the recorded id and tar digests; a failure is blamed on the base only
//! when the base file is found to differ from its record.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::format::dist::{self, Metadata};
use crate::format::gz;
use crate::format::name::{DistId, PatchName};
use crate::format::patch::PatchHeader;
use crate::host::stage::Mode;
use crate::host::state::{Installed, State};
use crate::patch::PatchReader;
use crate::util::digest::{Digests, Sha256};
use crate::util::progress::{Progress, Unit};
use crate::util::readahead::ReadAhead;

use super::ApplyOptions;

pub(super) enum Input {
    Dist {
        path: PathBuf,
        id: DistId,
    },
    Chain {
        patches: Vec<(PathBuf, PatchHeader)>,
    },
}

impl Input {
    pub(super) fn target(&self) -> &DistId {
        match self {
            Input::Dist { id, .. } => id,
            Input::Chain { patches } => &patches.last().expect("non-empty chain").1.to.id,
        }
    }
    fn label(&self) -> String {
        match self {
            Input::Dist { path, .. } => path.display().to_string(),
            Input::Chain { patches } => patches.last().expect("non-empty").0.display().to_string(),
        }
    }
}

pub(super) fn classify(files: &[PathBuf]) -> Result<Input> {
    let Some(first) = files.first() else {
        return Err(Error::Refused(
            "nothing to apply: give a dist or a chain of patches".into(),
        ));
    };
    let is_patch = |p: &Path| {
        p.to_string_lossy()
            .ends_with(crate::format::name::PATCH_SUFFIX)
    };
    if !is_patch(first) {
        if files.len() > 1 {
            return Err(Error::Refused(
                "give one dist (a full install) or one or more patches (a chain), not both".into(),
            ));
        }
        return classify_dist(first);
    }
    let mut patches: Vec<(PathBuf, PatchHeader)> = Vec::new();
    for f in files {
        if !is_patch(f) {
            return Err(Error::Refused(format!(
                "'{}' is not a patch; a chain is patches only",
                f.display()
            )));
        }
        let h = chain_link(f, patches.last())?;
        patches.push((f.clone(), h));
    }
    Ok(Input::Chain { patches })
}

fn classify_dist(first: &Path) -> Result<Input> {
    let name = first
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Opened first: a path that does not exist is said as such, not as
    // a name that does not parse.
    File::open(first).ctx("open", first)?;
    let id = DistId::from_file_name(&name).map_err(|e| {
        Error::Refused(format!(
            "'{}' is not named as a dist (<name>-<rev>-<YYYYMMDD>.tar.gz): {e}",
            first.display()
        ))
    })?;
    Ok(Input::Dist {
        path: first.to_path_buf(),
        id,
    })
}

/// The header of patch `f`, checked against its name and against the link
/// before it.
fn chain_link(f: &Path, prev: Option<&(PathBuf, PatchHeader)>) -> Result<PatchHeader> {
    let h = PatchHeader::read_file(f)?;
    let named = PatchName::from_file_name(
        &f.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )?;
    if named != h.name {
        return Err(Error::Mismatch(format!(
            "'{}' is named for {named} but its header says {}",
            f.display(),
            h.name
        )));
    }
    if let Some((prev, ph)) = prev {
        if ph.to.id != h.from.id || ph.to.tar != h.from.tar {
            return Err(Error::Mismatch(format!(
                "broken chain: '{}' makes {} but '{}' applies to {}",
                prev.display(),
                ph.to.id,
                f.display(),
                h.from.id
            )));
        }
    }
    Ok(h)
}

/// A chain of patches whose target is already installed (a run that
/// finished — perhaps killed just before it exited — run again): applying it
/// is a repair from the kept base, as re-applying an installed dist is, not
/// a wrong base.
pub(super) fn already_installed(state: &State, input: &Input) -> Result<Option<Input>> {
    let Input::Chain { patches } = input else {
        return Ok(None);
    };
    let to = &patches.last().expect("non-empty chain").1.to;
    Ok(match state.installed(&to.id.name)? {
        Some(i) if i.id == to.id && i.tar == to.tar && state.has_base(&i.id) => Some(Input::Dist {
            path: state.base_path(&i.id),
            id: i.id,
        }),
        _ => None,
    })
}

/// An input checked against the host: what it starts from, how staging
/// compares, and the transaction's id.
pub(super) struct Checked<'a> {
    pub input: &'a Input,
    pub target: DistId,
    /// The input as errors name it (the dist, or the chain's last patch).
    pub label: String,
    /// The installed dist the stream starts from (a chain's base) or
    /// replaces (a dist).
    pub from_base: Option<&'a Installed>,
    pub mode: Mode,
    /// The metadata of the installed dist, read from its kept base.
    pub old_meta: Option<Metadata>,
    pub txid: String,
    /// The members of a chain's base, recorded as it is read, for the new
    /// base's writer to copy from (`gz::members`).
    pub base_index: Option<gz::read::Index>,
}

impl<'a> Checked<'a> {
    /// Check `input` against what is installed and open its stream: the
    /// new tar (gunzip of a dist, or of the recorded base through the chain).
    pub(super) fn open(
        state: &State,
        input: &'a Input,
        installed: Option<&'a Installed>,
        opts: &ApplyOptions,
    ) -> Result<(Checked<'a>, Box<dyn Read + Send>)> {
        let target = input.target().clone();
        let index = gz::read::Index::default();
        let (reader, from_base) = open_reader(state, input, installed, opts, &index)?;
        let from = from_base.map(|i| i.id.clone());
        let mode = match &from {
            None => Mode::Fresh,
            Some(f) if f == &target => Mode::Repair,
            Some(_) => Mode::Upgrade,
        };
        let old_meta = match from_base {
            Some(i) => Some(read_old_meta(state, i)?),
            None => None,
        };
        let txid = txid_for(from.as_ref(), &target);
        let checked = Checked {
            input,
            target,
            label: input.label(),
            from_base,
            mode,
            old_meta,
            txid,
            base_index: matches!(input, Input::Chain { .. }).then_some(index),
        };
        Ok((checked, reader))
    }

    pub(super) fn from(&self) -> Option<DistId> {
        self.from_base.map(|i| i.id.clone())
    }

    /// The error a failed staging is reported as. The patches' bodies were
    /// verified before one byte was read and the chain starts at the
    /// recorded id and digests: a result that is not the target means the
    /// base file is not what was recorded. A chain that broke down midway
    /// (a patch that stopped making sense, a new tar that does not parse)
    /// is blamed on the base only once the base is read again and found to
    /// differ.
    pub(super) fn blame(&self, state: &State, e: Error) -> Error {
        match self.from_base {
            Some(inst)
                if matches!(self.input, Input::Chain { .. })
                    && (blames_the_input(&e)
                        || could_be_the_base(&e) && base_differs(state, &inst.id, &inst.tar)) =>
            {
                Error::BadBase {
                    base: state.base_path(&inst.id),
                    target: self.target.to_string(),
                    source: Box::new(e),
                }
            }
            _ => e,
        }
    }
}

/// Check: the chain starts at the recorded base, whose file is intact; then
/// the reader of the new tar and the installed dist it starts from.
fn open_reader<'a>(
    state: &State,
    input: &Input,
    installed: Option<&'a Installed>,
    opts: &ApplyOptions,
    index: &gz::read::Index,
) -> Result<(Box<dyn Read + Send>, Option<&'a Installed>)> {
    let target = input.target();
    // Progress: compressed bytes of the dist or base consumed by the stream.
    let stream_step = |size: Option<u64>| {
        opts.progress
            .step(format!("apply {target}"), size, Unit::Bytes);
    };
    let patches = match input {
        Input::Dist { path, id } => {
            // A kept base (a repair, a rollback) is read through `bases/`'s
            // descriptor, never a link; any other dist by the path given.
            let f = if *path == state.base_path(id) {
                state.open_base(id)
            } else {
                File::open(path).ctx("open", path)
            };
            stream_step(
                f.as_ref()
                    .ok()
                    .and_then(|f| f.metadata().ok())
                    .map(|m| m.len()),
            );
            let r = dist::open_gz_file(f?, &opts.progress);
            return Ok((Box::new(r), installed));
        }
        Input::Chain { patches } => patches,
    };
    let Some(inst) = installed else {
        return Err(Error::Refused(format!(
            "nothing is installed for {} in {}: install a full dist first, then patches apply to it",
            target.name,
            state.root().display()
        )));
    };
    let first = &patches[0].1;
    if first.from.id != inst.id || first.from.tar != inst.tar {
        return Err(Error::NotForInstalled {
            patch: patches[0].0.clone(),
            reason: format!(
                "it applies to {} (md5 {}), but {} is installed (md5 {})",
                first.from.id,
                first.from.tar.md5_hex(),
                inst.id,
                inst.tar.md5_hex()
            ),
        });
    }
    let base = state.base_path(&inst.id);
    let f = state.open_base(&inst.id);
    stream_step(
        f.as_ref()
            .ok()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len()),
    );
    let f = f?;
    // gunzip on a thread of its own. No link hashes its input: the
    // first reads the recorded base — its id and MD5 were matched
    // above, gzip's CRC-32 catches damage on disk, and a base that
    // is not the from-tar cannot make the to-tar the last link
    // verifies; each later link reads the output the link before
    // verified.
    let gunzip = dist::open_gz_file_indexed(f, &base, &opts.progress, index.clone());
    let gunzip = ReadAhead::spawn("sysup-gunzip", gunzip)
        .map_err(|e| Error::io("start reading", &base, e))?;
    let mut r: Box<dyn Read + Send> =
        Box::new(PatchReader::open(&patches[0].0, gunzip)?.trusting_input());
    for (p, _) in &patches[1..] {
        r = Box::new(PatchReader::open(p, r)?.trusting_input());
    }
    Ok((r, Some(inst)))
}

/// The metadata of the installed dist, from its kept base.
fn read_old_meta(state: &State, i: &Installed) -> Result<Metadata> {
    state.base_metadata(&i.id).map_err(|e| {
        Error::Refused(format!(
            "the recorded base '{}' cannot be read ({e}); apply a full dist to recover",
            state.base_path(&i.id).display()
        ))
    })
}

fn txid_for(from: Option<&DistId>, target: &DistId) -> String {
    let mut h = Sha256::new();
    h.update(format!("{from:?}->{target}").as_bytes());
    hex::encode(&h.finalize()[..5])
}

/// Whether `e` says the stream's content is not what it should be: a staged
/// file's digest, or a patch's wrong-base verdict. (Readers hand such errors
/// up unwrapped: see [`Error::from_io`].)
fn blames_the_input(e: &Error) -> bool {
    matches!(e, Error::DigestMismatch { .. } | Error::WrongBase { .. })
}

/// Whether `e` could be a chain thrown off course by its base: a patch that
/// stops making sense midway (its body was verified when it was opened), or
/// a new tar or metadata that does not parse. With the base not hashed as it
/// is read, [`base_differs`] decides.
fn could_be_the_base(e: &Error) -> bool {
    matches!(
        e,
        Error::Patch { .. }
            | Error::CorruptPatch { .. }
            | Error::Tar { .. }
            | Error::Metadata { .. }
    )
}

/// Whether the base file on disk no longer gunzips to the tar recorded for
/// it (size and MD5; unreadable counts as differing). Read only after a
/// chain failed, so an apply that succeeds never pays for it.
fn base_differs(state: &State, base: &DistId, recorded: &Digests) -> bool {
    use md5::{Digest as _, Md5};
    let Ok(f) = state.open_base(base) else {
        return true;
    };
    let r = dist::open_gz_file(f, &Progress::disabled());
    // One byte past the recorded size is enough to know it is longer.
    let mut h = Md5::new();
    match io::copy(&mut r.take(recorded.size + 1), &mut h) {
        Ok(n) => n != recorded.size || <[u8; 16]>::from(h.finalize()) != recorded.md5,
        Err(_) => true,
    }
}
