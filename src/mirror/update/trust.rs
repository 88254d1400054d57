//! Step 2 of `sysup update`: which keys this update trusts, and the signed
//! files checked with them (docs/mirrors.md, "Trust").
//!
//! 1. the configured keys (`pubkey.rs`) and the keys this host accepted
//!    before (`var/db/sysup/keys/`), less those whose `until` has passed;
//! 2. the INDEX and its signature; when the signature names a key none of
//!    those is (a publisher who rotated keys), the mirror's `KEYS` file:
//!    verified with a trusted key (`KEYS.minisig`) before a byte of it is
//!    parsed; each still valid key it lists that is not trusted yet is
//!    trusted from now on and kept (not in a dry run). So an update whose
//!    INDEX is signed by a known key costs no request more;
//! 3. the INDEX verified with the trusted key whose id its signature names
//!    before a byte of it is parsed, then refused when its `expires` time
//!    has passed, unless the admin allows it (`--allow-expired`).
//!
//! Invariants: a key is trusted only when configured, or announced in a
//! KEYS file signed by a key trusted at that moment (so a rotation chains:
//! A announces B, later B announces C); nothing of KEYS or INDEX is parsed
//! before its signature verified; a dry run trusts announced keys for its
//! own checks but keeps none; every refusal names the file and the cause.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::host::state::State;
use crate::mirror::fetch::Mirror;
use crate::mirror::index::{Index, INDEX_FILE, MAX_INDEX_LEN, SIG_FILE};
use crate::mirror::keys::{Keys, KEYS_FILE, KEYS_SIG_FILE, MAX_KEYS_LEN};
use crate::mirror::sign::{signature_key_id, PublicKey, MAX_SIG_LEN};

/// A key this update trusts.
#[derive(Clone, Debug)]
pub(super) struct TrustedKey {
    pub key: PublicKey,
    /// The file it was read from (a configured key, or the host's record of
    /// an accepted one).
    pub shown: PathBuf,
}

/// A key accepted from the mirror's KEYS file in this run.
#[derive(Clone, Debug, Serialize)]
pub struct KeyAccepted {
    pub key_id: String,
    /// Where the host keeps it (`null` in a dry run: kept nowhere).
    pub path: Option<PathBuf>,
    /// Unix time from which it is no longer trusted, if the KEYS file says.
    pub until: Option<u64>,
    /// The id of the trusted key that signed the KEYS file.
    pub signed_by: String,
}

/// The configured keys (`configured`) and the still valid ones this host
/// accepted before (at Unix time `now`), each once. Read-only.
pub(super) fn trusted_keys(
    configured: Vec<(PublicKey, PathBuf)>,
    state: &State,
    now: u64,
) -> Result<Vec<TrustedKey>> {
    let mut keys: Vec<TrustedKey> = configured
        .into_iter()
        .map(|(key, shown)| TrustedKey { key, shown })
        .collect();
    for a in state.accepted_keys()? {
        let k = crate::mirror::kept::kept_key(&a)?;
        if k.valid_at(now) && !keys.iter().any(|t| t.key.key_id() == a.key_id) {
            keys.push(TrustedKey {
                key: k.key.clone(),
                shown: a.path,
            });
        }
    }
    Ok(keys)
}

