//! Downloads from a mirror (DESIGN §6): any static HTTP(S) server, CDN or
//! caching proxy. Small files (INDEX, its signature) are read into memory
//! under a size cap; dists and patches are downloaded to
//! `<download dir>/<sha256>.partial`, resumed with an HTTP Range request
//! when a previous run left part of one, checked against the size and
//! SHA-256 the signed INDEX gives, and only then renamed to their file name.
//!
//! Invariants:
//! - a file appears under its own name in the download directory only once
//!   its size and SHA-256 are the INDEX's (a finished file found there is
//!   re-hashed before it is used): nothing unverified is ever handed on;
//! - a partial file is named by the SHA-256 it must end with, so a resume
//!   never splices two versions of a file; if a resumed file still fails
//!   its check, it is fetched once more from byte 0 before giving up;
//! - no more bytes than the INDEX states are ever written, whatever the
//!   server sends; bodies are never decoded (`Accept-Encoding: identity`
//!   on every request, and an encoded response is refused);
//! - retries are bounded ([`FetchOptions::retries`]) and only for what may
//!   pass on its own (connection failures, timeouts, 5xx, 408, 429, a cut
//!   or too slow transfer); a 404, a size the INDEX does not state, or a
//!   wrong hash fails at once;
//! - no file holds the caller (and the host lock it holds) for long: a
//!   transfer that brings fewer than [`FetchOptions::speed_limit`] bytes a
//!   second over the last [`FetchOptions::speed_time`] is cut (and retried),
//!   and every file — all its attempts and back-offs together — has
//!   [`FetchOptions::deadline`], after which it fails without a retry.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::util::digest::file_sha256;
use crate::util::fsutil::fsync_dir;
use crate::util::progress::{Progress, Unit};

/// How hard to try.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Retries after the first attempt, per file.
    pub retries: u32,
    /// Wait before the first retry; doubled for each next one.
    pub backoff: Duration,
    /// Limit on opening a connection.
    pub connect_timeout: Duration,
    /// Limit on each read from the server (a stalled transfer).
    pub read_timeout: Duration,
    /// Bytes per second a transfer must bring, on average over the last
    /// [`FetchOptions::speed_time`]; 0: no limit.
    pub speed_limit: u64,
    /// The window of the speed limit (at least a second).
    pub speed_time: Duration,
    /// Longest a file may take, all its attempts and waits together.
    pub deadline: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            retries: 3,
            backoff: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            speed_limit: DEFAULT_SPEED_LIMIT,
            speed_time: Duration::from_secs(DEFAULT_SPEED_TIME),
            deadline: Duration::from_secs(DEFAULT_DEADLINE),
        }
    }
}

/// Default of [`FetchOptions::speed_limit`] (bytes per second): far below
/// any working link, far above a server that drips bytes to hold a host.
pub const DEFAULT_SPEED_LIMIT: u64 = 1024;
/// Default of [`FetchOptions::speed_time`] (seconds).
pub const DEFAULT_SPEED_TIME: u64 = 60;
/// Default of [`FetchOptions::deadline`] (seconds): four hours, a 1 GB dist
/// at 70 kB/s.
pub const DEFAULT_DEADLINE: u64 = 4 * 3600;

/// The low-speed guard of one transfer: too slow once, after the first
/// `time`, fewer than `limit` bytes a second arrived over the last `time`.
struct Pace {
    limit: u64,
    time: Duration,
    start: Instant,
    /// (when, bytes) in arrival order, reads close together merged, so it
    /// holds at most about 20 entries per window.
    samples: VecDeque<(Instant, u64)>,
    in_window: u64,
}

impl Pace {
    fn new(limit: u64, time: Duration) -> Pace {
        Pace {
            limit,
            time: time.max(Duration::from_secs(1)),
            start: Instant::now(),
            samples: VecDeque::new(),
            in_window: 0,
        }
    }

