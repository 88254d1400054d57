//! The version-stripped form of a member path, the naming rule by which
//! [`pairing`](super::pairing) pairs renamed and re-versioned members
//! (`libfoo.so.1.2` → `libfoo.so.1.3`, `python3.11/…` → `python3.12/…`) and
//! by which [`scan`](super::scan) decides which old copies of identical
//! files may still serve as a diff base.
//!
//! Invariant: a pure function of the path bytes; both users must apply the
//! very same rule, or a scan could leave out the data of an old member that
//! pairing then picks as a base.

/// The version-stripped form of a path: every run of hex characters that
/// holds a digit and is either all digits or at least 6 long becomes `#`.
pub fn version_key(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        if path[i].is_ascii_hexdigit() {
            let start = i;
            while i < path.len() && path[i].is_ascii_hexdigit() {
                i += 1;
            }
            let run = &path[start..i];
            let digits = run.iter().filter(|b| b.is_ascii_digit()).count();
            if digits > 0 && (digits == run.len() || run.len() >= 6) {
                out.push(b'#');
            } else {
                out.extend_from_slice(run);
            }
        } else {
            out.push(path[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_keys() {
        let k = |s: &str| String::from_utf8(version_key(s.as_bytes())).unwrap();
        assert_eq!(k("usr/lib/libfoo.so.1.2"), k("usr/lib/libfoo.so.1.3"));
        assert_eq!(k("usr/lib/libx-6bb31eeb.so"), k("usr/lib/libx-56d6093b.so"));
        assert_eq!(k("usr/lib/python3.11/os.py"), "usr/lib/python#.#/os.py");
        assert_eq!(k("sbin/e2fsck"), "sbin/e2fsck");
        assert_eq!(k("bin/sha256sum"), "bin/sha256sum");
        assert_eq!(k("lib/x86_64-linux-gnu"), "lib/x#_#-linux-gnu");
        assert_ne!(k("usr/bin/bash"), k("usr/bin/dash"));
    }
}
