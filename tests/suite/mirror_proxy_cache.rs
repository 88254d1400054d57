//! A caching proxy in front of the mirror (the site cache of a remote
//! facility): the first host's downloads fill the cache, the second host is
//! served from it — the origin sees each patch once — and both end on the
//! same verified tree.

use crate::mirror_support;
use mirror_support::*;

#[test]
fn a_second_host_is_served_from_the_site_cache() {
    let w = World::new(&[1, 2, 3, 4], &[1, 2, 3]);
    let origin = Nginx::serve(&w.pub_dir, "");
    let cache = Nginx::cache(&origin);
    let a = Host::at(&w, "a", 1);
    let b = Host::at(&w, "b", 1);

    let ja = json_ok(&update(&a.root, &cache.url(), &w.keys.public, &["--json"]));
    assert_eq!(ja["result"], "applied");
    let patches: Vec<String> = (1..4).map(|r| patch_name(r, r + 1)).collect();
    for p in &patches {
        assert_eq!(
            origin.hits_of(p).len(),
            1,
            "{p} fetched once from the origin"
        );
    }
    origin.clear_log();
    cache.clear_log();

    let jb = json_ok(&update(&b.root, &cache.url(), &w.keys.public, &["--json"]));
    assert_eq!(jb["result"], "applied");
    assert_eq!(jb["serial"], ja["serial"]);
    let origin_uris: Vec<String> = origin.hits().into_iter().map(|h| h.uri).collect();
    assert_eq!(
        origin_uris,
        ["/INDEX", "/INDEX.minisig"],
        "patches came from the cache"
    );
    for p in &patches {
        let h = cache.hits_of(p);
        assert_eq!(h.len(), 1);
        assert_eq!((h[0].status, h[0].cache.as_str()), (200, "HIT"), "{p}");
    }
    for root in [&a.root, &b.root] {
        assert_eq!(installed(root).as_deref(), Some(id(4).as_str()));
        let diffs = tree_diff(root, 4);
        assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    }
}
