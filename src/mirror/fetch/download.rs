//! Resumable, verified downloads of dists and patches into a download
//! directory: `<dir>/<sha256>.partial` while a file comes in, resumed with
//! an HTTP Range request when a previous run left part of it, renamed to
//! `<dir>/<file>` only once its size and SHA-256 are the signed INDEX's.
//!
//! Invariants:
//! - a file appears under its own name only once verified, and a finished
//!   file found there is re-hashed before it is used;
//! - a partial file is named by the SHA-256 it must end with, so a resume
//!   never splices two versions of a file; if a resumed file still fails
//!   its check, it is fetched once more from byte 0 before giving up;
//! - no more bytes than the INDEX states are ever written, whatever the
//!   server sends; a size the INDEX does not state fails at once;
//! - the download reports one progress step per file (its name, in bytes).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::{header, Fail, Mirror};
use crate::error::{Error, IoContext, Result};
use crate::host::root::{Dir, Stat};
use crate::util::digest::Sha256Reader;
use crate::util::progress::{Progress, Unit};

/// What [`Mirror::download`] did for one file.
#[derive(Clone, Debug, Serialize)]
pub struct Downloaded {
    pub file: String,
    pub path: PathBuf,
    pub size: u64,
    /// Bytes that came over the network in this run.
    pub fetched: u64,
    /// Bytes a previous run had left in the partial file and that were kept.
    pub resumed_from: u64,
    /// The verified file was already there; nothing was fetched.
    pub reused: bool,
}

/// The download directory: its descriptor, through which every file in it
/// is reached (`O_NOFOLLOW`, no path resolved again), and its path, which
/// names them in reports and messages.
#[derive(Clone, Copy)]
pub struct DownloadDir<'a> {
    pub fd: &'a Dir,
    pub shown: &'a Path,
}

impl DownloadDir<'_> {
    fn path(&self, name: &str) -> PathBuf {
        self.shown.join(name)
    }

    /// `name`'s status, not following a link; `None` when missing.
    fn stat(&self, name: &str) -> Result<Option<Stat>> {
        self.fd.stat(name.as_bytes()).ctx("stat", self.path(name))
    }

    /// Size and SHA-256 of `name`'s content, never through a link.
    fn sha256(&self, name: &str) -> Result<(u64, [u8; 32])> {
        let p = self.path(name);
        let f = self.fd.open_file(name.as_bytes()).ctx("open", &p)?;
        let mut r = Sha256Reader::new(BufReader::with_capacity(1 << 20, f));
        io::copy(&mut r, &mut io::sink()).ctx("read", &p)?;
        Ok(r.finish())
    }

    fn unlink(&self, name: &str) -> Result<()> {
        self.fd
            .unlink(name.as_bytes())
            .ctx("remove", self.path(name))
    }
}

/// File name of the partial download of the file whose SHA-256 is `sha256`.
fn partial_name(sha256: &[u8; 32]) -> String {
    format!("{}.partial", hex::encode(sha256))
}

/// Whether `file` in `dir` (with status `st`) is the finished file: a
/// download uses it as it is.
fn is_verified(
    dir: DownloadDir,
    file: &str,
    st: &Stat,
    size: u64,
    sha256: &[u8; 32],
) -> Result<bool> {
    Ok(st.is_file() && st.size == size && dir.sha256(file)?.1 == *sha256)
}

/// Bytes of the partial file `partial` a download resumes from.
fn resumable(dir: DownloadDir, partial: &str, size: u64) -> u64 {
    match dir.fd.stat(partial.as_bytes()) {
        Ok(Some(st)) if st.size <= size => st.size,
        _ => 0,
    }
}

/// What [`Mirror::download`] of `file` into `dir` would fetch, told from
/// what `dir` holds: the finished file (reused), else the bytes past a
/// partial file it would resume. `fetched` is the bytes it would bring.
/// Writes: nothing.
pub fn foretell(dir: DownloadDir, file: &str, size: u64, sha256: &[u8; 32]) -> Result<Downloaded> {
    let mut out = Downloaded {
        file: file.to_string(),
        path: dir.path(file),
        size,
        fetched: size,
        resumed_from: 0,
        reused: false,
    };
    if let Some(st) = dir.stat(file)? {
        if is_verified(dir, file, &st, size, sha256)? {
            out.reused = true;
            out.fetched = 0;
            return Ok(out);
        }
    }
    out.resumed_from = resumable(dir, &partial_name(sha256), size);
    out.fetched = size - out.resumed_from;
    Ok(out)
}

