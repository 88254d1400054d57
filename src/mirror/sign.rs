//! minisign signatures of the INDEX (docs/design.md §6): Ed25519 in minisign's file
//! formats, so keys made by `minisign -G` sign with `sysup publish --sign`,
//! `minisign -V` checks what sysup signed, and an INDEX signed by
//! `minisign -S` is accepted by `sysup update`.
//!
//! Two crates by minisign's author, one per side:
//! - signing (build host) uses `minisign`, which decrypts password-protected
//!   secret keys (scrypt, the `minisign -G` default); unencrypted ones
//!   (`minisign -G -W`) are decoded here and handed to its raw key loader,
//!   because the tool leaves their checksum zero and the crate's loader
//!   insists on it;
//! - verifying (every host) uses `minisign-verify`: verification only, no
//!   dependencies, and it checks every length of a hostile signature before
//!   using it (the signing crate's verifier does not, so it never sees
//!   mirror bytes).
//!
//! Invariants: only pre-hashed signatures (`ED`, minisign's default since
//! 0.9) are accepted — legacy `Ed` ones are refused; the key id of the
//! signature must be the public key's; both the signature over the data and
//! the one over the trusted comment must verify. Key and signature files are
//! size-capped before they are read.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// File name of the INDEX's minisign signature, beside it in a publish
/// directory and on a mirror.
pub const SIG_FILE: &str = "INDEX.minisig";
/// Largest key or signature file read (bytes).
pub const MAX_SIG_LEN: u64 = 64 * 1024;

/// Bytes of a decoded minisign secret key: algorithms, KDF parameters, key
/// id, Ed25519 key pair, checksum.
const SECRET_KEY_LEN: usize = 2 + 2 + 2 + 32 + 8 + 8 + 8 + 64 + 32;
/// KDF algorithm of an unencrypted secret key.
const KDF_NONE: [u8; 2] = [0, 0];

/// What the untrusted comment of sysup's signatures says.
const UNTRUSTED_COMMENT: &str = "signature from sysup publish";

fn read_capped(path: &Path, what: &str) -> Result<String> {
    let f = std::fs::File::open(path).ctx("open", path)?;
    read_capped_from(f, path, what)
}

fn read_capped_from(f: std::fs::File, path: &Path, what: &str) -> Result<String> {
    let mut b = Vec::new();
    f.take(MAX_SIG_LEN + 1)
        .read_to_end(&mut b)
        .ctx("read", path)?;
    if b.len() as u64 > MAX_SIG_LEN {
        return Err(Error::Refused(format!(
            "'{}' is larger than a {what} can be ({MAX_SIG_LEN} bytes)",
            path.display()
        )));
    }
    String::from_utf8(b)
        .map_err(|_| Error::Refused(format!("'{}' is not a {what}: not UTF-8", path.display())))
}

/// A minisign secret key, decrypted and ready to sign.
pub struct SecretKey {
    sk: minisign::SecretKey,
    pk: minisign::PublicKey,
    path: PathBuf,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Clone for SecretKey {
    fn clone(&self) -> Self {
        SecretKey {
            sk: self.sk.clone(),
            pk: self.pk.clone(),
            path: self.path.clone(),
        }
    }
}

impl SecretKey {
    /// Read a minisign secret key file (`minisign.key`). An unencrypted key
    /// (`minisign -G -W`) needs no password; an encrypted one is decrypted
    /// with `password`, or with one asked for on the terminal when `None`.
    pub fn read(path: &Path, password: Option<String>) -> Result<SecretKey> {
        let text = read_capped(path, "minisign secret key")?;
        let bad = |e: minisign::PError| {
            Error::Refused(format!(
                "cannot use '{}' as a minisign secret key: {e}",
                path.display()
            ))
        };
        let not_key = |why: &str| {
            Error::Refused(format!(
                "'{}' is not a minisign secret key: {why}",
                path.display()
            ))
        };
        let b64 = text
            .lines()
            .nth(1)
            .ok_or_else(|| not_key("expected a comment line and a base64 line"))?;
        let raw = <ct_codecs::Base64 as ct_codecs::Decoder>::decode_to_vec(b64.trim(), None)
            .map_err(|_| not_key("the second line is not base64"))?;
        if raw.len() != SECRET_KEY_LEN || raw[..2] != *b"Ed" {
            return Err(not_key("wrong length or algorithm"));
        }
        let sk = if raw[2..4] == KDF_NONE {
            // `minisign -G -W` leaves the checksum of an unencrypted key
            // zero, which the `minisign` crate's box loader rejects; the raw
            // loader takes it, and the signature made below is checked
            // against the key's own public half before it is used.
            minisign::SecretKey::from_bytes(&raw).map_err(bad)?
        } else {
            if password.is_none() && !std::io::stdin().is_terminal() {
                return Err(Error::Refused(format!(
                    "'{}' is password-protected and there is no terminal to ask for the \
                     password on: pass --password-file FILE",
                    path.display()
                )));
            }
            minisign::SecretKeyBox::from_string(&text)
                .and_then(|b| b.into_secret_key(password))
                .map_err(bad)?
        };
        let pk = minisign::PublicKey::from_secret_key(&sk).map_err(bad)?;
        Ok(SecretKey {
            sk,
            pk,
            path: path.to_path_buf(),
        })
    }