    /// `n` more bytes arrived (0: a read ended without any); `Err` with the
    /// reason when the transfer is too slow.
    fn note(&mut self, n: u64) -> std::result::Result<(), String> {
        let now = Instant::now();
        match self.samples.back_mut() {
            Some((t, b)) if now.duration_since(*t) < self.time / 20 => *b += n,
            _ => self.samples.push_back((now, n)),
        }
        self.in_window += n;
        while let Some(&(t, b)) = self.samples.front() {
            if now.duration_since(t) <= self.time {
                break;
            }
            self.samples.pop_front();
            self.in_window -= b;
        }
        if self.limit == 0 || now.duration_since(self.start) < self.time {
            return Ok(());
        }
        let need = u128::from(self.limit) * self.time.as_millis() / 1000;
        if u128::from(self.in_window) < need {
            return Err(format!(
                "slower than {} bytes/s over the last {} s ({} bytes arrived); the mirror or \
                 the link stalls (speed-limit and speed-time in the [mirror] table of \
                 sysup.conf)",
                self.limit,
                self.time.as_secs(),
                self.in_window
            ));
        }
        Ok(())
    }
}

/// A response body read under a [`Pace`] and a deadline: a read past the
/// deadline, or one after the transfer turned too slow, fails (the bytes
/// that arrived are handed on first, so a resume keeps them).
struct Paced<R> {
    inner: R,
    pace: Pace,
    deadline: Instant,
    /// Too slow, found after a read that still brought bytes.
    slow: Option<String>,
}

impl<R: Read> Read for Paced<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if Instant::now() >= self.deadline {
            return Err(io::Error::other("its deadline passed"));
        }
        if let Some(why) = &self.slow {
            return Err(io::Error::other(why.clone()));
        }
        match self.inner.read(buf) {
            Ok(0) => Ok(0),
            Ok(n) => {
                self.slow = self.pace.note(n as u64).err();
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                if Instant::now() >= self.deadline {
                    return Err(io::Error::other("its deadline passed"));
                }
                self.pace.note(0).map_err(io::Error::other)?;
                Err(e)
            }
        }
    }
}

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

/// Whether `dest` (with metadata `md`) is the finished file: a download
/// uses it as it is.
fn is_verified(dest: &Path, md: &fs::Metadata, size: u64, sha256: &[u8; 32]) -> Result<bool> {
    Ok(md.is_file() && md.len() == size && file_sha256(dest)?.1 == *sha256)
}

/// Bytes of `partial` a download resumes from.
fn resumable(partial: &Path, size: u64) -> u64 {
    match fs::metadata(partial) {
        Ok(md) if md.len() <= size => md.len(),
        _ => 0,
    }
}

/// What [`Mirror::download`] of `file` into `dir` would fetch, told from
/// what `dir` holds: the finished file (reused), else the bytes past a
/// partial file it would resume. `fetched` is the bytes it would bring.
/// Writes: nothing.
pub fn foretell(dir: &Path, file: &str, size: u64, sha256: &[u8; 32]) -> Result<Downloaded> {
    let dest = dir.join(file);
    let mut out = Downloaded {
        file: file.to_string(),
        path: dest.clone(),
        size,
        fetched: size,
        resumed_from: 0,
        reused: false,
    };
    match fs::symlink_metadata(&dest) {
        Ok(md) if is_verified(&dest, &md, size, sha256)? => {
            out.reused = true;
            out.fetched = 0;
            return Ok(out);
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("stat", &dest, e)),
    }
    let partial = dir.join(format!("{}.partial", hex::encode(sha256)));
    out.resumed_from = resumable(&partial, size);
    out.fetched = size - out.resumed_from;
    Ok(out)
}

/// A mirror: a base URL and an HTTP agent.
pub struct Mirror {
    base: String,
    agent: ureq::Agent,
    opts: FetchOptions,
}

/// How one attempt ended badly.
enum Fail {
    /// May pass on its own: try again (resuming).
    Transient(String),
    /// Will not pass by trying again.
    Fatal(Error),
}

