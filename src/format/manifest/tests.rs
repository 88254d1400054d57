//! Tests of MANIFEST text: round trips, the refusal of bad MANIFESTs with
//! the line that is wrong, bounded reading, and safe paths.

use super::*;
use proptest::prelude::*;

fn sample() -> Vec<Entry> {
    let mut f = Entry::new(b"usr/bin/ping".to_vec(), Kind::File);
    f.mode = 0o4755;
    f.size = 3;
    f.mtime = 1_700_000_000;
    f.sha256 = Some([7; 32]);
    f.xattrs
        .insert("security.capability".into(), vec![1, 0, 0, 2]);
    let mut l = Entry::new(b"lib".to_vec(), Kind::Symlink);
    l.link = Some(b"usr/lib".to_vec());
    l.mode = 0o777;
    let mut c = Entry::new(b"usr/lib/libc.so.6".to_vec(), Kind::File);
    c.sha256 = Some([1; 32]);
    c.critical = true;
    let mut d = Entry::new(b"dev/null".to_vec(), Kind::Char);
    d.dev = Some((1, 3));
    d.mode = 0o666;
    let mut w = Entry::new(b"etc/we ird\t\xff=\\name".to_vec(), Kind::File);
    w.sha256 = Some([2; 32]);
    w.config = true;
    vec![f, l, c, d, w]
}

#[test]
fn render_parse_round_trip() {
    let m = Manifest::new(sample()).unwrap();
    let text = m.render();
    assert!(text.lines().all(|l| !l.contains('\t')));
    assert_eq!(text.lines().count(), 6, "one line per entry:\n{text}");
    let back = Manifest::parse(Path::new("M"), text.as_bytes()).unwrap();
    assert_eq!(back, m);
    assert!(back
        .get(b"usr/bin/ping")
        .unwrap()
        .xattrs
        .contains_key("security.capability"));
}

#[test]
fn bad_manifests_are_refused_with_the_line() {
    let p = Path::new("x/MANIFEST");
    for (text, needle) in [
        ("nope\n", "line 1"),
        ("#sysup-manifest 1\n../etc type=dir mode=0755 uid=0 gid=0 mtime=0\n", "unsafe"),
        ("#sysup-manifest 1\na type=file mode=0644 uid=0 gid=0 mtime=0 size=1\n", "sha256"),
        ("#sysup-manifest 1\na type=blob mode=0644 uid=0 gid=0 mtime=0\n", "unknown type"),
        ("#sysup-manifest 1\nb type=dir mode=0755 uid=0 gid=0 mtime=0\na type=dir mode=0755 uid=0 gid=0 mtime=0\n", "sorted"),
        ("#sysup-manifest 1\na type=dir mode=17777 uid=0 gid=0 mtime=0\n", "mode"),
        ("#sysup-manifest 1\na type=hardlink mode=0644 uid=0 gid=0 mtime=0 size=0 sha256=0000000000000000000000000000000000000000000000000000000000000000 link=/etc/shadow\n", "unsafe"),
        // found by fuzzing (manifest_parse): fields of another kind
        ("#sysup-manifest 1\np type=fifo mode=0600 uid=0 gid=0 mtime=0 size=300\n", "is a fifo and cannot have 'size'"),
        ("#sysup-manifest 1\nd type=dir mode=0755 uid=0 gid=0 mtime=0 dev=1,3\n", "cannot have 'dev'"),
        ("#sysup-manifest 1\na type=dir mode=0755 uid=0 gid=0 mtime=0 mode=0700\n", "key 'mode' given twice"),
    ] {
        let e = Manifest::parse(p, text.as_bytes()).unwrap_err().to_string();
        assert!(e.contains(needle) && e.contains("x/MANIFEST"), "{e}");
    }
}

#[test]
fn nul_and_newline_are_refused_by_name() {
    let p = Path::new("x/MANIFEST");
    for (line, needle) in [
        (
            "etc/a\\x0ab type=dir mode=0755 uid=0 gid=0 mtime=0",
            "contains a newline",
        ),
        (
            "etc/a\\x00b type=dir mode=0755 uid=0 gid=0 mtime=0",
            "contains a NUL byte",
        ),
        (
            "l type=symlink mode=0777 uid=0 gid=0 mtime=0 link=a\\x00b",
            "NUL byte",
        ),
    ] {
        let text = format!("{HEADER}\n{line}\n");
        let e = Manifest::parse(p, text.as_bytes()).unwrap_err().to_string();
        assert!(e.contains(needle) && e.contains("line 2"), "{e}");
    }
}

#[test]
fn reading_stops_at_the_first_bad_line_of_an_endless_stream() {
    // a "gzip bomb" of zeros, and of one endless line: refused at once
    let e = Manifest::read(
        Path::new("M"),
        std::io::BufReader::new(std::io::repeat(0)),
        10,
    )
    .unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
    let endless = std::io::Cursor::new(format!("{HEADER}\n")).chain(std::io::repeat(b'a'));
    let e = Manifest::read(Path::new("M"), std::io::BufReader::new(endless), 10).unwrap_err();
    assert!(e.to_string().contains("longer than"), "{e}");
    // more entries than announced: refused at the first extra line
    let lines: String = (0..5)
        .map(|i| format!("d{i} type=dir mode=0755 uid=0 gid=0 mtime=0\n"))
        .collect();
    let text = format!("{HEADER}\n{lines}");
    let e = Manifest::read(Path::new("M"), text.as_bytes(), 3).unwrap_err();
    assert!(
        e.to_string().contains("line 5: more than the 3 entries"),
        "{e}"
    );
    assert_eq!(
        Manifest::read(Path::new("M"), text.as_bytes(), 5)
            .unwrap()
            .entries()
            .len(),
        5
    );
}

