//! Regression tests for what the cargo-fuzz targets (`fuzz/`) found: each
//! input, minimized, inline, with the target and the bug it exposed.
//! RELIABILITY.md's "Bugs found and fixed" table lists them.
//!
//! Invariant: each test checks the same property the fuzz harness asserts,
//! on the input that once broke it.

use std::path::Path;

use sysup::format::manifest::Manifest;

/// The `manifest_parse` oracle: a MANIFEST that parses renders back to
/// itself.
fn parses_only_if_it_round_trips(text: &str) -> sysup::Result<Manifest> {
    let m = Manifest::parse(Path::new("MANIFEST"), text.as_bytes())?;
    let back = Manifest::parse(Path::new("MANIFEST"), m.render().as_bytes()).unwrap();
    assert_eq!(back, m, "render/parse round trip");
    Ok(m)
}

/// manifest_parse, crash-a49dd0d6: a fifo carrying `size`, `sha256` and
/// `link` parsed, and rendering dropped the size. Entries now hold only the
/// fields of their kind (and each key once).
#[test]
fn manifest_fields_of_another_kind() {
    for (line, why) in [
        (
            "dev/fifo type=fifo mode=0600 uid=0 gid=0 mtime=0 size=300",
            "cannot have 'size'",
        ),
        (
            "dev/fifo type=fifo mode=0600 uid=0 gid=0 mtime=0 link=usr/bin/same",
            "cannot have 'link'",
        ),
        (
            "etc type=dir mode=0755 uid=0 gid=0 mtime=0 dev=1,3",
            "cannot have 'dev'",
        ),
        (
            "l type=symlink mode=0777 uid=0 gid=0 mtime=0 link=x flags=config",
            "cannot have 'flags'",
        ),
        (
            "etc type=dir mode=0755 uid=0 gid=0 mtime=0 uid=5",
            "key 'uid' given twice",
        ),
    ] {
        let e = parses_only_if_it_round_trips(&format!("#sysup-manifest 1\n{line}\n"))
            .expect_err(line)
            .to_string();
        assert!(e.contains(why) && e.contains("line 2"), "{e}");
    }
    // the real kinds still carry their fields
    parses_only_if_it_round_trips(concat!(
        "#sysup-manifest 1\n",
        "a type=hardlink mode=0644 uid=0 gid=0 mtime=0 size=3 sha256=0000000000000000000000000000000000000000000000000000000000000000 link=b flags=critical\n",
        "b type=file mode=0644 uid=0 gid=0 mtime=0 size=3 sha256=0000000000000000000000000000000000000000000000000000000000000000 flags=config\n",
        "c type=char mode=0666 uid=0 gid=0 mtime=0 dev=1,3\n",
    ))
    .unwrap();
}