/// Remove partial downloads in `dir` that no file of `keep` (SHA-256s) will
/// resume. Writes: removes files.
pub fn prune_partials(dir: DownloadDir, keep: &[[u8; 32]]) -> Result<()> {
    let keep: Vec<String> = keep.iter().map(partial_name).collect();
    for name in dir.fd.list().ctx("list", dir.shown)? {
        // Names are bytes: one that is not UTF-8 is no partial of ours.
        let Ok(name) = String::from_utf8(name) else {
            continue;
        };
        if name.ends_with(".partial") && !keep.contains(&name) {
            dir.unlink(&name)?;
        }
    }
    Ok(())
}

/// One file being downloaded: what the INDEX says of it and where it goes.
pub(super) struct Job<'a> {
    pub(super) file: &'a str,
    pub(super) size: u64,
    dir: DownloadDir<'a>,
    /// The partial file's name in `dir`, and its path (for messages).
    partial_name: &'a str,
    partial: &'a Path,
    deadline: Instant,
}

impl Mirror {
    /// Download `file` (`size` bytes, SHA-256 `sha256`, as the signed INDEX
    /// says) into `dir`, resuming a partial file a previous run left.
    /// Writes: `dir/<sha256>.partial` while it runs, then `dir/<file>`.
    pub fn download(
        &self,
        file: &str,
        size: u64,
        sha256: &[u8; 32],
        dir: DownloadDir,
        progress: &Progress,
    ) -> Result<Downloaded> {
        let dest = dir.path(file);
        let mut out = Downloaded {
            file: file.to_string(),
            path: dest.clone(),
            size,
            fetched: 0,
            resumed_from: 0,
            reused: false,
        };
        match dir.stat(file)? {
            Some(st) if is_verified(dir, file, &st, size, sha256)? => {
                out.reused = true;
                return Ok(out);
            }
            Some(st) if st.is_dir() => {
                return Err(Error::Refused(format!(
                    "'{}' is a directory",
                    dest.display()
                )))
            }
            Some(_) => dir.unlink(file)?,
            None => {}
        }
        let partial_name = partial_name(sha256);
        let partial = dir.path(&partial_name);
        out.resumed_from = resumable(dir, &partial_name, size);
        let mut may_restart = out.resumed_from > 0;
        let job = Job {
            file,
            size,
            dir,
            partial_name: &partial_name,
            partial: &partial,
            deadline: self.deadline(),
        };
        loop {
            let r = self.retry(file, job.deadline, || {
                self.attempt(&job, progress, &mut out)
            });
            progress.done();
            if let Err(e) = r {
                // Leave no empty partial file behind a refusal.
                if matches!(dir.fd.stat(partial_name.as_bytes()), Ok(Some(st)) if st.size == 0) {
                    let _ = dir.fd.unlink(partial_name.as_bytes());
                }
                return Err(e);
            }
            let (n, got) = dir.sha256(&partial_name)?;
            if n == size && got == *sha256 {
                dir.fd
                    .open_file(partial_name.as_bytes())
                    .and_then(|f| f.sync_all())
                    .ctx("fsync", &partial)?;
                dir.fd
                    .rename(partial_name.as_bytes(), dir.fd, file.as_bytes())
                    .ctx("rename into place", &dest)?;
                dir.fd.sync().ctx("fsync directory", dir.shown)?;
                return Ok(out);
            }
            dir.unlink(&partial_name)?;
            if may_restart {
                // The part kept from an earlier run may be what is wrong.
                may_restart = false;
                out.resumed_from = 0;
                continue;
            }
            return Err(Error::Refused(format!(
                "'{}' does not match the signed INDEX: SHA-256 {} expected, {} received; \
                 the mirror serves a damaged or wrong file (deleted; nothing was applied)",
                self.url(file),
                hex::encode(sha256),
                hex::encode(got)
            )));
        }
    }

    /// One request (or, from a directory mirror, one read): bring the
    /// partial file to `job.size` bytes (unverified).
    fn attempt(
        &self,
        job: &Job,
        progress: &Progress,
        out: &mut Downloaded,
    ) -> std::result::Result<(), Fail> {
        let (size, partial) = (job.size, job.partial);
        let mut f = open_partial(job).map_err(Fail::Fatal)?;
        let mut have = f
            .metadata()
            .ctx("stat", partial)
            .map_err(Fail::Fatal)?
            .len();
        if have > size {
            f.set_len(0).ctx("truncate", partial).map_err(Fail::Fatal)?;
            have = 0;
        }
        if have == size {
            return Ok(());
        }
        if let Some(dir) = &self.local {
            let src = self.local_open(dir, job, have)?;
            f.seek(SeekFrom::Start(have))
                .ctx("seek", partial)
                .map_err(Fail::Fatal)?;
            progress.step(job.file, Some(size), Unit::Bytes);
            progress.set(have);
            return self.write_body(job, src, f, have, progress, out);
        }
        let mut resp = self.get(job.file, have, false, job.deadline)?;
        have = self.start_at(job, &resp, &f, have, out)?;
        self.check_encoding(job.file, &resp)?;
        f.seek(SeekFrom::Start(have))
            .ctx("seek", partial)
            .map_err(Fail::Fatal)?;
        progress.step(job.file, Some(size), Unit::Bytes);
        progress.set(have);
        let body = self.paced(resp.body_mut().as_reader(), job.deadline);
        self.write_body(job, body, f, have, progress, out)
    }