impl Mirror {
    /// A mirror at `url` (`http://` or `https://`; a trailing `/` is optional).
    pub fn new(url: &str, opts: FetchOptions) -> Result<Mirror> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::Refused(format!(
                "mirror URL '{url}' must start with http:// or https://"
            )));
        }
        // A read that waits a whole speed window brings too little.
        let per_read = match opts.speed_limit {
            0 => opts.read_timeout,
            _ => opts
                .read_timeout
                .min(opts.speed_time.max(Duration::from_secs(1))),
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .accept_encoding("identity")
            .user_agent(concat!("sysup/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(opts.connect_timeout))
            .timeout_resolve(Some(opts.connect_timeout))
            .timeout_per_read(Some(per_read))
            .timeout_recv_response(Some(opts.read_timeout))
            .build();
        Ok(Mirror {
            base: url.trim_end_matches('/').to_string(),
            agent: config.into(),
            opts,
        })
    }

    /// The URL of `file` on this mirror. `file` is a bare file name (the
    /// INDEX parser guarantees it for dists and patches).
    pub fn url(&self, file: &str) -> String {
        format!("{}/{}", self.base, file)
    }

    /// The mirror's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url_error(&self, file: &str, action: &'static str, msg: String) -> Error {
        Error::io(action, self.url(file), io::Error::other(msg))
    }

    /// When a download of a file starting now must be done.
    fn deadline(&self) -> Instant {
        Instant::now() + self.opts.deadline
    }

    fn deadline_error(&self, file: &str, last: &str) -> Error {
        self.url_error(
            file,
            "download",
            format!(
                "not done within its deadline of {} s ({last}); the mirror or the link is too \
                 slow (deadline in the [mirror] table of sysup.conf)",
                self.opts.deadline.as_secs()
            ),
        )
    }

    fn retry<T>(
        &self,
        file: &str,
        deadline: Instant,
        mut once: impl FnMut() -> std::result::Result<T, Fail>,
    ) -> Result<T> {
        let mut wait = self.opts.backoff;
        let mut last = String::new();
        for attempt in 0..=self.opts.retries {
            if attempt > 0 {
                if Instant::now() + wait >= deadline {
                    return Err(self.deadline_error(file, &last));
                }
                std::thread::sleep(wait);
                wait = wait.saturating_mul(2);
            }
            match once() {
                Ok(v) => return Ok(v),
                Err(Fail::Fatal(e)) => return Err(e),
                Err(Fail::Transient(why)) if Instant::now() >= deadline => {
                    return Err(self.deadline_error(file, &why))
                }
                Err(Fail::Transient(why)) => last = why,
            }
        }
        Err(self.url_error(
            file,
            "download",
            match self.opts.retries {
                0 => format!("{last} (no retries asked for)"),
                r => format!(
                    "{last} (gave up after {} attempts; is the mirror up and the URL right?)",
                    r + 1
                ),
            },
        ))
    }

    fn get(
        &self,
        file: &str,
        range_from: u64,
        no_cache: bool,
        deadline: Instant,
    ) -> std::result::Result<ureq::http::Response<ureq::Body>, Fail> {
        // ureq enforces the rest of the deadline, even inside a blocked read.
        let left = deadline.saturating_duration_since(Instant::now());
        let mut req = self
            .agent
            .get(&self.url(file))
            .config()
            .timeout_global(Some(left))
            .build();
        if range_from > 0 {
            req = req.header("Range", format!("bytes={range_from}-"));
        }
        if no_cache {
            req = req.header("Cache-Control", "no-cache");
        }
        req.call().map_err(|e| match e {
            ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
            | ureq::Error::Protocol(_) => Fail::Transient(e.to_string()),
            e => Fail::Fatal(self.url_error(file, "fetch", e.to_string())),
        })
    }

    /// Map a non-success status: transient ones retry, others fail now.
    fn status_fail(&self, file: &str, status: u16) -> Fail {
        let reason = ureq::http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let msg = format!("HTTP {status} {reason}").trim_end().to_string();
        match status {
            408 | 429 | 500..=599 => Fail::Transient(msg),
            404 | 410 => Fail::Fatal(self.url_error(
                file,
                "fetch",
                format!("{msg}: the mirror does not have it"),
            )),
            _ => Fail::Fatal(self.url_error(file, "fetch", msg)),
        }
    }

    fn check_encoding(
        &self,
        file: &str,
        resp: &ureq::http::Response<ureq::Body>,
    ) -> std::result::Result<(), Fail> {
        match resp
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap_or("?"))
        {
            None | Some("identity") => Ok(()),
            Some(enc) => Err(Fail::Fatal(self.url_error(
                file,
                "fetch",
                format!("the server sent it {enc}-encoded although sysup asked for identity"),
            ))),
        }
    }

    /// Fetch a small file whole (at most `max` bytes), asking caches to
    /// revalidate it. `Ok(None)` when the mirror does not have it (404/410).
    pub fn fetch_small(&self, file: &str, max: u64) -> Result<Option<Vec<u8>>> {
        let deadline = self.deadline();
        let got = self.retry(file, deadline, || {
            let mut resp = self.get(file, 0, true, deadline)?;
            let status = resp.status().as_u16();
            if status == 404 || status == 410 {
                return Ok(None);
            }
            if status != 200 {
                return Err(self.status_fail(file, status));
            }
            self.check_encoding(file, &resp)?;
            let mut buf = Vec::new();
            self.paced(resp.body_mut().as_reader(), deadline)
                .take(max + 1)
                .read_to_end(&mut buf)
                .map_err(|e| Fail::Transient(format!("transfer cut: {e}")))?;
            if buf.len() as u64 > max {
                return Err(Fail::Fatal(self.url_error(
                    file,
                    "fetch",
                    format!("larger than the {max} bytes allowed"),
                )));
            }
            Ok(Some(buf))
        })?;
        Ok(got)
    }

    /// Download `file` (`size` bytes, SHA-256 `sha256`, as the signed INDEX
    /// says) into `dir`, resuming a partial file a previous run left.
    /// Writes: `dir/<sha256>.partial` while it runs, then `dir/<file>`.
    pub fn download(
        &self,
        file: &str,
        size: u64,
        sha256: &[u8; 32],
        dir: &Path,
        progress: &Progress,
    ) -> Result<Downloaded> {
        let dest = dir.join(file);
        let mut out = Downloaded {
            file: file.to_string(),
            path: dest.clone(),
            size,
            fetched: 0,
            resumed_from: 0,
            reused: false,
        };
        match fs::symlink_metadata(&dest) {
            Ok(md) if is_verified(&dest, &md, size, sha256)? => {
                out.reused = true;
                return Ok(out);
            }
            Ok(md) if md.is_dir() => {
                return Err(Error::Refused(format!(
                    "'{}' is a directory",
                    dest.display()
                )))
            }
            Ok(_) => fs::remove_file(&dest).ctx("remove", &dest)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("stat", &dest, e)),
        }
        let partial = dir.join(format!("{}.partial", hex::encode(sha256)));
        out.resumed_from = resumable(&partial, size);
        let mut may_restart = out.resumed_from > 0;
        let deadline = self.deadline();
        loop {
            let r = self.retry(file, deadline, || {
                self.attempt(file, size, &partial, progress, &mut out, deadline)
            });
            progress.done();
            if let Err(e) = r {
                // Leave no empty partial file behind a refusal.
                if fs::metadata(&partial).is_ok_and(|m| m.len() == 0) {
                    let _ = fs::remove_file(&partial);
                }
                return Err(e);
            }
            let (n, got) = file_sha256(&partial)?;
            if n == size && got == *sha256 {
                File::open(&partial)
                    .and_then(|f| f.sync_all())
                    .ctx("fsync", &partial)?;
                fs::rename(&partial, &dest).ctx("rename into place", &dest)?;
                fsync_dir(dir)?;
                return Ok(out);
            }
            fs::remove_file(&partial).ctx("remove", &partial)?;
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

    /// One request: bring `partial` to `size` bytes (unverified).
    fn attempt(
        &self,
        file: &str,
        size: u64,
        partial: &Path,
        progress: &Progress,
        out: &mut Downloaded,
        deadline: Instant,
    ) -> std::result::Result<(), Fail> {
        let fatal = |e: Error| Fail::Fatal(e);
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            // sysup's state: a link in its place is refused, never followed
            .custom_flags(libc::O_NOFOLLOW)
            .open(partial)
            .ctx("open", partial)
            .map_err(fatal)?;
        let mut have = f.metadata().ctx("stat", partial).map_err(fatal)?.len();
        if have > size {
            f.set_len(0).ctx("truncate", partial).map_err(fatal)?;
            have = 0;
        }
        if have == size {
            return Ok(());
        }
        let mut resp = self.get(file, have, false, deadline)?;
        let status = resp.status().as_u16();
        let stale = |served: u64| {
            Fail::Fatal(Error::Refused(format!(
                "'{}' is {served} bytes on the mirror but {size} in the signed INDEX; \
                 the mirror is incomplete or serves another file (nothing was applied)",
                self.url(file)
            )))
        };
        match status {
            200 => {
                if let Some(len) = resp.body().content_length() {
                    if len != size {
                        return Err(stale(len));
                    }
                }
                if have > 0 {
                    // The server ignored the Range: start over.
                    out.resumed_from = 0;
                    f.set_len(0).ctx("truncate", partial).map_err(fatal)?;
                    have = 0;
                }
            }
            206 => {
                let cr = header(&resp, "content-range");
                match parse_content_range(&cr) {
                    Some((start, _, total)) if start == have && total.is_none_or(|t| t == size) => {
                    }
                    Some((_, _, Some(total))) if total != size => return Err(stale(total)),
                    _ => {
                        f.set_len(0).ctx("truncate", partial).map_err(fatal)?;
                        return Err(Fail::Transient(format!(
                            "unusable Content-Range '{cr}' for a request from byte {have}"
                        )));
                    }
                }
            }
            416 => {
                let cr = header(&resp, "content-range");
                if let Some(total) = cr
                    .strip_prefix("bytes */")
                    .and_then(|t| t.parse::<u64>().ok())
                {
                    if total != size {
                        return Err(stale(total));
                    }
                }
                f.set_len(0).ctx("truncate", partial).map_err(fatal)?;
                return Err(Fail::Transient(format!(
                    "HTTP 416 for a request from byte {have}"
                )));
            }
            s => return Err(self.status_fail(file, s)),
        }
        self.check_encoding(file, &resp)?;
        f.seek(SeekFrom::Start(have))
            .ctx("seek", partial)
            .map_err(fatal)?;
        progress.step(file, Some(size), Unit::Bytes);
        progress.set(have);
        let mut body = self.paced(resp.body_mut().as_reader(), deadline);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    f.flush().ctx("write", partial).map_err(fatal)?;
                    return Err(Fail::Transient(format!(
                        "transfer cut after {have} of {size} bytes: {e}"
                    )));
                }
            };
            if have + n as u64 > size {
                drop(f);
                let _ = fs::remove_file(partial);
                return Err(Fail::Fatal(Error::Refused(format!(
                    "'{}' is longer on the mirror than the {size} bytes the signed INDEX says \
                     (deleted; nothing was applied)",
                    self.url(file)
                ))));
            }
            f.write_all(&buf[..n])
                .ctx("write", partial)
                .map_err(fatal)?;
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

