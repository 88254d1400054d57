//! The INDEX text: it parses back, refuses every other spelling, orders
//! versions naturally, and never panics on any bytes.

use super::*;
use proptest::prelude::*;

fn sample() -> Index {
    let d = |s: &str| Digests::of(s.as_bytes());
    Index {
        serial: 1_767_398_400,
        timestamp: 1_767_398_401,
        expires: None,
        dists: vec![
            DistEntry {
                id: "kernel-GENERIC-1-20260101".parse().unwrap(),
                arch: "x86_64".into(),
                size: 10,
                sha256: [1; 32],
                tar: d("k1"),
            },
            DistEntry {
                id: "world-2-20260102".parse().unwrap(),
                arch: "x86_64".into(),
                size: 20,
                sha256: [2; 32],
                tar: d("w2"),
            },
        ],
        patches: vec![PatchEntry {
            name: "world-1-20260101_2-20260102".parse().unwrap(),
            arch: "x86_64".into(),
            size: 5,
            sha256: [3; 32],
            from: d("w1"),
            to: d("w2"),
        }],
    }
}

fn parse(s: &str) -> Result<Index> {
    Index::parse(s.as_bytes(), Path::new("INDEX"))
}

#[test]
fn render_parses_back() {
    let i = sample();
    let text = i.render();
    assert!(
        text.starts_with("sysup-index 1\nserial 1767398400\n"),
        "{text}"
    );
    assert_eq!(parse(&text).unwrap(), i);
}

#[test]
fn an_expiry_is_optional_and_after_the_timestamp() {
    let mut i = sample();
    i.expires = Some(i.timestamp + 60);
    let text = i.render();
    assert!(
        text.contains("\ntimestamp 1767398401\nexpires 1767398461\ndist "),
        "{text}"
    );
    assert_eq!(parse(&text).unwrap(), i);
    for (bad, want) in [
        (
            text.replace("expires 1767398461", "expires 1767398401"),
            "line 4: expires",
        ),
        (
            text.replace("expires 1767398461", "expires 01"),
            "line 4: expires",
        ),
        (text.replace("expires 1767398461", "expires"), "line 4"),
        (
            sample()
                .render()
                .replace("end 3", "expires 1767398461\nend 3"),
            "unknown entry kind 'expires'",
        ),
    ] {
        let e = parse(&bad).unwrap_err().to_string();
        assert!(e.contains(want), "{bad}: {e}");
    }
}

#[test]
fn strictness() {
    let good = sample().render();
    let cases: Vec<(String, &str)> = vec![
        (good.replace("sysup-index 1", "sysup-index 2"), "format 2"),
        (
            good.replace("serial 1767398400", "serial 01767398400"),
            "serial",
        ),
        (good.replace("serial 1767398400", "serial 0"), "serial"),
        (good.replace("end 3", "end 2"), "end says 2"),
        (good.replace("end 3\n", ""), "truncated"),
        (good[..good.len() - 1].to_string(), "newline"),
        (good.replace(" arch=x86_64", " arch=x86-64"), "arch"),
        (
            good.replace(" arch=x86_64 size=5", " size=5 arch=x86_64"),
            "arch=",
        ),
        (good.replace("size=20", "size=+20"), "size"),
        (good.replace("sha256=0202", "sha256=0A02"), "hex"),
        (
            good.replace("id=world-2-20260102", "id=world-3-20260102"),
            "does not match",
        ),
        (
            good.replace("patch world-1-20260101_2", "patch ../world-1-20260101_2"),
            "bare",
        ),
        (
            good.replace("to=world-2-20260102", "to=world-3-20260102"),
            "do not match",
        ),
        (format!("{good}extra\n"), "after the end"),
        (good.replace("\nserial", "\n\nserial"), "serial"),
        (good.replace("end 3", "bogus 3"), "unknown entry kind"),
        (good.replace("\n", "\r\n"), ""),
        (good.replace("tar-sha256=", "tar-sha256=00 "), "hex"),
        (good.replace("x86_64 size=20", "x86_64  size=20"), "size="),
    ];
    for (text, want) in cases {
        let e = parse(&text).expect_err(want).to_string();
        assert!(e.contains(want), "{want:?} not in {e:?}");
        assert!(e.contains("INDEX"), "{e}");
    }
    // order and uniqueness
    let mut i = sample();
    i.dists.swap(0, 1);
    assert!(parse(&i.render())
        .unwrap_err()
        .to_string()
        .contains("sorted"));
    let mut i = sample();
    i.dists[1] = i.dists[0].clone();
    assert!(parse(&i.render())
        .unwrap_err()
        .to_string()
        .contains("repeat"));
    // too big
    let big = vec![b'a'; MAX_INDEX_LEN as usize + 1];
    assert!(Index::parse(&big, Path::new("INDEX")).is_err());
}

#[test]
fn versions_order_naturally() {
    assert_eq!(version_cmp("9", "10"), Ordering::Less);
    assert_eq!(version_cmp("6.4.1", "6.10"), Ordering::Less);
    assert_eq!(version_cmp("1.0", "1.0"), Ordering::Equal);
    assert_eq!(version_cmp("1.0~rc1", "1.0"), Ordering::Greater);
    assert_eq!(version_cmp("01", "1"), Ordering::Less); // equal values: bytes decide
    let a: DistId = "world-10-20260101".parse().unwrap();
    let b: DistId = "world-9-20260102".parse().unwrap();
    assert_eq!(id_order(&a, &b), Ordering::Less, "date first");
}

#[test]
fn newest_looks_at_dists_and_patch_targets() {
    let i = sample();
    let w = DistName::World;
    assert_eq!(
        i.newest(&w, "x86_64").unwrap().to_string(),
        "world-2-20260102"
    );
    assert_eq!(i.newest(&w, "aarch64"), None);
    assert_eq!(i.names().len(), 2);
}

proptest! {
    #[test]
    fn any_bytes_parse_or_error_without_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Index::parse(&b, Path::new("INDEX"));
    }

    #[test]
    fn mutated_indexes_parse_or_error_without_panic(at in 0usize..2000, byte in any::<u8>(), cut in 0usize..2000) {
        let mut b = sample().render().into_bytes();
        let at = at % b.len();
        b[at] = byte;
        let _ = Index::parse(&b, Path::new("INDEX"));
        b.truncate(cut % (b.len() + 1));
        let _ = Index::parse(&b, Path::new("INDEX"));
    }

    #[test]
    fn version_cmp_is_a_total_order(a in "[0-9a-z.+~]{1,8}", b in "[0-9a-z.+~]{1,8}") {
        prop_assert_eq!(version_cmp(&a, &b), version_cmp(&b, &a).reverse());
        prop_assert_eq!(version_cmp(&a, &b) == Ordering::Equal, a == b);
    }
}