/// Verify `sig` (from `sig_source`) over `data` with the trusted key its
/// signature names; that key.
fn verify_with<'k>(
    keys: &'k [TrustedKey],
    data: &[u8],
    sig: &[u8],
    sig_source: &Path,
) -> Result<&'k TrustedKey> {
    let named = signature_key_id(sig);
    if let Some(k) = keys
        .iter()
        .find(|k| Some(k.key.key_id()) == named.as_deref())
    {
        k.key.verify(data, sig, sig_source)?;
        return Ok(k);
    }
    match (keys, named) {
        ([], _) => Err(Error::Refused(format!(
            "no trusted key to check '{}' with",
            sig_source.display()
        ))),
        // Not a signature: the key's own words for what is wrong with it.
        ([k, ..], None) => k.key.verify(data, sig, sig_source).map(|()| k),
        (_, Some(id)) => Err(Error::Refused(format!(
            "signature '{}' does not verify with any trusted key: it was made with another key \
             ({id}); this host trusts {}",
            sig_source.display(),
            keys.iter()
                .map(|k| format!("{} ({})", k.key.key_id(), k.shown.display()))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// KEYS: when the mirror has a KEYS file, verify it with a key of
/// `keys`, then trust (and, unless `dry_run`, keep) every still valid key
/// it lists that `keys` does not hold yet. Returns what was accepted.
/// Writes: `keys/<key id>` in the state directory (not in a dry run).
fn announced_keys(
    mirror: &Mirror,
    keys: &mut Vec<TrustedKey>,
    state: &State,
    now: u64,
    dry_run: bool,
) -> Result<Vec<KeyAccepted>> {
    let Some(bytes) = mirror.fetch_small(KEYS_FILE, MAX_KEYS_LEN)? else {
        return Ok(Vec::new());
    };
    let (url, sig_url) = (
        PathBuf::from(mirror.url(KEYS_FILE)),
        PathBuf::from(mirror.url(KEYS_SIG_FILE)),
    );
    let sig = mirror
        .fetch_small(KEYS_SIG_FILE, MAX_SIG_LEN)?
        .ok_or_else(|| {
            Error::Refused(format!(
                "the mirror has a KEYS file but no signature at {}: an unsigned KEYS file is \
                 never used (sign it with a key the hosts trust: minisign -S -s KEY -m KEYS)",
                sig_url.display()
            ))
        })?;
    let signer = verify_with(keys, &bytes, &sig, &sig_url)?
        .key
        .key_id()
        .to_string();
    let mut accepted = Vec::new();
    for k in Keys::parse(&bytes, &url)?.keys {
        let id = k.key.key_id().to_string();
        if !k.valid_at(now) || keys.iter().any(|t| t.key.key_id() == id) {
            continue;
        }
        let text = Keys {
            keys: vec![k.clone()],
        }
        .render();
        let path = match dry_run {
            true => None,
            false => Some(state.store_key(&id, text.as_bytes())?),
        };
        keys.push(TrustedKey {
            key: k.key.clone(),
            shown: path.clone().unwrap_or_else(|| url.clone()),
        });
        accepted.push(KeyAccepted {
            key_id: id,
            path,
            until: k.until,
            signed_by: signer.clone(),
        });
    }
    Ok(accepted)
}

/// What [`signed_index`] found: the INDEX, the key that signed it, the keys
/// accepted from the mirror's KEYS file on the way.
pub(super) struct Signed {
    pub index: Index,
    pub signer: TrustedKey,
    pub accepted: Vec<KeyAccepted>,
}

/// The mirror's INDEX, its signature verified with a trusted key before a
/// byte of it is parsed. When the signature names a key `keys` does not
/// hold, the mirror's KEYS file may announce it ([`announced_keys`]; with
/// `dry_run`, trusted for this check but not kept).
/// Writes: `keys/<key id>` in the state directory (not in a dry run).
pub(super) fn signed_index(
    mirror: &Mirror,
    keys: &mut Vec<TrustedKey>,
    state: &State,
    now: u64,
    dry_run: bool,
) -> Result<Signed> {
    let index_url = PathBuf::from(mirror.url(INDEX_FILE));
    let sig_url = PathBuf::from(mirror.url(SIG_FILE));
    let index_bytes = mirror
        .fetch_small(INDEX_FILE, MAX_INDEX_LEN)?
        .ok_or_else(|| {
            Error::Refused(format!(
                "the mirror has no INDEX at {}",
                index_url.display()
            ))
        })?;
    let sig = mirror.fetch_small(SIG_FILE, MAX_SIG_LEN)?.ok_or_else(|| {
        Error::Refused(format!(
            "the mirror has no signature at {}: an unsigned INDEX is never used",
            sig_url.display()
        ))
    })?;
    let known = signature_key_id(&sig).is_some_and(|id| keys.iter().any(|k| k.key.key_id() == id));
    let accepted = match known {
        true => Vec::new(),
        false => announced_keys(mirror, keys, state, now, dry_run)?,
    };
    let signer = verify_with(keys, &index_bytes, &sig, &sig_url)?.clone();
    Ok(Signed {
        index: Index::parse(&index_bytes, &index_url)?,
        signer,
        accepted,
    })
}

/// Refuse an INDEX whose expiry has passed at Unix time `now`, unless
/// `allow` (`--allow-expired`). Returns whether it had expired.
pub(super) fn check_expiry(index: &Index, url: &str, now: u64, allow: bool) -> Result<bool> {
    let Some(expires) = index.expires.filter(|&e| now >= e) else {
        return Ok(false);
    };
    if allow {
        return Ok(true);
    }
    Err(Error::Refused(format!(
        "the mirror's INDEX ({url}, serial {}) expired at {} UTC, {} ago: its publisher \
         vouches for it only until then, so the mirror is stale or replays an old INDEX; \
         refused (publish again, or pass --allow-expired on a site that knowingly updates \
         from an old copy)",
        index.serial,
        utc(expires),
        ago(now - expires)
    )))
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS` (UTC), whatever a hostile INDEX says.
pub fn utc(secs: u64) -> String {
    crate::util::time::utc(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// A span of seconds in its largest whole unit.
fn ago(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        7200..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc() {
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(ago(59), "59 s");
        assert_eq!(ago(3 * 86_400), "3 days");
    }
}
