//! Tar archives as sysup writes and reads them: [`write`] produces the
//! deterministic ustar/PAX stream of a dist; [`segment`] splits any tar stream
//! forward-only into members (raw header bytes + data ranges) for the patch
//! engine.

pub mod member;
pub mod segment;
pub mod write;
