//! `sysup info FILE [--json]`: the header of a patch (read without its body)
//! or of a dist (its `.sysup/` metadata).
//!
//! Invariant: for a patch, only the header is read and checked (its own
//! checksum and layout); the body is not touched.

use std::path::PathBuf;

use sysup::format::dist::DistInfo;
use sysup::format::name::PATCH_SUFFIX;
use sysup::format::patch::PatchHeader;

use super::args::JsonArg;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A `.patch` or a `.tar.gz` dist.
    pub file: PathBuf,
    #[command(flatten)]
    pub format: JsonArg,
}

#[derive(serde::Serialize)]
struct PatchInfo<'a> {
    kind: &'static str,
    file: &'a std::path::Path,
    size: u64,
    #[serde(flatten)]
    header: &'a PatchHeader,
}

pub fn run(a: Args) -> sysup::Result<()> {
    let is_patch = a.file.to_string_lossy().ends_with(PATCH_SUFFIX) || starts_with_magic(&a.file);
    if is_patch {
        let header = PatchHeader::read_file(&a.file)?;
        let size = std::fs::metadata(&a.file)
            .map_err(|e| sysup::Error::io("stat", &a.file, e))?
            .len();
        if a.format.json {
            return super::print_json(&PatchInfo {
                kind: "patch",
                file: &a.file,
                size,
                header: &header,
            });
        }
        outln!("file        {} ({size} bytes)", a.file.display());
        outln!("{header}");
        return Ok(());
    }
    let info = DistInfo::read(&a.file)?;
    if a.format.json {
        return super::print_json(&info);
    }
    outln!("{info}");
    Ok(())
}

fn starts_with_magic(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut m = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut m))
        .is_ok_and(|_| &m == sysup::format::patch::header::MAGIC)
}
