//! Threat: a patch whose own header says something other than its signed
//! INDEX entry. The INDEX pins the file's size and SHA-256, but the plan is
//! made from the entry's from/to ids and tar digests while the apply follows
//! the header: a patch published under another name (by mistake, or to send
//! hosts somewhere the INDEX does not say) would take the host to an id the
//! INDEX never offered. Every downloaded patch's header is checked against
//! its entry — name, from and to ids, and the from/to tar size, MD5 and
//! SHA-256 — before anything is applied; a mismatch names the file and the
//! field, the file is deleted, and the root is untouched.

use std::fs;

use crate::mirror_support;
use mirror_support::*;

/// The value of `key=` in an INDEX line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let k = format!("{key}=");
    line.split(' ')
        .find_map(|f| f.strip_prefix(k.as_str()))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

/// The INDEX line of dist `rev`.
fn dist_line(index: &str, rev: u32) -> String {
    let p = format!("dist {} ", dist_name(rev));
    index
        .lines()
        .find(|l| l.starts_with(&p))
        .unwrap_or_else(|| panic!("no dist {rev} in\n{index}"))
        .to_string()
}

/// A patch line for `file` (a copy of the patch `real`) from dist `from` to
/// dist `to`, with the tar digests `from_d`/`to_d` taken from dist lines.
fn patch_line(w: &World, file: &str, a: &str, b: &str, from_line: &str, to_line: &str) -> String {
    let (size, sha) = sysup::util::digest::file_sha256(&w.file(file)).unwrap();
    format!(
        "patch {file} from={a} to={b} arch=x86_64 size={size} sha256={} \
         from-size={} from-md5={} from-sha256={} to-size={} to-md5={} to-sha256={}",
        hex::encode(sha),
        field(from_line, "tar-size"),
        field(from_line, "tar-md5"),
        field(from_line, "tar-sha256"),
        field(to_line, "tar-size"),
        field(to_line, "tar-md5"),
        field(to_line, "tar-sha256"),
    )
}

/// The published INDEX's first three lines and its entries replaced.
fn index_with(published: &str, entries: &[String]) -> String {
    let mut s: String = published
        .lines()
        .take(3)
        .map(|l| format!("{l}\n"))
        .collect();
    for e in entries {
        s.push_str(e);
        s.push('\n');
    }
    s.push_str(&format!("end {}\n", entries.len()));
    s
}

#[test]
fn a_patch_whose_header_names_other_ids_is_refused() {
    let w = World::new(&[1, 2, 3], &[1]);
    let published = fs::read_to_string(w.file("INDEX")).unwrap();
    let (d1, d3) = (dist_line(&published, 1), dist_line(&published, 3));
    // The patch 1 -> 2, published as 1 -> 3: the INDEX promises revision 3.
    let fake = patch_name(1, 3);
    fs::copy(w.file(&patch_name(1, 2)), w.file(&fake)).unwrap();
    fs::remove_file(w.file(&patch_name(1, 2))).unwrap();
    fs::remove_file(w.file(&dist_name(2))).unwrap();
    let p = patch_line(&w, &fake, &id(1), &id(3), &d1, &d3);
    w.sign_index(&index_with(&published, &[d1.clone(), d3.clone(), p]));

    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    let o = update(&host.root, &nginx.url(), &w.keys.public, &[]);
    eprintln!(
        "{}",
        refused(&o, &[&fake, "header", &id(2), &id(3), "INDEX"])
    );
    host.unchanged(1);
    assert!(
        !downloads(&host.root).contains(&fake),
        "{:?}",
        downloads(&host.root)
    );
    // --download-only checks it too: nothing it reports as downloaded is bad.
    let o = update(
        &host.root,
        &nginx.url(),
        &w.keys.public,
        &["--download-only"],
    );
    refused(&o, &[&fake, "header"]);
    host.unchanged(1);
}

#[test]
fn a_patch_whose_header_has_other_digests_is_refused() {
    let w = World::new(&[1, 2, 3], &[1]);
    let published = fs::read_to_string(w.file("INDEX")).unwrap();
    let (d1, d2) = (dist_line(&published, 1), dist_line(&published, 2));
    let d3 = dist_line(&published, 3);
    // The right name and ids, but the entry's result is revision 3's tar.
    let name = patch_name(1, 2);
    let mut p = patch_line(&w, &name, &id(1), &id(2), &d1, &d2);
    p = p.replace(
        &format!("to-sha256={}", field(&d2, "tar-sha256")),
        &format!("to-sha256={}", field(&d3, "tar-sha256")),
    );
    fs::remove_file(w.file(&dist_name(2))).unwrap();
    fs::remove_file(w.file(&dist_name(3))).unwrap();
    w.sign_index(&index_with(&published, &[d1, p]));

    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    let o = update(&host.root, &nginx.url(), &w.keys.public, &[]);
    eprintln!("{}", refused(&o, &[&name, "header", "to-sha256"]));
    host.unchanged(1);
}

#[test]
fn a_patch_that_matches_its_entry_is_applied() {
    let w = World::new(&[1, 2], &[1]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    json_ok(&update(
        &host.root,
        &nginx.url(),
        &w.keys.public,
        &["--json"],
    ));
    assert_eq!(installed(&host.root).as_deref(), Some(id(2).as_str()));
}