    /// The matching public key in `minisign.pub` format (two lines).
    pub fn public_key_text(&self) -> String {
        let b64 = self.pk.to_base64();
        let mut id = [0u8; 8];
        id.copy_from_slice(&self.pk.keynum()[..8]);
        format!(
            "untrusted comment: minisign public key {:016X}\n{b64}\n",
            u64::from_le_bytes(id)
        )
    }

    /// Sign `data` (an INDEX with serial `serial`): the `.minisig` text.
    /// The signature is checked with the public key before it is returned.
    pub fn sign(&self, data: &[u8], serial: u64) -> Result<String> {
        let now = crate::util::time::unix_now();
        let trusted = format!("timestamp:{now}\tfile:INDEX\tserial:{serial}");
        let sig = minisign::sign(
            Some(&self.pk),
            &self.sk,
            data,
            Some(&trusted),
            Some(UNTRUSTED_COMMENT),
        )
        .map_err(|e| {
            Error::Refused(format!(
                "signing with '{}' failed: {e}",
                self.path.display()
            ))
        })?;
        let text = sig.into_string();
        PublicKey::from_text(&self.public_key_text(), &self.path)?.verify(
            data,
            text.as_bytes(),
            Path::new(SIG_FILE),
        )?;
        Ok(text)
    }
}

/// A minisign public key that INDEX signatures are checked against.
#[derive(Clone)]
pub struct PublicKey {
    pk: minisign_verify::PublicKey,
    /// The key id, as `minisign` prints it (16 upper-case hex digits).
    id: String,
    source: PathBuf,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// Read a public key file: `minisign.pub` (comment line + base64 line) or
    /// a file holding only the base64 line.
    pub fn read(path: &Path) -> Result<PublicKey> {
        let f = std::fs::File::open(path).ctx("open", path)?;
        PublicKey::read_from(f, path)
    }

    /// Read a public key from an open file; `source` names it in errors.
    pub fn read_from(f: std::fs::File, source: &Path) -> Result<PublicKey> {
        let text = read_capped_from(f, source, "minisign public key")?;
        PublicKey::from_text(&text, source)
    }

    /// Parse public key text; `source` names it in errors.
    pub fn from_text(text: &str, source: &Path) -> Result<PublicKey> {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let b64 = match lines.as_slice() {
            [b64] => Some(*b64),
            [comment, b64] if comment.starts_with("untrusted comment:") => Some(*b64),
            _ => None,
        };
        let parsed = b64.map_or(Err(minisign_verify::Error::InvalidEncoding), |b| {
            minisign_verify::PublicKey::from_base64(b)
        });
        let not_key = |e: minisign_verify::Error| {
            Error::Refused(format!(
                "'{}' is not a minisign public key: {e}",
                source.display()
            ))
        };
        let pk = parsed.map_err(not_key)?;
        // minisign_verify checked the layout: algorithm (2), key id (8), key (32).
        let raw =
            <ct_codecs::Base64 as ct_codecs::Decoder>::decode_to_vec(b64.unwrap_or_default(), None)
                .map_err(|_| not_key(minisign_verify::Error::InvalidEncoding))?;
        let mut id = [0u8; 8];
        id.copy_from_slice(
            raw.get(2..10)
                .ok_or_else(|| not_key(minisign_verify::Error::InvalidEncoding))?,
        );
        Ok(PublicKey {
            pk,
            id: format!("{:016X}", u64::from_le_bytes(id)),
            source: source.to_path_buf(),
        })
    }

