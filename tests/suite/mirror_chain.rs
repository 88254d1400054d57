//! `sysup update` over a 3-step patch chain from a real nginx: the host at
//! revision 1 gets patches 1→2→3→4 and never the full dist (the access log
//! proves it); a host whose installed tar no patch starts from gets the full
//! dist; a second run fetches nothing.

use crate::mirror_support;
use mirror_support::*;

#[test]
fn three_step_chain_without_the_full_dist() {
    let w = World::new(&[1, 2, 3, 4], &[1, 2, 3]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let root = w.root("host");
    install(&root, 1);
    let before = snapshot(&root);

    let mode = if apply_available() {
        vec!["--json"]
    } else {
        vec!["--json", "--download-only"]
    };
    let o = update(&root, &nginx.url(), &w.keys.public, &mode);
    let j = json_ok(&o);
    let plan = &j["plans"][0];
    assert_eq!(plan["how"], "patches");
    assert_eq!(plan["installed"], id(1));
    assert_eq!(plan["target"], id(4));
    let files: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [patch_name(1, 2), patch_name(2, 3), patch_name(3, 4)]
    );
    assert!(plan["bytes"].as_u64().unwrap() < plan["dist_size"].as_u64().unwrap());
    assert_eq!(j["serial"].as_u64(), Some(index_serial(&w.file("INDEX"))));

    // The log: INDEX, its signature, the three patches; never a dist.
    let hits = nginx.hits();
    let uris: Vec<&str> = hits.iter().map(|h| h.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "/INDEX".to_string(),
            "/INDEX.minisig".into(),
            format!("/{}", patch_name(1, 2)),
            format!("/{}", patch_name(2, 3)),
            format!("/{}", patch_name(3, 4))
        ]
    );
    assert!(
        hits.iter()
            .all(|h| h.status == 200 && h.accept_encoding == "identity"),
        "{hits:?}"
    );
    assert!(!hits.iter().any(|h| h.uri.ends_with(".tar.gz")));
    for r in 1..4 {
        let size = std::fs::metadata(w.file(&patch_name(r, r + 1)))
            .unwrap()
            .len();
        assert_eq!(nginx.hits_of(&patch_name(r, r + 1))[0].bytes, size);
    }

    if apply_available() {
        assert_eq!(j["result"], "applied");
        assert_eq!(installed(&root).as_deref(), Some(id(4).as_str()));
        let diffs = tree_diff(&root, 4);
        assert!(
            diffs.is_empty(),
            "root differs from tree 4:\n{}",
            diffs.join("\n")
        );
        assert!(downloads(&root).is_empty(), "{:?}", downloads(&root));
        // a second run is up to date and fetches only INDEX and signature
        nginx.clear_log();
        let j = json_ok(&update(&root, &nginx.url(), &w.keys.public, &["--json"]));
        assert_eq!(j["result"], "up-to-date");
        assert_eq!(nginx.hits().len(), 2);
    } else {
        assert_eq!(j["result"], "downloaded");
        assert_eq!(installed(&root).as_deref(), Some(id(1).as_str()));
        assert_eq!(snapshot(&root), before);
        let mut want: Vec<String> = (1..4).map(|r| patch_name(r, r + 1)).collect();
        want.sort();
        assert_eq!(downloads(&root), want);
        // a second run verifies what is there and fetches no patch again
        nginx.clear_log();
        let j = json_ok(&update(&root, &nginx.url(), &w.keys.public, &mode));
        assert_eq!(j["fetched_bytes"], 0);
        assert!(j["downloads"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["reused"] == true));
        assert_eq!(nginx.hits().len(), 2, "{:?}", nginx.hits());
    }
}

#[test]
fn full_dist_when_no_chain_starts_at_the_installed_tar() {
    // Patches 2→3→4 only: a host at 1 has no chain and takes dist 4.
    let w = World::new(&[1, 4], &[2, 3]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let root = w.root("host");
    install(&root, 1);
    let mode = if apply_available() {
        vec!["--json"]
    } else {
        vec!["--json", "--download-only"]
    };
    let j = json_ok(&update(&root, &nginx.url(), &w.keys.public, &mode));
    assert_eq!(j["plans"][0]["how"], "dist");
    assert!(j["plans"][0]["chain_size"].is_null());
    let hits = nginx.hits();
    assert_eq!(hits.last().unwrap().uri, format!("/{}", dist_name(4)));
    assert!(!hits.iter().any(|h| h.uri.ends_with(".patch")));
    if apply_available() {
        assert_eq!(installed(&root).as_deref(), Some(id(4).as_str()));
    }
}

#[test]
fn first_install_needs_to_and_takes_the_dist() {
    let w = World::new(&[3], &[]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let root = w.root("fresh");
    let o = update(&root, &nginx.url(), &w.keys.public, &[]);
    refused(&o, &["nothing is installed", "--to"]);
    let mode = if apply_available() {
        vec!["--json"]
    } else {
        vec!["--json", "--download-only"]
    };
    let to = id(3);
    let mut args = mode.clone();
    args.extend(["--to", to.as_str()]);
    let j = json_ok(&update(&root, &nginx.url(), &w.keys.public, &args));
    assert_eq!(j["plans"][0]["how"], "dist");
    assert_eq!(j["plans"][0]["installed"], serde_json::Value::Null);
}
