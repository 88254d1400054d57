//! `sysup patch PATCH`: a filter — old uncompressed tar on stdin, new tar on
//! stdout — so `gunzip < world-A.tar.gz | sysup patch A_B.patch | tar -xpf -`
//! works.
//!
//! Invariants: exit 0 only when the input had the from-size and the
//! patch's old members and the output matched its to-digests (the input's
//! digest is checked too, unless stdin is a regular file: that is hashed
//! only when a verdict needs it); any mismatch, a corrupt patch or a closed
//! stdout (EPIPE) is exit 1 with a message, never a panic.

use std::fs::File;
use std::io::BufReader;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use sysup::error::Error;
use sysup::util::progress::Unit;
use sysup::{format::patch::PatchHeader, patch};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The patch file.
    pub patch: PathBuf,
}

pub fn run(a: Args, ui: &super::progress::Ui) -> sysup::Result<()> {
    ui.with_progress(|progress| {
        if progress.is_enabled() {
            // The bar counts the old tar read from stdin against its size.
            let h = PatchHeader::read_file(&a.patch)?;
            progress.step(
                format!("patch {}", h.name),
                Some(h.from.tar.size),
                Unit::Bytes,
            );
        }
        // Member data is read in pieces of up to 256 KiB: those bypass a
        // 64 KiB buffer, which only gathers the 512-byte header reads.
        let stdin = BufReader::with_capacity(64 << 10, progress.reader(std::io::stdin().lock()));
        // The applier hands over pieces of 256 KiB or more: they go to fd 1
        // as they are, not copied through `Stdout`'s line buffer (which
        // would also scan every byte for a newline).
        let stdout = Path::new("<stdout>");
        let mut out = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map(File::from)
            .map_err(|e| Error::io("write new tar to", stdout, e))?;
        let mut r = patch::PatchReader::open(&a.patch, stdin)?;
        if let Some((file, start)) = rereadable_stdin() {
            r = r.rereadable_input(file, start);
        }
        patch::apply_reader(r, &mut out, stdout)?;
        Ok(())
    })
}

/// Stdin as a file it can be read again from, and the offset it starts
/// at, when it is a regular file (`sysup patch P < old.tar`): then the
/// applier hashes it only if a verdict needs its digest
/// ([`PatchReader::rereadable_input`](patch::PatchReader::rereadable_input)).
fn rereadable_stdin() -> Option<(File, u64)> {
    use std::io::Seek;
    let mut f = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .ok()?;
    if !f.metadata().ok()?.file_type().is_file() {
        return None;
    }
    let start = f.stream_position().ok()?;
    Some((f, start))
}
