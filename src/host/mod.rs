//! The host side: applying dists and patches to a root (DESIGN §4) and the
//! state kept in `<root>/var/db/sysup/`.

pub mod root;
pub mod state;
