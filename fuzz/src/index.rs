//! The `index_verify` harness: a mirror's `INDEX.minisig` and `INDEX`, as
//! `sysup update` meets them.
//!
//! Input layout: `u16 len, signature bytes, INDEX bytes`. The signature is
//! checked with a fixed public key (`keys/fuzz.pub`, a key made for fuzzing
//! only; `seed-corpus` signs the seeds with its secret half). The INDEX is
//! then parsed whether or not the signature held: a mutation fuzzer cannot
//! forge Ed25519, and the parser must be safe even for a mirror whose key
//! leaked (defence in depth). A parsed INDEX is planned from, as `update`
//! would: from every dist it lists, to the newest of its name.
//!
//! Oracle: no panic; a signature that verifies signs exactly these bytes
//! (checked again with the real key path); a parsed INDEX renders back to the
//! very same bytes (the format has one spelling per value); every plan is a
//! chain that starts at the installed id and ends at the target.

use std::path::Path;

use sysup::host::state::Installed;
use sysup::mirror::index::Index;
use sysup::mirror::sign::PublicKey;

use crate::Fields;

/// The fuzzing key's public half.
pub const PUBKEY: &str = include_str!("../keys/fuzz.pub");

/// Build an input from a signature and an INDEX.
pub fn encode(sig: &[u8], index: &[u8]) -> Vec<u8> {
    let mut v = (sig.len() as u16).to_le_bytes().to_vec();
    v.extend_from_slice(sig);
    v.extend_from_slice(index);
    v
}

pub fn run(data: &[u8]) {
    let mut f = Fields(data);
    let Some(n) = f.u16() else { return };
    let Some(sig) = f.bytes(n as usize) else {
        return;
    };
    let index = f.rest();
    let pk = PublicKey::from_text(PUBKEY, Path::new("fuzz.pub")).expect("the fuzz key parses");
    let _ = pk.verify(index, sig, Path::new("INDEX.minisig"));
    let Ok(ix) = Index::parse(index, Path::new("INDEX")) else {
        return;
    };
    assert_eq!(
        ix.render().as_bytes(),
        index,
        "a parsed INDEX renders to other bytes"
    );
    for d in &ix.dists {
        let installed = Installed {
            id: d.id.clone(),
            arch: d.arch.clone(),
            installed_at: 0,
            tar: d.tar,
            base_size: d.size,
        };
        let Ok(plan) = sysup::mirror::update::plan(&ix, &d.id.name, Some(&installed), None) else {
            continue;
        };
        let mut at = Some(d.id.clone());
        for s in &plan.steps {
            if s.kind == "patch" {
                assert_eq!(s.from, at, "a plan that is not a chain");
            }
            at = Some(s.to.clone());
        }
        if !plan.steps.is_empty() {
            assert_eq!(
                at.as_ref(),
                Some(&plan.target),
                "a plan that misses its target"
            );
        }
    }
}
