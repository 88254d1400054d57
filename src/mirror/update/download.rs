//! Step 5 of `sysup update`: bring each file of the plans into the download
//! directory — or, in a dry run, tell what each would fetch.
//!
//! Invariants: before a byte is fetched, partial and finished downloads no
//! step needs are pruned and the directory's filesystem is checked to hold
//! what is still to come; each file is checked against its INDEX entry
//! (size and SHA-256 by the fetch, a patch's header here) before it is
//! kept; a patch whose header differs from its entry is deleted. Every file
//! of the directory is reached through its descriptor (`O_NOFOLLOW`), and
//! the report names each file by its path.

use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::format::patch::PatchHeader;
use crate::host::state::State;
use crate::mirror::fetch::{self, DownloadDir, Mirror};
use crate::mirror::index::{self, Index};
use crate::util::progress::Progress;

use super::{Step, UpdateReport};

/// A dry run's downloads: per step, what it would fetch, less what the
/// download directory already holds. Fetches and writes nothing.
pub(super) fn foretell(report: &mut UpdateReport, state: &State, steps: &[Step]) -> Result<()> {
    let shown = state.download_dir();
    let dir = DownloadDir {
        fd: state.download_fd(),
        shown: &shown,
    };
    for s in steps {
        report
            .downloads
            .push(fetch::foretell(dir, &s.file, s.size, &s.sha256)?);
    }
    report.fetched_bytes = report.downloads.iter().map(|d| d.fetched).sum();
    Ok(())
}

/// Download every step from `mirror` (resuming what is here), each checked
/// against `index`, into the download directory; record them in `report`.
/// Writes: the download directory only.
pub(super) fn download(
    report: &mut UpdateReport,
    state: &State,
    mirror: &Mirror,
    index: &Index,
    steps: &[Step],
    progress: &Progress,
) -> Result<()> {
    let shown = state.download_dir();
    let dir = DownloadDir {
        fd: state.download_fd(),
        shown: &shown,
    };
    fetch::prune_partials(dir, &steps.iter().map(|s| s.sha256).collect::<Vec<_>>())?;
    prune_finished(dir, steps)?;
    check_space(dir, &state.download_fd_path(), steps)?;
    for s in steps {
        let d = mirror.download(&s.file, s.size, &s.sha256, dir, progress)?;
        if let Some(entry) = index.patches.iter().find(|p| p.file() == s.file) {
            check_patch_header(entry, dir, &s.file, &mirror.url(&s.file))?;
        }
        report.downloads.push(d);
    }
    report.fetched_bytes = report.downloads.iter().map(|d| d.fetched).sum();
    Ok(())
}

/// Check a downloaded patch's header against its signed INDEX entry: the
/// plan followed the entry, the apply would follow the header. On a
/// mismatch the file (`file` in `dir`) is deleted. Read-only otherwise.
fn check_patch_header(
    entry: &index::PatchEntry,
    dir: DownloadDir,
    file: &str,
    url: &str,
) -> Result<()> {
    let path = &dir.shown.join(file);
    let h = match read_header(dir, file, path) {
        Ok(h) => h,
        Err(e) => {
            let _ = dir.fd.unlink(file.as_bytes());
            return Err(e);
        }
    };
    let (hf, ht, ef, et) = (&h.from.tar, &h.to.tar, &entry.from, &entry.to);
    let fields: [(&str, String, String); 9] = [
        ("from", h.from.id.to_string(), entry.name.from.to_string()),
        ("to", h.to.id.to_string(), entry.name.to.to_string()),
        ("name", h.name.to_string(), entry.name.to_string()),
        ("from-size", hf.size.to_string(), ef.size.to_string()),
        ("from-md5", hf.md5_hex(), ef.md5_hex()),
        ("from-sha256", hf.sha256_hex(), ef.sha256_hex()),
        ("to-size", ht.size.to_string(), et.size.to_string()),
        ("to-md5", ht.md5_hex(), et.md5_hex()),
        ("to-sha256", ht.sha256_hex(), et.sha256_hex()),
    ];
    match fields.into_iter().find(|(_, got, want)| got != want) {
        None => Ok(()),
        Some((field, got, want)) => {
            dir.fd.unlink(file.as_bytes()).ctx("remove", path)?;
            Err(Error::Refused(format!(
                "'{url}' does not match its signed INDEX entry: the patch's header says \
                 {field} {got}, the INDEX says {field} {want}; it would not lead where the \
                 INDEX says (deleted; nothing was applied)"
            )))
        }
    }
}

/// The header of the downloaded patch `file` in `dir` (`path`, for
/// messages), read through the directory's descriptor, never a link.
fn read_header(dir: DownloadDir, file: &str, path: &Path) -> Result<PatchHeader> {
    let mut f = dir
        .fd
        .open_file(file.as_bytes())
        .map_err(|e| Error::io("open patch", path, e))?;
    let file_len = f
        .metadata()
        .map_err(|e| Error::io("stat patch", path, e))?
        .len();
    PatchHeader::read(&mut f, file_len, path)
}

/// Remove finished downloads that no step of this update needs: an update
/// killed between its apply and their removal leaves them, and the next one
/// finds the host up to date.
/// Writes: removes `*.tar.gz` and `*.patch` files in `dir`.
fn prune_finished(dir: DownloadDir, steps: &[Step]) -> Result<()> {
    for name in dir.fd.list().ctx("list", dir.shown)? {
        let name = String::from_utf8_lossy(&name).into_owned();
        let ours = name.ends_with(".tar.gz") || name.ends_with(crate::format::name::PATCH_SUFFIX);
        if ours && !steps.iter().any(|s| s.file == name) {
            let p = dir.shown.join(&name);
            dir.fd.unlink(name.as_bytes()).ctx("remove", &p)?;
        }
    }
    Ok(())
}

/// Refuse before downloading when the download directory's filesystem
/// cannot hold what is still to fetch. (`fs_path` reaches the directory
/// for `statvfs`, through its held descriptor; `dir.shown` names it in the
/// message.)
fn check_space(dir: DownloadDir, fs_path: &Path, steps: &[Step]) -> Result<()> {
    let mut need = 0u64;
    for s in steps {
        let size_of = |name: &str| {
            dir.fd
                .stat(name.as_bytes())
                .ok()
                .flatten()
                .map(|st| st.size)
        };
        let have = size_of(&s.file)
            .or_else(|| size_of(&format!("{}.partial", hex::encode(s.sha256))))
            .map_or(0, |n| n.min(s.size));
        need += s.size - have;
    }
    let free = crate::util::fsutil::free_bytes(fs_path)?;
    if need > free {
        return Err(Error::Refused(format!(
            "the update needs {need} more bytes in {}, which has {free} free; nothing was \
             downloaded",
            dir.shown.display()
        )));
    }
    Ok(())
}
