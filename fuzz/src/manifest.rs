//! The `manifest_parse` harness: arbitrary bytes as a dist's MANIFEST.
//!
//! Oracle: no panic; a MANIFEST that parses has sorted, unique, safe paths
//! (no `..`, no leading `/`, no NUL or newline), a SHA-256 for every file
//! and hard link, a target for every link, device numbers for every device;
//! and `parse(render(m)) == m`.

use std::path::Path;

use sysup::format::manifest::{is_safe_rel, Kind, Manifest};

pub fn run(data: &[u8]) {
    let path = Path::new("fuzz/MANIFEST");
    let Ok(m) = Manifest::parse(path, data) else {
        return;
    };
    for w in m.entries().windows(2) {
        assert!(w[0].path < w[1].path, "not sorted or not unique");
    }
    for e in m.entries() {
        assert!(is_safe_rel(&e.path), "unsafe path {:?}", e.path);
        assert!(!e.path.contains(&b'\n'), "newline in {:?}", e.path);
        match e.kind {
            Kind::File => assert!(e.sha256.is_some()),
            Kind::Hardlink => {
                assert!(e.sha256.is_some());
                assert!(e.link.as_deref().is_some_and(is_safe_rel));
            }
            Kind::Symlink => assert!(e.link.is_some()),
            Kind::Char | Kind::Block => assert!(e.dev.is_some()),
            Kind::Dir | Kind::Fifo => {}
        }
        assert!(e.mode <= 0o7777);
    }
    let text = m.render();
    let back = Manifest::parse(path, text.as_bytes()).expect("a rendered MANIFEST parses");
    assert_eq!(back, m, "render/parse round trip");
}