    /// Check the response to a request from byte `have` against the INDEX:
    /// the byte its body starts at (0 when the server ignored the Range).
    /// A response that makes the partial file useless truncates it.
    fn start_at(
        &self,
        job: &Job,
        resp: &ureq::http::Response<ureq::Body>,
        f: &File,
        mut have: u64,
        out: &mut Downloaded,
    ) -> std::result::Result<u64, Fail> {
        let (size, partial) = (job.size, job.partial);
        let stale = |served: u64| {
            Fail::Fatal(Error::Refused(format!(
                "'{}' is {served} bytes on the mirror but {size} in the signed INDEX; \
                 the mirror is incomplete or serves another file (nothing was applied)",
                self.url(job.file)
            )))
        };
        let truncate = || f.set_len(0).ctx("truncate", partial).map_err(Fail::Fatal);
        match resp.status().as_u16() {
            200 => {
                if let Some(len) = resp.body().content_length() {
                    if len != size {
                        return Err(stale(len));
                    }
                }
                if have > 0 {
                    // The server ignored the Range: start over.
                    out.resumed_from = 0;
                    truncate()?;
                    have = 0;
                }
            }
            206 => {
                let cr = header(resp, "content-range");
                match parse_content_range(&cr) {
                    Some((start, _, total)) if start == have && total.is_none_or(|t| t == size) => {
                    }
                    Some((_, _, Some(total))) if total != size => return Err(stale(total)),
                    _ => {
                        truncate()?;
                        return Err(Fail::Transient(format!(
                            "unusable Content-Range '{cr}' for a request from byte {have}"
                        )));
                    }
                }
            }
            416 => {
                let cr = header(resp, "content-range");
                if let Some(total) = cr
                    .strip_prefix("bytes */")
                    .and_then(|t| t.parse::<u64>().ok())
                {
                    if total != size {
                        return Err(stale(total));
                    }
                }
                truncate()?;
                return Err(Fail::Transient(format!(
                    "HTTP 416 for a request from byte {have}"
                )));
            }
            s => return Err(self.status_fail(job.file, s)),
        }
        Ok(have)
    }

    /// Append `body` to the partial file `f` (at `have` bytes) up to the
    /// INDEX's size, never past it.
    fn write_body(
        &self,
        job: &Job,
        mut body: impl Read,
        mut f: File,
        mut have: u64,
        progress: &Progress,
        out: &mut Downloaded,
    ) -> std::result::Result<(), Fail> {
        let (size, partial) = (job.size, job.partial);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    f.flush().ctx("write", partial).map_err(Fail::Fatal)?;
                    return Err(Fail::Transient(format!(
                        "transfer cut after {have} of {size} bytes: {e}"
                    )));
                }
            };
            if have + n as u64 > size {
                drop(f);
                let _ = job.dir.fd.unlink(job.partial_name.as_bytes());
                return Err(Fail::Fatal(Error::Refused(format!(
                    "'{}' is longer on the mirror than the {size} bytes the signed INDEX says \
                     (deleted; nothing was applied)",
                    self.url(job.file)
                ))));
            }
            f.write_all(&buf[..n])
                .ctx("write", partial)
                .map_err(Fail::Fatal)?;
            have += n as u64;
            out.fetched += n as u64;
            progress.add(n as u64);
        }
        if have < size {
            return Err(Fail::Transient(format!(
                "transfer cut after {have} of {size} bytes"
            )));
        }
        Ok(())
    }
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`).
fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (s, e) = range.split_once('-')?;
    let total = match total {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((s.parse().ok()?, e.parse().ok()?, total))
}

/// Open (or create, 0600) the partial file for reading and writing
/// through the download directory's descriptor: sysup's state, so a link
/// in its place is refused, never followed.
fn open_partial(job: &Job) -> Result<File> {
    job.dir
        .fd
        .open_file_with(
            job.partial_name.as_bytes(),
            libc::O_RDWR | libc::O_CREAT,
            0o600,
        )
        .ctx("open", job.partial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 10-19/20"),
            Some((10, 19, Some(20)))
        );
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, 0, None)));
        assert_eq!(parse_content_range("bytes */20"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}