    /// The key id, as `minisign` prints it (16 upper-case hex digits): what
    /// the serials a host accepted are recorded under.
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// Where the key came from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Check that `sig` (`.minisig` text, from `sig_source`) signs `data`
    /// with this key. Nothing about `data` may be trusted before this passes.
    pub fn verify(&self, data: &[u8], sig: &[u8], sig_source: &Path) -> Result<()> {
        let refuse = |why: String| {
            Error::Refused(format!(
                "signature '{}' does not verify with public key '{}': {why}",
                sig_source.display(),
                self.source.display()
            ))
        };
        if sig.len() as u64 > MAX_SIG_LEN {
            return Err(refuse(format!("larger than {MAX_SIG_LEN} bytes")));
        }
        let text = std::str::from_utf8(sig).map_err(|_| refuse("not UTF-8".into()))?;
        let sig = minisign_verify::Signature::decode(text)
            .map_err(|e| refuse(format!("not a minisign signature ({e})")))?;
        self.pk.verify(data, &sig, false).map_err(|e| {
            refuse(match e {
                minisign_verify::Error::UnexpectedKeyId => {
                    "it was made with another key".to_string()
                }
                minisign_verify::Error::UnexpectedAlgorithm => {
                    "it is a legacy (non pre-hashed) signature; sign without -l".to_string()
                }
                minisign_verify::Error::InvalidSignature => {
                    "the data or its signature was altered".to_string()
                }
                e => e.to_string(),
            })
        })
    }
}

/// The id of the key that made `sig` (`.minisig` text), as [`PublicKey::key_id`]
/// spells it; `None` when `sig` is not a minisign signature. Says which
/// trusted key to check it with; proves nothing.
pub fn signature_key_id(sig: &[u8]) -> Option<String> {
    if sig.len() as u64 > MAX_SIG_LEN {
        return None;
    }
    let b64 = std::str::from_utf8(sig).ok()?.lines().nth(1)?.trim();
    let raw = <ct_codecs::Base64 as ct_codecs::Decoder>::decode_to_vec(b64, None).ok()?;
    let id: [u8; 8] = raw.get(2..10)?.try_into().ok()?;
    Some(format!("{:016X}", u64::from_le_bytes(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_names_its_key() {
        let (sk, _d) = keypair();
        let pk = PublicKey::from_text(&sk.public_key_text(), Path::new("k.pub")).unwrap();
        let sig = sk.sign(b"x", 1).unwrap();
        assert_eq!(
            signature_key_id(sig.as_bytes()).as_deref(),
            Some(pk.key_id())
        );
        assert_eq!(signature_key_id(b"untrusted comment: x\n!!\n"), None);
        assert_eq!(signature_key_id(b""), None);
    }

    fn keypair() -> (SecretKey, tempfile::TempDir) {
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.key");
        std::fs::write(&p, kp.sk.to_box(None).unwrap().to_string()).unwrap();
        (SecretKey::read(&p, None).unwrap(), d)
    }

    #[test]
    fn signs_and_verifies() {
        let (sk, _d) = keypair();
        let sig = sk.sign(b"hello", 7).unwrap();
        assert!(sig.contains("serial:7"), "{sig}");
        let pk = PublicKey::from_text(&sk.public_key_text(), Path::new("k.pub")).unwrap();
        pk.verify(b"hello", sig.as_bytes(), Path::new("s")).unwrap();
        let e = pk
            .verify(b"hellp", sig.as_bytes(), Path::new("s"))
            .unwrap_err();
        assert!(e.to_string().contains("altered"), "{e}");
        // bare base64 line works too, and has the id the comment names
        let b64 = sk.public_key_text().lines().nth(1).unwrap().to_string();
        let bare = PublicKey::from_text(&b64, Path::new("k.pub")).unwrap();
        assert!(sk.public_key_text().contains(bare.key_id()));
        assert_eq!(bare.key_id().len(), 16);
        assert_eq!(bare.key_id(), pk.key_id());
    }

    #[test]
    fn encrypted_keys_need_the_right_password() {
        let kp = minisign::KeyPair::generate_encrypted_keypair(Some("right".into())).unwrap();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("enc.key");
        std::fs::write(&p, kp.sk.to_box(None).unwrap().to_string()).unwrap();
        let e = SecretKey::read(&p, Some("wrong".into())).unwrap_err();
        assert!(e.to_string().contains("password"), "{e}");
        let sk = SecretKey::read(&p, Some("right".into())).unwrap();
        let sig = sk.sign(b"x", 1).unwrap();
        let pk = PublicKey::from_text(&sk.public_key_text(), Path::new("k.pub")).unwrap();
        pk.verify(b"x", sig.as_bytes(), Path::new("s")).unwrap();
    }

    #[test]
    fn another_key_is_named() {
        let (a, _d1) = keypair();
        let (b, _d2) = keypair();
        let sig = a.sign(b"x", 1).unwrap();
        let pk = PublicKey::from_text(&b.public_key_text(), Path::new("b.pub")).unwrap();
        let e = pk.verify(b"x", sig.as_bytes(), Path::new("s")).unwrap_err();
        assert!(e.to_string().contains("another key"), "{e}");
    }

    #[test]
    fn hostile_signatures_are_refused_without_panic() {
        let (sk, _d) = keypair();
        let pk = PublicKey::from_text(&sk.public_key_text(), Path::new("k.pub")).unwrap();
        let sig = sk.sign(b"x", 1).unwrap();
        let lines: Vec<&str> = sig.lines().collect();
        let cases = [
            String::new(),
            "untrusted comment: x\n".into(),
            format!("{}\n{}\n{}\nAAAA\n", lines[0], lines[1], lines[2]),
            format!("{}\nAAAA\n{}\n{}\n", lines[0], lines[2], lines[3]),
            format!("{}\n{}\nno trusted\n{}\n", lines[0], lines[1], lines[3]),
            format!("{}\n{}\n{}x\n{}\n", lines[0], lines[1], lines[2], lines[3]),
        ];
        for c in cases {
            assert!(
                pk.verify(b"x", c.as_bytes(), Path::new("s")).is_err(),
                "{c}"
            );
        }
        for cut in 0..sig.len() {
            let _ = pk.verify(b"x", &sig.as_bytes()[..cut], Path::new("s"));
        }
    }
}
