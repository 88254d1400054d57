use super::*;

const H: fn(u8) -> [u8; 32] = |b| [b; 32];

#[test]
fn the_fate_is_decided_from_hashes() {
    let (base, ours, theirs) = (H(1), H(2), H(3));
    // ours is what a dist shipped: replaced as any other file
    assert_eq!(Fate::of(base, Some(base), theirs, true), Fate::Ship);
    assert_eq!(Fate::of(theirs, Some(base), theirs, true), Fate::Ship);
    // the dist did not change it: the admin's file stays
    assert_eq!(Fate::of(ours, Some(base), base, true), Fate::Leave);
    // both changed: merged; with no ancestor, kept
    assert_eq!(Fate::of(ours, Some(base), theirs, true), Fate::Merge);
    assert_eq!(Fate::of(ours, None, theirs, true), Fate::Keep);
    // merging off: every local edit is kept beside the new version
    assert_eq!(Fate::of(ours, Some(base), base, false), Fate::Keep);
    assert_eq!(Fate::of(ours, Some(base), theirs, false), Fate::Keep);
    assert_eq!(Fate::of(base, Some(base), theirs, false), Fate::Ship);
}

#[test]
fn far_apart_edits_merge_cleanly() {
    let base = b"a\nb\nc\nd\ne\nf\n";
    let ours = b"a\nB\nc\nd\ne\nf\n";
    let theirs = b"a\nb\nc\nd\ne\nF\n";
    assert_eq!(
        merge3(base, ours, theirs),
        Merged::Clean(b"a\nB\nc\nd\ne\nF\n".to_vec())
    );
}

#[test]
fn the_same_line_changed_both_ways_conflicts() {
    let m = merge3(b"port 22\n", b"port 2222\n", b"port 22\nx\n");
    assert!(matches!(&m, Merged::Clean(_)), "{m:?}");
    let Merged::Conflict(text) =
        merge3(b"a\nport 22\nb\n", b"a\nport 2222\nb\n", b"a\nport 23\nb\n")
    else {
        panic!("expected a conflict");
    };
    assert!(has_conflict_markers(&text));
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("port 2222") && text.contains("port 23"),
        "{text}"
    );
}

#[test]
fn binary_or_big_files_are_not_merged() {
    assert_eq!(
        merge3(b"a\0", b"b\0", b"c\0"),
        Merged::Unmergeable("binary (holds a NUL byte)")
    );
    assert_eq!(
        merge3(b"a\n", b"\xff\n", b"c\n"),
        Merged::Unmergeable("binary (not UTF-8)")
    );
    let big = vec![b'x'; MERGE_CAP as usize + 1];
    assert_eq!(
        merge3(b"a\n", &big, b"c\n"),
        Merged::Unmergeable("larger than the merge cap")
    );
}

#[test]
fn markers_are_found_only_at_line_starts() {
    assert!(!has_conflict_markers(b"a <<<<<<< b\n"));
    assert!(has_conflict_markers(b"x\n=======\ny\n"));
}