impl Mirror {
    /// `body` under this mirror's speed limit and `deadline`.
    fn paced<R: Read>(&self, body: R, deadline: Instant) -> Paced<R> {
        Paced {
            inner: body,
            pace: Pace::new(self.opts.speed_limit, self.opts.speed_time),
            deadline,
            slow: None,
        }
    }
}

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
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

/// Remove partial downloads in `dir` that no file of `keep` (SHA-256s) will
/// resume. Writes: removes files.
pub fn prune_partials(dir: &Path, keep: &[[u8; 32]]) -> Result<()> {
    let keep: Vec<String> = keep
        .iter()
        .map(|s| format!("{}.partial", hex::encode(s)))
        .collect();
    for e in fs::read_dir(dir).ctx("list", dir)? {
        let e = e.ctx("list", dir)?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".partial") && !keep.contains(&name) {
            fs::remove_file(e.path()).ctx("remove", e.path())?;
        }
    }
    Ok(())
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

    #[test]
    fn pace_cuts_a_slow_transfer_after_its_window_only() {
        let mut p = Pace::new(1000, Duration::from_secs(1));
        // young transfers are not judged
        assert!(p.note(1).is_ok());
        p.start -= Duration::from_secs(2);
        let e = p.note(1).unwrap_err();
        assert!(
            e.contains("slower than 1000 bytes/s over the last 1 s"),
            "{e}"
        );
        assert!(p.note(5000).is_ok());
        // old bytes leave the window
        let old = Instant::now() - Duration::from_secs(3);
        p.samples = VecDeque::from([(old, 5000)]);
        p.in_window = 5000;
        assert!(p.note(0).is_err());
        assert_eq!(p.in_window, 0);
        // 0 turns the limit off
        let mut off = Pace::new(0, Duration::from_secs(1));
        off.start -= Duration::from_secs(5);
        assert!(off.note(0).is_ok());
    }

    #[test]
    fn urls_join_with_one_slash() {
        let m = Mirror::new("http://h/x/", FetchOptions::default()).unwrap();
        assert_eq!(m.url("INDEX"), "http://h/x/INDEX");
        assert!(Mirror::new("ftp://h/", FetchOptions::default()).is_err());
    }
}
