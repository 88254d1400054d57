//! The host side: applying dists and patches to a root (docs/design.md §4) and the
//! state kept in `<root>/var/db/sysup/`.
//!
//! An apply runs [`apply`]: check → stream and stage ([`stage`]) → verify →
//! commit ([`commit`], from the [`plan`] written to the [`journal`]) → record
//! ([`state`], [`statcache`]) → cleanup ([`cleanup`], [`history`]), one
//! transaction from the journal's `begin` to its removal, undone before
//! its commit point and only rolled forward after it; a dry run stages
//! without one. Every file under `var/db/sysup` is reached through
//! [`state::State`]. Every filesystem
//! operation on the root goes through [`root`], which keeps it inside;
//! [`policy`] is what the host itself allows a dist (device nodes), from its
//! [`conf`]iguration; [`kernel_dirs`] what it allows a kernel's directories;
//! [`conffile`] what becomes of an installed config file (the three-way
//! merge, and `sysup config resolve`).
//!
//! The other operations are library calls too, which the command line only
//! prints: [`rollback`], [`clean`], [`status`] and [`verify`].

pub mod apply;
pub mod checkpoint;
pub mod clean;
pub mod cleanup;
pub mod commit;
pub mod conf;
pub mod conffile;
pub mod history;
pub mod journal;
pub mod kernel_dirs;
pub mod pending;
pub mod plan;
pub mod policy;
pub mod reaper;
pub mod restart;
pub mod rollback;
pub mod root;
pub mod stage;
pub mod statcache;
pub mod state;
pub mod status;
pub mod verify;
