//! The library's error type: every variant says *what* failed and carries the
//! path (or name) it failed on, so the binary can print `error: …` with a cause
//! chain and a hint without guessing.
//!
//! Invariant: no variant is ever constructed from a panic; bad input always
//! arrives here.

use std::io;
use std::path::{Path, PathBuf};

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in sysup, by what was being done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on a named path failed.
    #[error("could not {action} '{path}'")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A dist id, dist file name or patch file name did not parse.
    #[error("invalid {what} '{input}': {reason}")]
    Name {
        what: &'static str,
        input: String,
        reason: String,
    },

    /// A build spec could not be read or is not valid.
    #[error("invalid spec '{path}': {reason}")]
    Spec { path: PathBuf, reason: String },

    /// The staged tree holds something a dist cannot carry, or cannot be read.
    #[error("cannot put '{path}' in a dist: {reason}")]
    Tree { path: PathBuf, reason: String },

    /// A MANIFEST (or other `.sysup/` metadata) is malformed.
    #[error("invalid {what} in '{path}': {reason}")]
    Metadata {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },

    /// A tar stream is malformed (bad checksum, truncated, hostile member).
    #[error("invalid tar '{path}': {reason}")]
    Tar { path: PathBuf, reason: String },

    /// A patch file is malformed or corrupt.
    #[error("invalid patch '{path}': {reason}")]
    Patch { path: PathBuf, reason: String },

    /// A patch file's bytes are not the ones its writer wrote (a checksum
    /// failed, or it was truncated).
    #[error("corrupt patch '{path}': {reason}")]
    CorruptPatch { path: PathBuf, reason: String },

    /// The old tar fed to a patch is not the one the patch was made from.
    #[error("wrong base for patch '{patch}': {reason}")]
    WrongBase { patch: PathBuf, reason: String },

    /// A host was given a patch (chain) that does not start at what it has
    /// installed.
    #[error("patch '{patch}' does not apply to this host: {reason}")]
    NotForInstalled { patch: PathBuf, reason: String },

    /// Applying a chain to a host's recorded base did not make the target.
    /// The base is not hashed as it is read, so which side is wrong cannot
    /// be told: the base (damaged or replaced after it was recorded) or the
    /// patch (its body verified, but not making what its header promises).
    #[error("applying to the recorded base '{base}' did not make {target}: the base is damaged or not the tar it was recorded as, or the patch does not make what its header promises")]
    BadBase {
        base: PathBuf,
        target: String,
        #[source]
        source: Box<Error>,
    },

    /// A stream's digest is not the one recorded for it.
    #[error("{what} of '{path}' does not match: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        path: PathBuf,
        expected: String,
        actual: String,
    },

    /// Two inputs that must belong together do not (names, arch, ids).
    #[error("{0}")]
    Mismatch(String),

    /// Anything refused for a reason the message states fully.
    #[error("{0}")]
    Refused(String),
}

impl Error {
    /// Shorthand for [`Error::Io`].
    pub fn io(action: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// [`Error::io`] for an `io::Error` that came up through a chain of
    /// readers: if it carries a library error (a patch's wrong-base verdict,
    /// a staged file's digest…), that error itself, which already names its
    /// file and cause; otherwise `action` on `path` failed.
    pub fn from_io(source: io::Error, action: &'static str, path: impl AsRef<Path>) -> Self {
        match source.downcast::<Error>() {
            Ok(inner) => inner,
            Err(source) => Error::io(action, path, source),
        }
    }

    /// A hint for the person reading the error, when one helps.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                Some("run as a user that may read and write that path".into())
            }
            Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
                Some("free some space on that filesystem and run the same command again".into())
            }
            Error::Name { what, .. } if what.contains("rev") => {
                Some("a rev is made of letters, digits, '.', '+' and '~' (no '-' or '_')".into())
            }
            Error::Spec { .. } => Some("see binarydist/README.md for the spec keys".into()),
            Error::CorruptPatch { .. } => {
                Some("download or copy the patch again; it was damaged on the way".into())
            }
            Error::WrongBase { .. } => Some(
                "feed the patch the uncompressed tar of its from-dist (see `sysup info PATCH`)"
                    .into(),
            ),
            Error::NotForInstalled { .. } => Some(
                "run `sysup update` to fetch the chain from the installed id, or apply a full dist of the target (`sysup status` shows what is installed)"
                    .into(),
            ),
            Error::BadBase { .. } => Some(
                "if the patch comes from a mirror you trust, the base is to blame: apply a full dist of the installed revision or a newer one (it replaces the base and repairs the tree)"
                    .into(),
            ),
            Error::DigestMismatch { .. } => {
                Some("the input is not the one the patch was made from, or it is corrupt".into())
            }
            _ => None,
        }
    }
}

/// Attach a path and an action to an `io::Result`.
pub trait IoContext<T> {
    /// Map an `io::Error` to [`Error::Io`] naming `path`.
    fn ctx(self, action: &'static str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, action: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(action, path, e))
    }
}
