//! One MANIFEST line: rendering an entry and parsing it back, with the
//! escaping that keeps every field free of spaces, newlines and non-UTF-8
//! bytes.
//!
//! Invariants: `unescape(escape(b)) == b` for every byte string, and
//! `parse_entry(render_entry(e)) == e` for every valid entry; a line is
//! refused, with the reason, unless its path is safe, its keys are known,
//! given once and of its kind, and it has what its kind needs (a file's
//! SHA-256, a link's target, a device's numbers).

use std::fmt::Write as _;

use super::{bad_byte, is_safe_rel, shape_error, Entry, Kind};

/// Escape a byte string into a single whitespace-free field.
pub fn escape(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        if (b'!'..=b'~').contains(&c) && c != b'\\' && c != b'=' {
            s.push(c as char);
        } else {
            let _ = write!(s, "\\x{c:02x}");
        }
    }
    s
}

/// Undo [`escape`].
pub fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) != Some(&b'x') || i + 4 > b.len() {
                return None;
            }
            let h = std::str::from_utf8(&b[i + 2..i + 4]).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

pub(super) fn render_entry(s: &mut String, e: &Entry) {
    let _ = write!(
        s,
        "{} type={} mode={:04o} uid={} gid={} mtime={}",
        escape(&e.path),
        e.kind.as_str(),
        e.mode,
        e.uid,
        e.gid,
        e.mtime
    );
    if matches!(e.kind, Kind::File | Kind::Hardlink) {
        let _ = write!(s, " size={}", e.size);
    }
    if let Some(h) = &e.sha256 {
        let _ = write!(s, " sha256={}", hex::encode(h));
    }
    if let Some(l) = &e.link {
        let _ = write!(s, " link={}", escape(l));
    }
    if let Some((ma, mi)) = e.dev {
        let _ = write!(s, " dev={ma},{mi}");
    }
    for (k, v) in &e.xattrs {
        let _ = write!(s, " xattr.{}={}", escape(k.as_bytes()), hex::encode(v));
    }
    match (e.critical, e.config) {
        (true, true) => s.push_str(" flags=critical,config"),
        (true, false) => s.push_str(" flags=critical"),
        (false, true) => s.push_str(" flags=config"),
        (false, false) => {}
    }
}

/// Parse one entry line.
pub(super) fn parse_entry(line: &str) -> std::result::Result<Entry, String> {
    let mut fields = line.split(' ');
    let path = parse_path(fields.next().unwrap_or_default())?;
    let mut e = Entry::new(path, Kind::File);
    let mut kind = None;
    let mut keys: Vec<&str> = Vec::new();
    for f in fields {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| format!("field '{f}' is not key=value"))?;
        if keys.contains(&k) {
            return Err(format!("key '{k}' given twice"));
        }
        keys.push(k);
        set_field(&mut e, &mut kind, k, v)?;
    }
    e.kind = kind.ok_or("missing type")?;
    check_fields(&e, &keys)?;
    Ok(e)
}

/// An entry's path field, unescaped and checked to be safe.
fn parse_path(path: &str) -> std::result::Result<Vec<u8>, String> {
    let path = unescape(path).ok_or_else(|| format!("bad escape in path '{path}'"))?;
    if let Some(why) = shape_error("path", &path) {
        return Err(why);
    }
    if let Some(what) = bad_byte(&path) {
        return Err(format!("path '{}' contains {what}", escape(&path)));
    }
    if !is_safe_rel(&path) {
        return Err(format!("unsafe path '{}'", String::from_utf8_lossy(&path)));
    }
    Ok(path)
}

