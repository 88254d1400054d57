//! Mirrors (docs/mirrors.md): the signed INDEX of a mirror directory
//! ([`index`], made by `sysup publish`: [`publish`]), minisign signatures ([`sign`]),
//! the signed announcements of new keys ([`keys`]) and the ones a host kept ([`kept`]),
//! resumable verified downloads ([`fetch`]) and `sysup update` ([`update`]:
//! verify the INDEX, plan the cheapest chain, download, apply).

pub mod fetch;
pub mod index;
pub mod kept;
pub mod keys;
pub mod publish;
pub mod sign;
pub mod update;
