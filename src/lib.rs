//! sysup: atomic binary-diff system updates.
//!
//! The modules follow the pipeline of DESIGN.md:
//! - build host: [`spec`] → [`build`] (scan a staged tree) → [`manifest`] +
//!   [`archive`] (deterministic tar) → a gzipped dist named by [`name`];
//! - patches: [`delta`] (member-aware bsdiff between uncompressed tars, and the
//!   forward-only streaming applier);
//! - host: apply, state, journal (later modules);
//! - distribution: [`index`] (the mirror's INDEX, `sysup publish`), [`sign`]
//!   (minisign), [`fetch`] (resumable verified downloads) and [`update`]
//!   (`sysup update`: verify, plan the cheapest chain, download, apply);
//!
//! plus the shared pieces: [`error`], [`digest`], [`progress`] (step
//! counters the command line draws), [`fixtures`] (deterministic
//! demo/test trees), and [`cli`] (the `sysup` command line; the binary is a
//! thin wrapper around it).

pub mod archive;
pub mod build;
pub mod cli;
pub mod delta;
pub mod digest;
pub mod dist;
pub mod error;
pub mod fetch;
pub mod fixtures;
pub mod fsutil;
pub mod gz;
pub mod host;
pub mod index;
pub mod interrupt;
pub mod manifest;
pub mod name;
pub mod progress;
pub mod readahead;
pub mod sign;
pub mod spec;
pub mod update;

pub use error::{Error, Result};
