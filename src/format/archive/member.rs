//! Full metadata of one tar member, parsed from the raw header blocks the
//! [`segment`](super::segment) module yields: ustar fields, PAX records
//! (`path`, `linkpath`, `size`, `uid`, `gid`, `mtime`, `SCHILY.xattr.*`, in
//! binary-safe form — values may hold newlines and NULs), and GNU long
//! names/links.
//!
//! Invariants: a pure function of the bytes, never panicking on any input;
//! base-256 and octal numbers are both read; unknown PAX keys are ignored
//! (as POSIX says), unknown typeflags are an error the caller reports, and
//! so is a name with a NUL or newline byte or a link target with a NUL
//! (PAX records and GNU long names can carry them; no sysup dist does).

use std::collections::BTreeMap;

use crate::format::manifest::{Entry, Kind};

/// What a member describes: what [`parse`] reads from a member's header
/// blocks and what the [writer](super::write::TarWriter::append) writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberMeta {
    pub path: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    pub size: u64,
    pub link: Option<Vec<u8>>,
    pub dev: Option<(u32, u32)>,
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl MemberMeta {
    /// The member that carries MANIFEST entry `e` under the tar name `path`
    /// (a critical file's `.new` name, say), with `size` data bytes and
    /// `link` as its link target (a hard link names a member, not a path).
    pub fn of_entry(e: &Entry, path: Vec<u8>, size: u64, link: Option<Vec<u8>>) -> MemberMeta {
        MemberMeta {
            path,
            kind: e.kind,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            mtime: e.mtime,
            size,
            link,
            dev: e.dev,
            xattrs: e.xattrs.clone(),
        }
    }
}

fn cstr(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

/// A numeric header field: octal text, or base-256 when the high bit is set.
fn number(field: &[u8]) -> Result<u64, String> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        if field[0] & 0x40 != 0 {
            return Err("negative base-256 number".into());
        }
        let mut v: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or("base-256 number overflows")?;
        }
        return Ok(v);
    }
    let t = cstr(field);
    let t: Vec<u8> = t.iter().copied().filter(|c| *c != b' ').collect();
    if t.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(&t).map_err(|_| "non-ASCII number")?;
    u64::from_str_radix(s, 8).map_err(|_| format!("bad octal number {s:?}"))
}

/// One PAX record: key and value bytes.
pub type PaxRecord = (Vec<u8>, Vec<u8>);

