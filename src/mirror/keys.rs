//! The mirror's `KEYS` file (docs/mirrors.md, "Key rotation"): public keys a
//! publisher announces, each valid until an optional time, signed
//! (`KEYS.minisig`, by the minisign tool or any minisign signer) with a key
//! the hosts already trust. A host that verifies it trusts the keys it
//! lists from then on, and keeps them (`var/db/sysup/keys/<key id>`, in
//! this same format, one key a file), so a fleet moves to a new key
//! without an admin touching each host.
//!
//! ```text
//! sysup-keys 1
//! key RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3 until=1830297600
//! key RWTk4KJ8Ld1CNxfwbCzWTWTQ5QR1ylkbzEymM3z6bDJ+UFmuNd8WpK2u
//! ```
//!
//! Invariants: [`Keys::parse`] is strict (the header line, then one `key`
//! line per key: the base64 line of a `minisign.pub`, and an optional
//! `until=<unix time>`; no repeated key id; a final newline), bounded
//! ([`MAX_KEYS_LEN`] bytes, [`MAX_KEYS`] keys) and never panics; nothing in
//! a KEYS file is trusted before its signature verified with a key the host
//! trusts; `parse(render(x)) == x`.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Error, Result};
use crate::mirror::sign::PublicKey;

/// File name of the key announcements on a mirror.
pub const KEYS_FILE: &str = "KEYS";
/// File name of their signature.
pub const KEYS_SIG_FILE: &str = "KEYS.minisig";
/// Largest KEYS file read (bytes).
pub const MAX_KEYS_LEN: u64 = 64 * 1024;
/// Most keys one KEYS file may list.
pub const MAX_KEYS: usize = 64;
/// First line.
const HEADER: &str = "sysup-keys 1";

/// One announced key.
#[derive(Clone, Debug)]
pub struct AnnouncedKey {
    /// The key, as its `minisign.pub` second line spells it.
    pub base64: String,
    pub key: PublicKey,
    /// Unix time from which it is no longer trusted; `None`: no end.
    pub until: Option<u64>,
}

impl AnnouncedKey {
    /// Whether it is still valid at Unix time `now`.
    pub fn valid_at(&self, now: u64) -> bool {
        self.until.is_none_or(|u| now < u)
    }
}

/// A parsed KEYS file.
#[derive(Clone, Debug)]
pub struct Keys {
    pub keys: Vec<AnnouncedKey>,
}

impl Keys {
    /// The file's text.
    pub fn render(&self) -> String {
        let mut s = format!("{HEADER}\n");
        for k in &self.keys {
            let _ = match k.until {
                Some(u) => writeln!(s, "key {} until={u}", k.base64),
                None => writeln!(s, "key {}", k.base64),
            };
        }
        s
    }

    /// Parse KEYS bytes; `source` names them in errors and in the keys.
    pub fn parse(bytes: &[u8], source: &Path) -> Result<Keys> {
        let fail = |line: usize, reason: String| Error::Metadata {
            what: "KEYS",
            path: source.to_path_buf(),
            reason: if line == 0 {
                reason
            } else {
                format!("line {line}: {reason}")
            },
        };
        if bytes.len() as u64 > MAX_KEYS_LEN {
            return Err(fail(0, format!("larger than {MAX_KEYS_LEN} bytes")));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| fail(0, "not UTF-8".into()))?;
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| fail(0, "does not end with a newline (truncated?)".into()))?;
        let mut lines = body.split('\n').enumerate().map(|(i, l)| (i + 1, l));
        match lines.next() {
            Some((_, HEADER)) => {}
            _ => return Err(fail(1, format!("not a KEYS file: expected '{HEADER}'"))),
        }
        let mut keys: Vec<AnnouncedKey> = Vec::new();
        for (n, l) in lines {
            let k = parse_key(l, source).map_err(|r| fail(n, r))?;
            if keys.iter().any(|o| o.key.key_id() == k.key.key_id()) {
                return Err(fail(n, format!("key {} is listed twice", k.key.key_id())));
            }
            if keys.len() == MAX_KEYS {
                return Err(fail(n, format!("more than {MAX_KEYS} keys")));
            }
            keys.push(k);
        }
        Ok(Keys { keys })
    }
}

/// One `key <base64> [until=N]` line.
fn parse_key(line: &str, source: &Path) -> std::result::Result<AnnouncedKey, String> {
    let mut f = line.split(' ');
    if f.next() != Some("key") {
        return Err("expected 'key <base64 public key> [until=<unix time>]'".into());
    }
    let base64 = f.next().unwrap_or("");
    let key = PublicKey::from_text(base64, source).map_err(|e| e.to_string())?;
    let until = match f.next() {
        None => None,
        Some(u) => {
            let n = u
                .strip_prefix("until=")
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("'{}' is not until=<unix time>", clip(u)))?;
            Some(n)
        }
    };
    if let Some(extra) = f.next() {
        return Err(format!("unexpected '{}' at the end", clip(extra)));
    }
    Ok(AnnouncedKey {
        base64: base64.to_string(),
        key,
        until,
    })
}

/// At most 64 characters of `s`, for messages.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64() -> String {
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        kp.pk.to_base64()
    }

    #[test]
    fn round_trip_and_validity() {
        let (a, b) = (b64(), b64());
        let text = format!("{HEADER}\nkey {a} until=100\nkey {b}\n");
        let k = Keys::parse(text.as_bytes(), Path::new("KEYS")).unwrap();
        assert_eq!(k.keys.len(), 2);
        assert_eq!(k.render(), text);
        assert!(k.keys[0].valid_at(99) && !k.keys[0].valid_at(100));
        assert!(k.keys[1].valid_at(u64::MAX));
    }

    #[test]
    fn malformed_files_name_the_line() {
        let a = b64();
        for (text, want) in [
            (format!("{HEADER}\nkey {a}"), "newline"),
            (format!("sysup-keys 2\nkey {a}\n"), "line 1"),
            (format!("{HEADER}\nkey {a}\nkey {a}\n"), "twice"),
            (format!("{HEADER}\nkey {a} until=x\n"), "until="),
            (format!("{HEADER}\nkey {a} until=1 more\n"), "unexpected"),
            (format!("{HEADER}\nkey AAAA\n"), "line 2"),
            (format!("{HEADER}\n\n"), "line 2"),
            (
                format!("{HEADER}\nkey {a} until=99999999999999999999999\n"),
                "until=",
            ),
        ] {
            let e = Keys::parse(text.as_bytes(), Path::new("KEYS"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want) && e.contains("KEYS"), "{text:?}: {e}");
        }
        let big = format!("{HEADER}\n{}", "x".repeat(MAX_KEYS_LEN as usize));
        assert!(Keys::parse(big.as_bytes(), Path::new("KEYS")).is_err());
    }
}
