//! Downloads from a mirror (docs/design.md §6): any static HTTP(S) server, CDN or
//! caching proxy — or a local directory (`file:///media/usb/mirror`, or a
//! plain path: a USB stick, an air-gapped site's copy), read the same way
//! ([`local`]) and verified the same way. Small files (INDEX, its
//! signature) are read into memory under a size cap; dists and patches are downloaded to
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
//!
//! This file is the HTTP side (the agent, retries and back-off, status
//! codes, small files); [`pace`] guards a transfer's speed and deadline,
//! [`local`] reads a directory mirror, and [`download`] writes, resumes and
//! verifies the files, whichever side they come from.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

mod download;
mod local;
mod pace;

pub use download::{foretell, prune_partials, DownloadDir, Downloaded};

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

/// A mirror: a base URL and an HTTP agent, or a local directory.
pub struct Mirror {
    base: String,
    agent: ureq::Agent,
    opts: FetchOptions,
    /// A directory mirror: files are read from here, not over HTTP.
    local: Option<std::path::PathBuf>,
}

/// How one attempt ended badly.
enum Fail {
    /// May pass on its own: try again (resuming).
    Transient(String),
    /// Will not pass by trying again.
    Fatal(Error),
}

impl Mirror {
    /// A mirror at `url` (`http://`, `https://` or `file://`, or a directory
    /// path; a trailing `/` is optional).
    pub fn new(url: &str, opts: FetchOptions) -> Result<Mirror> {
        let local = local::directory(url)?;
        if local.is_none() && !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::Refused(format!(
                "mirror URL '{url}' must start with http://, https:// or file://, or be a \
                 directory path"
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
            local,
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
        if let Some(dir) = &self.local {
            return self.local_small(dir, file, max);
        }
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
}

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_join_with_one_slash() {
        let m = Mirror::new("http://h/x/", FetchOptions::default()).unwrap();
        assert_eq!(m.url("INDEX"), "http://h/x/INDEX");
        assert!(Mirror::new("ftp://h/", FetchOptions::default()).is_err());
        let m = Mirror::new("file:///media/usb/m/", FetchOptions::default()).unwrap();
        assert_eq!(m.url("INDEX"), "file:///media/usb/m/INDEX");
        assert_eq!(
            m.local.as_deref(),
            Some(std::path::Path::new("/media/usb/m"))
        );
    }
}