#[test]
fn safe_paths() {
    assert!(is_safe_rel(b"usr/bin/ls"));
    for bad in [
        &b""[..],
        b"/etc",
        b"a/../b",
        b"./a",
        b"a//b",
        b"a/",
        b"a\0b",
        b"a\nb",
        b"..",
    ] {
        assert!(!is_safe_rel(bad), "{:?}", String::from_utf8_lossy(bad));
    }
}

proptest! {
    #[test]
    fn escape_round_trips(b in proptest::collection::vec(any::<u8>(), 0..64)) {
        let s = escape(&b);
        prop_assert!(!s.contains(' ') && !s.contains('\n') && !s.contains('='));
        prop_assert_eq!(unescape(&s).unwrap(), b);
    }

    #[test]
    fn parser_never_panics(s in "\\PC{0,200}") {
        let _ = Manifest::parse(Path::new("M"), format!("{HEADER}\n{s}").as_bytes());
    }
}

#[test]
fn a_hard_link_must_list_its_files_attributes() {
    let mut f = Entry::new(b"usr/bin/su".to_vec(), Kind::File);
    f.mode = 0o755;
    f.size = 3;
    f.mtime = 5;
    f.sha256 = Some([3; 32]);
    let mut l = f.clone();
    l.path = b"usr/bin/su2".to_vec();
    l.kind = Kind::Hardlink;
    l.link = Some(f.path.clone());
    let p = Path::new("x/MANIFEST");
    let text = |l: &Entry| Manifest::new(vec![f.clone(), l.clone()]).unwrap().render();
    // what a build makes: the link lists its inode as the file does
    assert!(Manifest::parse(p, text(&l).as_bytes()).is_ok());
    let mut variants: Vec<(Entry, &str)> = Vec::new();
    let mut v = l.clone();
    v.mode = 0o4755;
    variants.push((v, "mode"));
    let mut v = l.clone();
    v.uid = 1000;
    variants.push((v, "owner"));
    let mut v = l.clone();
    v.mtime = 6;
    variants.push((v, "mtime"));
    let mut v = l.clone();
    v.sha256 = Some([4; 32]);
    variants.push((v, "content"));
    let mut v = l.clone();
    v.xattrs
        .insert("security.capability".into(), vec![1, 0, 0, 2]);
    variants.push((v, "extended attributes"));
    for (v, what) in variants {
        let e = Manifest::parse(p, text(&v).as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!(
                "'usr/bin/su2' is a hard link to 'usr/bin/su' but lists another {what}"
            )) && e.contains("x/MANIFEST"),
            "{e}"
        );
    }
    // a link to what this MANIFEST does not list is left to the stager
    let mut away = l.clone();
    away.link = Some(b"etc/shadow".to_vec());
    assert!(Manifest::parse(
        p,
        Manifest::new(vec![f.clone(), away])
            .unwrap()
            .render()
            .as_bytes()
    )
    .is_ok());
}

#[test]
fn owners_and_xattrs_no_linux_host_takes_are_refused_when_read() {
    let p = Path::new("x/MANIFEST");
    let line = |kind: &str, tail: &str| {
        let data = match kind {
            "file" => format!(" size=0 sha256={}", "0".repeat(64)),
            "symlink" => " link=x".to_string(),
            _ => String::new(),
        };
        format!("{HEADER}\nusr/x type={kind} mode=0644 uid=0 gid=0 mtime=0{data}{tail}\n")
    };
    let big = hex::encode(vec![7u8; 65537]);
    let long = format!("user.{}", "n".repeat(251));
    let cases: Vec<(String, &str)> = vec![
        (
            line("file", &format!(" xattr.user.big={big}")),
            "more than the 65536 Linux takes",
        ),
        (
            line("file", " xattr.bogus=01"),
            "'bogus' is not one Linux takes",
        ),
        (
            line("file", " xattr.user.=01"),
            "'user.' is not one Linux takes",
        ),
        (
            line("file", &format!(" xattr.{long}=01")),
            "is not one Linux takes",
        ),
        (
            line("file", " xattr.user.a\\x00b=01"),
            "is not one Linux takes",
        ),
        (
            line("symlink", " xattr.user.note=01"),
            "is a symlink and cannot carry the user.* attribute 'user.note'",
        ),
        (
            line("fifo", " xattr.user.note=01"),
            "is a fifo and cannot carry the user.* attribute",
        ),
        (
            line("file", "").replace("uid=0", "uid=4294967295"),
            "uid 4294967295 is out of range",
        ),
        (
            line("file", "").replace("gid=0", "gid=4294967296"),
            "gid 4294967296 is out of range",
        ),
    ];
    for (text, want) in cases {
        let e = Manifest::parse(p, text.as_bytes()).unwrap_err().to_string();
        assert!(e.contains(want) && e.contains("x/MANIFEST"), "{want}: {e}");
    }
    // a name's control bytes reach the admin's terminal escaped
    let esc = Manifest::parse(
        p,
        line("file", &format!(" xattr.user.\\x1b[2J={big}")).as_bytes(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        esc.contains("user.\\x1b[2J") && !esc.contains('\x1b'),
        "{esc}"
    );
    // the bounds themselves are taken
    let at = |tail: &str| line("file", tail);
    let name255 = format!("user.{}", "n".repeat(250));
    for ok in [
        at(&format!(
            " xattr.user.big={}",
            hex::encode(vec![7u8; 65536])
        )),
        at(&format!(" xattr.{name255}=01")),
        at(" xattr.trusted.a=01 xattr.security.capability=01 xattr.system.b=01"),
        line("symlink", " xattr.security.selinux=01"),
        line("file", "").replace("uid=0", "uid=4294967294"),
    ] {
        Manifest::parse(p, ok.as_bytes()).unwrap();
    }
}
