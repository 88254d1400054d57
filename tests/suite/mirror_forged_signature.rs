//! Threat: a forged INDEX. An attacker who controls the mirror rewrites the
//! INDEX to list their own file (with its true size and hash), re-signs it
//! with their own key, or ships a mangled signature. The signature is
//! checked before the INDEX is parsed, so each is refused before any file
//! is fetched, and the host records no serial from it.

use std::fs;

use crate::mirror_support;
use mirror_support::*;

fn index_text(w: &World) -> String {
    fs::read_to_string(w.file("INDEX")).unwrap()
}

#[test]
fn an_altered_index_is_refused_before_anything_is_fetched() {
    let w = World::new(&[1, 2, 3, 4], &[1, 2, 3]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    // Swap in an evil 3→4 patch and make the INDEX describe it truthfully.
    let p = w.file(&patch_name(3, 4));
    let good = fs::read(&p).unwrap();
    let mut evil = good.clone();
    evil.extend_from_slice(b"evil");
    fs::write(&p, &evil).unwrap();
    use sha2::Digest;
    let text = index_text(&w)
        .replace(
            &hex::encode(sha2::Sha256::digest(&good)),
            &hex::encode(sha2::Sha256::digest(&evil)),
        )
        .replace(
            &format!("size={} ", good.len()),
            &format!("size={} ", evil.len()),
        );
    assert_ne!(text, index_text(&w));
    fs::write(w.file("INDEX"), text).unwrap();

    let o = update(&host.root, &nginx.url(), &w.keys.public, &[]);
    refused(&o, &["INDEX.minisig", "does not verify", "altered"]);
    host.unchanged(1);
    assert_eq!(
        serial(&host.root),
        None,
        "no serial recorded from a forged INDEX"
    );
    let uris: Vec<String> = nginx.hits().into_iter().map(|h| h.uri).collect();
    assert_eq!(uris, ["/INDEX", "/INDEX.minisig"]);
}

#[test]
fn an_index_signed_by_another_key_is_refused() {
    let w = World::new(&[1, 2], &[1]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    let evil = keys(w.tmp.path(), "evil");
    common::ok(
        common::sysup()
            .arg("publish")
            .arg(&w.pub_dir)
            .arg("--sign")
            .arg(&evil.secret),
    );
    let o = update(&host.root, &nginx.url(), &w.keys.public, &[]);
    refused(&o, &["does not verify", "another key"]);
    host.unchanged(1);
    assert_eq!(serial(&host.root), None);
}

#[test]
fn a_mangled_signature_is_refused() {
    let w = World::new(&[1, 2], &[1]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    let sig = fs::read_to_string(w.file("INDEX.minisig")).unwrap();
    let cases = [
        sig.lines().take(2).collect::<Vec<_>>().join("\n"), // cut short
        sig.replacen("\ntrusted comment: ", "\ntrusted comment: x", 1), // trusted comment altered
        "not a signature at all\n".to_string(),
    ];
    for bad in cases {
        fs::write(w.file("INDEX.minisig"), &bad).unwrap();
        let o = update(&host.root, &nginx.url(), &w.keys.public, &[]);
        refused(&o, &["INDEX.minisig", "does not verify"]);
        host.unchanged(1);
    }
    assert_eq!(serial(&host.root), None);
}