/// Set the field `k=v` of `e` (the type goes to `kind`).
fn set_field(
    e: &mut Entry,
    kind: &mut Option<Kind>,
    k: &str,
    v: &str,
) -> std::result::Result<(), String> {
    let num = |v: &str| {
        v.parse::<u64>()
            .map_err(|_| format!("{k}: bad number '{v}'"))
    };
    // A Linux owner is 32 bits, and all ones means "leave it": a chown
    // would silently keep the old owner.
    let id = |v: &str| match num(v)? {
        n if n > MAX_ID => Err(format!("{k} {v} is out of range (0 to {MAX_ID})")),
        n => Ok(n),
    };
    match k {
        "type" => *kind = Some(Kind::parse(v).ok_or_else(|| format!("unknown type '{v}'"))?),
        "mode" => {
            e.mode = u32::from_str_radix(v, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| format!("bad mode '{v}'"))?
        }
        "uid" => e.uid = id(v)?,
        "gid" => e.gid = id(v)?,
        "mtime" => e.mtime = v.parse().map_err(|_| format!("bad mtime '{v}'"))?,
        "size" => e.size = num(v)?,
        "sha256" => {
            let mut h = [0u8; 32];
            hex::decode_to_slice(v, &mut h).map_err(|_| format!("bad sha256 '{v}'"))?;
            e.sha256 = Some(h);
        }
        "link" => {
            let l = unescape(v).ok_or_else(|| format!("bad escape in link '{v}'"))?;
            if l.contains(&0) {
                return Err(format!("link target '{v}' contains a NUL byte"));
            }
            if let Some(why) = shape_error("link", &l) {
                return Err(why);
            }
            e.link = Some(l);
        }
        "dev" => {
            let (a, b) = v.split_once(',').ok_or_else(|| format!("bad dev '{v}'"))?;
            let a = a.parse().map_err(|_| format!("bad dev '{v}'"))?;
            let b = b.parse().map_err(|_| format!("bad dev '{v}'"))?;
            e.dev = Some((a, b));
        }
        "flags" => {
            for flag in v.split(',') {
                match flag {
                    "critical" => e.critical = true,
                    "config" => e.config = true,
                    _ => return Err(format!("unknown flag '{flag}'")),
                }
            }
        }
        _ if k.starts_with("xattr.") => {
            let name = unescape(&k[6..])
                .and_then(|n| String::from_utf8(n).ok())
                .ok_or_else(|| format!("bad xattr name '{k}'"))?;
            let val = hex::decode(v)
                .map_err(|_| format!("bad xattr value for '{}'", escape(name.as_bytes())))?;
            check_xattr(&name, &val)?;
            e.xattrs.insert(name, val);
        }
        _ => return Err(format!("unknown key '{k}'")),
    }
    Ok(())
}

/// The largest owner id an entry may name: `u32::MAX` is `-1`, which
/// `chown` takes as "no change".
const MAX_ID: u64 = u32::MAX as u64 - 1;

/// Linux's bounds on one extended attribute, for every filesystem
/// (`XATTR_NAME_MAX` and `XATTR_SIZE_MAX` in `<linux/limits.h>`), and the
/// namespaces its name must start with.
const XATTR_NAME_MAX: usize = 255;
const XATTR_SIZE_MAX: usize = 65536;
const XATTR_NAMESPACES: [&str; 4] = ["user.", "trusted.", "security.", "system."];

/// An extended attribute no Linux filesystem takes is refused where the
/// MANIFEST is read, not where the commit would fail to set it.
fn check_xattr(name: &str, value: &[u8]) -> std::result::Result<(), String> {
    let spaced = XATTR_NAMESPACES
        .iter()
        .any(|ns| name.len() > ns.len() && name.starts_with(ns));
    if !spaced || name.len() > XATTR_NAME_MAX || name.contains('\0') {
        return Err(format!(
            "xattr name '{}' is not one Linux takes (1 to {XATTR_NAME_MAX} bytes, no NUL, in the user., trusted., security. or system. namespace)",
            escape(name.as_bytes())
        ));
    }
    if value.len() > XATTR_SIZE_MAX {
        return Err(format!(
            "xattr '{}' holds {} bytes, more than the {XATTR_SIZE_MAX} Linux takes",
            escape(name.as_bytes()),
            value.len()
        ));
    }
    Ok(())
}

/// An entry has only the fields of its kind, and all those its kind needs.
fn check_fields(e: &Entry, keys: &[&str]) -> std::result::Result<(), String> {
    // Only the fields of its kind: a fifo with a size or a directory with
    // device numbers says two things at once (and would not render back).
    let owns = |key: &str| match key {
        "size" | "sha256" | "flags" => matches!(e.kind, Kind::File | Kind::Hardlink),
        "link" => matches!(e.kind, Kind::Symlink | Kind::Hardlink),
        "dev" => matches!(e.kind, Kind::Char | Kind::Block),
        _ => true,
    };
    if let Some(k) = keys.iter().find(|k| !owns(k)) {
        return Err(format!(
            "'{}' is a {} and cannot have '{k}'",
            e.display(),
            e.kind.as_str()
        ));
    }
    match e.kind {
        Kind::File | Kind::Hardlink if e.sha256.is_none() => {
            return Err(format!("'{}' has no sha256", e.display()))
        }
        Kind::Symlink | Kind::Hardlink if e.link.is_none() => {
            return Err(format!("'{}' has no link target", e.display()))
        }
        Kind::Char | Kind::Block if e.dev.is_none() => {
            return Err(format!("'{}' has no dev numbers", e.display()))
        }
        _ => {}
    }
    // Linux keeps user.* attributes for files and directories (the kernel
    // refuses them on links and nodes).
    if !matches!(e.kind, Kind::File | Kind::Hardlink | Kind::Dir) {
        if let Some(k) = e.xattrs.keys().find(|k| k.starts_with("user.")) {
            return Err(format!(
                "'{}' is a {} and cannot carry the user.* attribute '{}'",
                e.display(),
                e.kind.as_str(),
                escape(k.as_bytes())
            ));
        }
    }
    if e.kind == Kind::Hardlink && !e.link.as_deref().is_some_and(is_safe_rel) {
        return Err(format!("'{}' is a hardlink to an unsafe path", e.display()));
    }
    Ok(())
}
