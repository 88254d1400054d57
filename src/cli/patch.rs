//! `sysup patch PATCH`: a filter — old uncompressed tar on stdin, new tar on
//! stdout — so `gunzip < world-A.tar.gz | sysup patch A_B.patch | tar -xpf -`
//! works.
//!
//! Invariants: exit 0 only when the input matched the patch's from-digests
//! and the output its to-digests; any mismatch, a corrupt patch or a closed
//! stdout (EPIPE) is exit 1 with a message, never a panic.

use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use crate::delta;
use crate::progress::Unit;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The patch file.
    pub patch: PathBuf,
}

pub fn run(a: Args, ui: &super::progress::Ui) -> crate::Result<()> {
    ui.with_progress(|progress| {
        if progress.is_enabled() {
            // The bar counts the old tar read from stdin against its size.
            let h = delta::PatchHeader::read_file(&a.patch)?;
            progress.step(
                format!("patch {}", h.name),
                Some(h.from.tar.size),
                Unit::Bytes,
            );
        }
        let stdin = BufReader::with_capacity(1 << 20, progress.reader(std::io::stdin().lock()));
        let mut stdout = BufWriter::with_capacity(4 << 20, std::io::stdout().lock());
        delta::apply(&a.patch, stdin, &mut stdout, Path::new("<stdout>"))?;
        Ok(())
    })
}
