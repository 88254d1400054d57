//! Deterministic ustar/PAX tar writer (being written).
