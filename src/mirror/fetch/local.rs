//! Directory mirrors: `--mirror file:///media/usb/mirror` or a plain path.
//! The directory is read, never written; its files take the same road as
//! over HTTP — small files under the same caps, dists and patches copied
//! into `<download dir>/<sha256>.partial` (resumed from what a previous run
//! left), checked against the size and SHA-256 of the signed INDEX and only
//! then renamed (`download.rs`).
//!
//! Invariants: only regular files are read (a link is followed — the mirror
//! is a source to verify, like a web server, not a directory sysup writes
//! to); no more bytes than the INDEX states are copied; a file whose size
//! is not the INDEX's fails at once; every error names the file's path.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use super::download::Job;
use super::{Fail, Mirror};
use crate::error::{Error, IoContext, Result};

/// The directory of a directory mirror `url`: a `file://` URL (empty or
/// `localhost` host, `%XX` escapes decoded) or a path; `None` for any other
/// URL (`scheme://…`).
pub(super) fn directory(url: &str) -> Result<Option<PathBuf>> {
    let bad = |why: &str| Error::Refused(format!("mirror URL '{url}' {why}"));
    let Some(rest) = url.strip_prefix("file://") else {
        return Ok(
            (!url.contains("://") && !url.is_empty()).then(|| PathBuf::from(trim_slashes(url)))
        );
    };
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    if !path.starts_with('/') {
        return Err(bad(
            "names a host: a file:// mirror is a directory of this machine (file:///path)",
        ));
    }
    let mut bytes = percent_decode(path).ok_or_else(|| bad("has a bad %-escape"))?;
    if bytes.contains(&0) {
        return Err(bad("has a NUL byte"));
    }
    while bytes.len() > 1 && bytes.ends_with(b"/") {
        bytes.pop();
    }
    Ok(Some(PathBuf::from(std::ffi::OsString::from_vec(bytes))))
}

/// `s` without trailing slashes (but `/` stays `/`).
fn trim_slashes(s: &str) -> &str {
    let t = s.trim_end_matches('/');
    if t.is_empty() && s.starts_with('/') {
        "/"
    } else {
        t
    }
}

/// `s` with its `%XX` escapes decoded; `None` for a broken one.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Open `path` for reading if it is a regular file (after links);
/// `Ok(None)` when missing.
fn open_regular(path: &Path) -> Result<Option<(File, u64)>> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let md = f.metadata().ctx("stat", path)?;
    if !md.is_file() {
        return Err(Error::Refused(format!(
            "'{}' on the mirror is not a regular file",
            path.display()
        )));
    }
    Ok(Some((f, md.len())))
}

impl Mirror {
    /// A small file of the directory mirror `dir`, whole (at most `max`
    /// bytes); `Ok(None)` when it is not there.
    pub(super) fn local_small(&self, dir: &Path, file: &str, max: u64) -> Result<Option<Vec<u8>>> {
        let path = dir.join(file);
        let Some((f, _)) = open_regular(&path)? else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        f.take(max + 1).read_to_end(&mut buf).ctx("read", &path)?;
        if buf.len() as u64 > max {
            return Err(Error::Refused(format!(
                "'{}' is larger than the {max} bytes allowed",
                path.display()
            )));
        }
        Ok(Some(buf))
    }

    /// The file of `job` in the directory mirror `dir`, checked to be the
    /// INDEX's size, positioned at byte `have` and capped at that size.
    pub(super) fn local_open(
        &self,
        dir: &Path,
        job: &Job,
        have: u64,
    ) -> std::result::Result<impl Read, Fail> {
        let path = dir.join(job.file);
        let (mut f, len) = open_regular(&path)
            .and_then(|o| {
                o.ok_or_else(|| {
                    Error::io(
                        "read",
                        &path,
                        io::Error::other("not on the mirror, which the signed INDEX lists it in"),
                    )
                })
            })
            .map_err(Fail::Fatal)?;
        if len != job.size {
            return Err(Fail::Fatal(Error::Refused(format!(
                "'{}' is {len} bytes on the mirror but {} in the signed INDEX; the mirror is \
                 incomplete or holds another file (nothing was applied)",
                path.display(),
                job.size
            ))));
        }
        f.seek(SeekFrom::Start(have))
            .ctx("seek", &path)
            .map_err(Fail::Fatal)?;
        // One byte past the size, so a file that grew is caught, not cut.
        Ok(f.take(job.size - have + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_urls() {
        let d = |u: &str| directory(u).unwrap();
        assert_eq!(
            d("file:///media/usb/m/"),
            Some(PathBuf::from("/media/usb/m"))
        );
        assert_eq!(d("file://localhost/m"), Some(PathBuf::from("/m")));
        assert_eq!(d("file:///a%20b"), Some(PathBuf::from("/a b")));
        assert_eq!(d("/srv/mirror/"), Some(PathBuf::from("/srv/mirror")));
        assert_eq!(d("mirror"), Some(PathBuf::from("mirror")));
        assert_eq!(d("file:///"), Some(PathBuf::from("/")));
        assert_eq!(d("http://h/x"), None);
        assert_eq!(d("ftp://h/x"), None);
        assert!(directory("file://host/x").is_err());
        assert!(directory("file:///a%2").is_err());
        assert!(directory("file:///a%00b").is_err());
    }
}