/// Parse PAX records (`"<len> key=value\n"`), binary-safe.
pub fn pax_records(mut data: &[u8]) -> Result<Vec<PaxRecord>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.iter().all(|&b| b == 0) {
            break;
        }
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or("PAX record without length")?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("PAX record with a bad length")?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err("PAX record length does not fit".into());
        }
        let rec = &data[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or("PAX record without '='")?;
        out.push((rec[..eq].to_vec(), rec[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

fn pax_num<T: std::str::FromStr>(key: &[u8], v: &[u8]) -> Result<T, String> {
    // PAX times may carry a fraction: keep whole seconds.
    let s = std::str::from_utf8(v).map_err(|_| "non-ASCII PAX number")?;
    let s = s.split('.').next().unwrap_or(s);
    s.parse()
        .map_err(|_| format!("bad PAX {} {s:?}", String::from_utf8_lossy(key)))
}

/// What the extension headers before a member's own header said.
#[derive(Default)]
struct Extensions {
    pax_path: Option<Vec<u8>>,
    pax_link: Option<Vec<u8>>,
    gnu_path: Option<Vec<u8>>,
    gnu_link: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<i64>,
    xattrs: BTreeMap<String, Vec<u8>>,
}

impl Extensions {
    /// Read the extension headers of `raw` (whole blocks); the offset of the
    /// member's own header, its last block.
    fn read(raw: &[u8]) -> Result<(Extensions, usize), String> {
        const B: usize = 512;
        let mut ext = Extensions::default();
        let mut at = 0;
        loop {
            if at + B > raw.len() {
                return Err("header blocks end inside an extension".into());
            }
            let h = &raw[at..at + B];
            let tf = h[156];
            // Every block's size field must read, the member's own too.
            let size = number(&h[124..136])?;
            if at + B == raw.len() {
                return Ok((ext, at));
            }
            if !matches!(tf, b'x' | b'g' | b'L' | b'K') {
                return Err(format!(
                    "unexpected block of type {:?} before the header",
                    tf as char
                ));
            }
            let data_len = size.div_ceil(B as u64) as usize * B;
            let start = at + B;
            let end = start
                .checked_add(data_len)
                .filter(|&e| e <= raw.len())
                .ok_or("extension data overruns the header")?;
            let data = &raw[start..start + size as usize];
            match tf {
                b'x' => ext.pax(data)?,
                b'L' => ext.gnu_path = Some(cstr(data).to_vec()),
                b'K' => ext.gnu_link = Some(cstr(data).to_vec()),
                _ => {} // global PAX headers: nothing sysup relies on
            }
            at = end;
        }
    }

    /// Note the records of a PAX `x` header.
    fn pax(&mut self, data: &[u8]) -> Result<(), String> {
        for (k, v) in pax_records(data)? {
            match k.as_slice() {
                b"path" => self.pax_path = Some(v),
                b"linkpath" => self.pax_link = Some(v),
                b"size" => self.size = Some(pax_num::<u64>(&k, &v)?),
                b"uid" => self.uid = Some(pax_num::<u64>(&k, &v)?),
                b"gid" => self.gid = Some(pax_num::<u64>(&k, &v)?),
                b"mtime" => self.mtime = Some(pax_num::<i64>(&k, &v)?),
                _ if k.starts_with(b"SCHILY.xattr.") => {
                    let name =
                        String::from_utf8(k[13..].to_vec()).map_err(|_| "non-UTF-8 xattr name")?;
                    self.xattrs.insert(name, v);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Parse a member's raw header blocks (extensions first, its own ustar header
/// last) into its metadata.
pub fn parse(raw: &[u8]) -> Result<MemberMeta, String> {
    const B: usize = 512;
    if raw.len() < B || raw.len() % B != 0 {
        return Err("header is not whole blocks".into());
    }
    let (ext, at) = Extensions::read(raw)?;
    let h = &raw[at..at + B];
    let kind = kind_of(h[156])?;
    let path = member_path(h, ext.pax_path, ext.gnu_path, kind);
    let link = match kind {
        Kind::Symlink | Kind::Hardlink => Some(
            ext.pax_link
                .or(ext.gnu_link)
                .unwrap_or_else(|| cstr(&h[157..257]).to_vec()),
        ),
        _ => None,
    };
    let dev = device(h, kind)?;
    check_names(&path, link.as_deref())?;
    let mode = u32::try_from(number(&h[100..108])? & 0o7777).unwrap_or(0);
    Ok(MemberMeta {
        path,
        kind,
        mode,
        uid: ext.uid.map_or_else(|| number(&h[108..116]), Ok)?,
        gid: ext.gid.map_or_else(|| number(&h[116..124]), Ok)?,
        mtime: match ext.mtime {
            Some(t) => t,
            None => i64::try_from(number(&h[136..148])?).map_err(|_| "mtime too big")?,
        },
        size: ext.size.map_or_else(|| number(&h[124..136]), Ok)?,
        link,
        dev,
        xattrs: ext.xattrs,
    })
}

/// The kind a typeflag says.
fn kind_of(tf: u8) -> Result<Kind, String> {
    Ok(match tf {
        b'0' | 0 | b'7' => Kind::File,
        b'1' => Kind::Hardlink,
        b'2' => Kind::Symlink,
        b'3' => Kind::Char,
        b'4' => Kind::Block,
        b'5' => Kind::Dir,
        b'6' => Kind::Fifo,
        other => return Err(format!("unsupported member type {:?}", other as char)),
    })
}

/// The member's path: PAX `path`, else GNU long name, else the ustar prefix
/// and name; a directory's without trailing `/`.
fn member_path(
    h: &[u8],
    pax_path: Option<Vec<u8>>,
    gnu_path: Option<Vec<u8>>,
    kind: Kind,
) -> Vec<u8> {
    let mut path = match (pax_path, gnu_path) {
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => {
            let name = cstr(&h[..100]);
            let prefix = if &h[257..263] == b"ustar\0" {
                cstr(&h[345..500])
            } else {
                &[][..]
            };
            if prefix.is_empty() {
                name.to_vec()
            } else {
                [prefix, b"/", name].concat()
            }
        }
    };
    if kind == Kind::Dir {
        while path.last() == Some(&b'/') {
            path.pop();
        }
    }
    path
}

/// A device member's numbers, from the ustar fields it must have.
fn device(h: &[u8], kind: Kind) -> Result<Option<(u32, u32)>, String> {
    let ustar = &h[257..263] == b"ustar\0" || &h[257..263] == b"ustar ";
    match kind {
        Kind::Char | Kind::Block if ustar => {
            let ma = u32::try_from(number(&h[329..337])?).map_err(|_| "device major too big")?;
            let mi = u32::try_from(number(&h[337..345])?).map_err(|_| "device minor too big")?;
            Ok(Some((ma, mi)))
        }
        Kind::Char | Kind::Block => Err("device member without ustar fields".into()),
        _ => Ok(None),
    }
}

/// Refuse a name with a NUL or newline byte and a link target with a NUL.
fn check_names(path: &[u8], link: Option<&[u8]>) -> Result<(), String> {
    if let Some(what) = crate::format::manifest::bad_byte(path) {
        return Err(format!(
            "name '{}' contains {what}",
            crate::format::manifest::escape(path)
        ));
    }
    if let Some(l) = link.filter(|l| l.contains(&0)) {
        return Err(format!(
            "link target '{}' contains a NUL byte",
            crate::format::manifest::escape(l)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::archive::write::TarWriter;
    use proptest::prelude::*;

    fn headers_of(tar: &[u8]) -> Vec<Vec<u8>> {
        let mut seg = crate::format::archive::segment::Segmenter::new(tar, "t");
        let mut out = Vec::new();
        while let Some(item) = seg.next_item().unwrap() {
            match item {
                crate::format::archive::segment::Item::Member(m) => out.push(m.header.clone()),
                _ => break,
            }
        }
        out
    }

    #[test]
    fn reads_back_what_the_writer_wrote() {
        let long = [vec![b'd'; 150], b"/".to_vec(), vec![0xe9; 120]].concat();
        let target = vec![b't'; 300];
        let mut x = BTreeMap::new();
        x.insert(
            "security.capability".to_string(),
            b"\x01\n\x00\x02".to_vec(),
        );
        let mut w = TarWriter::new(Vec::new());
        w.append(
            &MemberMeta {
                path: long.clone(),
                kind: Kind::File,
                mode: 0o4755,
                uid: 5_000_000,
                gid: 7,
                mtime: -5,
                size: 3,
                link: None,
                dev: None,
                xattrs: x.clone(),
            },
            &b"abc"[..],
        )
        .unwrap();
        w.append(
            &MemberMeta {
                path: b"l".to_vec(),
                kind: Kind::Symlink,
                mode: 0o777,
                uid: 0,
                gid: 0,
                mtime: 9,
                size: 0,
                link: Some(target.clone()),
                dev: None,
                xattrs: BTreeMap::new(),
            },
            std::io::empty(),
        )
        .unwrap();
        w.append(
            &MemberMeta {
                path: b"dev/null".to_vec(),
                kind: Kind::Char,
                mode: 0o666,
                uid: 0,
                gid: 0,
                mtime: 9,
                size: 0,
                link: None,
                dev: Some((1, 3)),
                xattrs: BTreeMap::new(),
            },
            std::io::empty(),
        )
        .unwrap();
        w.append(
            &MemberMeta {
                path: b"a/dir".to_vec(),
                kind: Kind::Dir,
                mode: 0o1777,
                uid: 0,
                gid: 0,
                mtime: 9,
                size: 0,
                link: None,
                dev: None,
                xattrs: BTreeMap::new(),
            },
            std::io::empty(),
        )
        .unwrap();
        let tar = w.finish().unwrap();
        let h = headers_of(&tar);
        let f = parse(&h[0]).unwrap();
        assert_eq!(
            (
                f.path.clone(),
                f.kind,
                f.mode,
                f.uid,
                f.gid,
                f.mtime,
                f.size
            ),
            (long, Kind::File, 0o4755, 5_000_000, 7, -5, 3)
        );
        assert_eq!(f.xattrs, x);
        let l = parse(&h[1]).unwrap();
        assert_eq!(l.link.unwrap(), target);
        assert_eq!(parse(&h[2]).unwrap().dev, Some((1, 3)));
        let d = parse(&h[3]).unwrap();
        assert_eq!(
            (d.path.as_slice(), d.kind, d.mode),
            (&b"a/dir"[..], Kind::Dir, 0o1777)
        );
    }

    #[test]
    fn gnu_tar_long_names_and_base256() {
        let mut f = [0u8; 8];
        f[0] = 0x80;
        f[7] = 0x10;
        assert_eq!(number(&f).unwrap(), 16);
        assert_eq!(number(b"0000644\0").unwrap(), 0o644);
        assert!(number(b"0009\0\0\0\0").is_err());
    }

    #[test]
    fn names_with_nul_or_newline_are_refused() {
        let mut w = TarWriter::new(Vec::new());
        // the NUL one is long, so it travels in a PAX record (a ustar name
        // field would end at the NUL)
        let long_nul = [&b"etc/"[..], &[b'a'; 120], b"\0b"].concat();
        for name in [&b"etc/a\nb"[..], &long_nul] {
            w.append(
                &MemberMeta {
                    path: name.to_vec(),
                    kind: Kind::File,
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                    mtime: 0,
                    size: 0,
                    link: None,
                    dev: None,
                    xattrs: BTreeMap::new(),
                },
                std::io::empty(),
            )
            .unwrap();
        }
        let tar = w.finish().unwrap();
        let h = headers_of(&tar);
        assert!(parse(&h[0])
            .unwrap_err()
            .contains("'etc/a\\x0ab' contains a newline"));
        assert!(parse(&h[1]).unwrap_err().contains("contains a NUL byte"));
    }

    proptest! {
        #[test]
        fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse(&raw);
            let _ = pax_records(&raw);
        }
    }
}
