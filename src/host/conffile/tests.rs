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
    // changes to adjacent lines conflict too (as in git): no line between
    // them says which order is right
    let m = merge3(b"port 22\n", b"port 2222\n", b"port 22\nx\n");
    assert!(matches!(&m, Merged::Conflict(_)), "{m:?}");
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

mod ancestors_from_a_tar {
    use crate::format::archive::member::MemberMeta;
    use crate::format::archive::write::TarWriter;
    use crate::format::manifest::{Entry, Kind};
    use crate::host::conffile::ancestors::read_from;
    use crate::host::conffile::MERGE_CAP;
    use crate::util::digest::Sha256;

    fn entry(path: &str, data: &[u8]) -> Entry {
        let mut e = Entry::new(path.as_bytes().to_vec(), Kind::File);
        e.mode = 0o644;
        e.size = data.len() as u64;
        e.sha256 = Some(Sha256::digest(data));
        e.config = true;
        e
    }

    fn tar(members: &[(&Entry, &[u8])]) -> Vec<u8> {
        let mut w = TarWriter::new(Vec::new());
        for (e, data) in members {
            let m = MemberMeta::of_entry(e, e.member_name(), data.len() as u64, None);
            w.append(&m, *data).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn only_wanted_members_whose_hash_matches_are_taken() {
        let good = entry("etc/a", b"a\n");
        let other = entry("etc/b", b"b\n");
        // the base holds different bytes than its MANIFEST says: no ancestor
        let damaged = entry("etc/c", b"c\n");
        let big = vec![b'x'; MERGE_CAP as usize + 1];
        let huge = entry("etc/d", &big);
        let t = tar(&[
            (&good, b"a\n"),
            (&other, b"b\n"),
            (&damaged, b"C\n"),
            (&huge, &big),
        ]);
        let got = read_from(
            &t[..],
            std::path::Path::new("base"),
            &[&good, &damaged, &huge],
        )
        .unwrap();
        assert_eq!(got.len(), 1, "{:?}", got.keys());
        assert_eq!(got[b"etc/a".as_slice()], b"a\n");
    }

    #[test]
    fn a_truncated_base_is_an_error_naming_it() {
        let a = entry("etc/a", b"a\n");
        let b = entry("etc/b", b"b\n");
        let t = tar(&[(&a, b"a\n"), (&b, b"b\n")]);
        let err = read_from(&t[..700], std::path::Path::new("the-base"), &[&b]).unwrap_err();
        assert!(err.to_string().contains("the-base"), "{err}");
    }
}
