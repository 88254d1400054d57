//! Build specs (docs/design.md §2): the TOML file that says which part of a staged
//! tree becomes a dist, which files are critical or config, and what ships in
//! `.sysup/` besides MANIFEST.
//!
//! Invariants:
//! - unknown keys are an error (a typo must not silently change a dist);
//! - globs are gitignore-like: `*` stays within a path component, `**`
//!   crosses directories, and a pattern without `/` matches a base name at any
//!   depth; paths are relative to the tree root, with no leading `/`;
//! - relative file keys (`obsolete`, `upgrade`) resolve against the spec's
//!   directory, never the current directory;
//! - a kernel's `install_dir` and `keep_old` pass [`KernelDirs::checked`],
//!   which a host applies again to a dist's DIST (it trusts no build host);
//! - `devices` (default `["dev/**"]`) says where the tree may hold character
//!   and block device nodes; a host installs them only where its own
//!   `etc/sysup.conf` allows too (`host::policy`).

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::error::{Error, IoContext, Result};
use crate::format::name::DistName;
use crate::format::STATE_DIR;

/// A spec as written in TOML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: String,
    arch: String,
    #[serde(default = "default_include")]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    critical: Vec<String>,
    /// `None`: the default, `etc/**`.
    config: Option<Vec<String>>,
    #[serde(default = "default_devices")]
    devices: Vec<String>,
    obsolete: Option<PathBuf>,
    upgrade: Option<PathBuf>,
    install_dir: Option<String>,
    keep_old: Option<String>,
}

fn default_include() -> Vec<String> {
    vec!["**".into()]
}
fn default_config() -> Vec<String> {
    vec!["etc/**".into()]
}
/// Where character and block device nodes may be (docs/decisions.md).
pub const DEFAULT_DEVICES: &str = "dev/**";
fn default_devices() -> Vec<String> {
    vec![DEFAULT_DEVICES.into()]
}

/// A named set of globs, matched against tree-relative paths.
#[derive(Debug, Clone)]
pub struct Globs {
    patterns: Vec<String>,
    set: GlobSet,
}

impl Globs {
    /// Compile gitignore-like patterns; `what` names the key in errors.
    pub fn new(spec: &Path, what: &str, patterns: &[String]) -> Result<Globs> {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            let trimmed = p.trim_start_matches('/');
            if trimmed.is_empty() {
                return Err(Error::Spec {
                    path: spec.to_path_buf(),
                    reason: format!("{what}: empty pattern"),
                });
            }
            // A pattern without '/' matches a base name anywhere, as in gitignore.
            let full = if trimmed.contains('/') {
                trimmed.to_string()
            } else {
                format!("**/{trimmed}")
            };
            let glob = GlobBuilder::new(&full)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::Spec {
                    path: spec.to_path_buf(),
                    reason: format!("{what}: bad pattern '{p}': {e}"),
                })?;
            b.add(glob);
        }
        let set = b.build().map_err(|e| Error::Spec {
            path: spec.to_path_buf(),
            reason: format!("{what}: {e}"),
        })?;
        Ok(Globs {
            patterns: patterns.to_vec(),
            set,
        })
    }

    /// Whether a tree-relative path (bytes; non-UTF-8 is matched lossily) matches.
    pub fn matches(&self, path: &[u8]) -> bool {
        match std::str::from_utf8(path) {
            Ok(s) => self.set.is_match(s),
            Err(_) => self.set.is_match(String::from_utf8_lossy(path).as_ref()),
        }
    }

    /// The indices (into [`Globs::patterns`]) of the patterns `path` matches.
    pub fn which(&self, path: &[u8]) -> Vec<usize> {
        match std::str::from_utf8(path) {
            Ok(s) => self.set.matches(s),
            Err(_) => self.set.matches(String::from_utf8_lossy(path).as_ref()),
        }
    }

    /// The patterns as written.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// Kernel-only settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KernelDirs {
    /// Where the kernel is installed on a host, relative to the root.
    pub install_dir: String,
    /// Where the previous kernel is kept before a new one goes live.
    pub keep_old: String,
}

/// A validated build spec.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The spec file it came from.
    pub path: PathBuf,
    pub name: DistName,
    pub arch: String,
    pub include: Globs,
    pub exclude: Globs,
    pub critical: Globs,
    pub config: Globs,
    /// Whether the spec wrote its `config` patterns (not the default).
    pub config_given: bool,
    /// Where character and block device nodes may be; a device node
    /// anywhere else in the tree stops the build.
    pub devices: Globs,
    /// Paths older releases shipped that must go (from the `obsolete` file).
    pub obsolete: Vec<String>,
    /// The dist's own cleanup step, shipped as `.sysup/upgrade`.
    pub upgrade: Option<Vec<u8>>,
    pub kernel: Option<KernelDirs>,
}

fn spec_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Spec {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Whether root-relative `a` is `b` or inside it.
fn within(a: &str, b: &str) -> bool {
    a == b || a.strip_prefix(b).is_some_and(|r| r.starts_with('/'))
}

impl KernelDirs {
    /// The one rule set for a kernel's directories, on the build host (a
    /// spec) and on the host (a dist's DIST): each a plain relative path
    /// (normalised: no leading or trailing `/`), the two apart (neither is,
    /// or is inside, the other), and both clear of sysup's state directory
    /// (neither it, inside it, nor above it) — the swap renames whatever is
    /// at either. `Err` holds the key at fault and why.
    pub fn checked(
        install_dir: &str,
        keep_old: &str,
    ) -> std::result::Result<KernelDirs, (&'static str, String)> {
        let plain = |key: &'static str, v: &str| {
            let t = v.trim_matches('/');
            if t.is_empty() || t.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
                return Err((key, format!("{key} = '{v}' must be a plain relative path")));
            }
            if within(t, STATE_DIR) || within(STATE_DIR, t) {
                return Err((
                    key,
                    format!("{key} = '{v}' overlaps sysup's state directory {STATE_DIR}"),
                ));
            }
            Ok(t.to_string())
        };
        let d = KernelDirs {
            install_dir: plain("install_dir", install_dir)?,
            keep_old: plain("keep_old", keep_old)?,
        };
        if within(&d.keep_old, &d.install_dir) || within(&d.install_dir, &d.keep_old) {
            return Err((
                "keep_old",
                format!(
                    "keep_old = '{}' and install_dir = '{}' must be apart (neither inside the other)",
                    d.keep_old, d.install_dir
                ),
            ));
        }
        Ok(d)
    }
}

impl Spec {
    /// Read and validate a spec file.
    pub fn load(path: &Path) -> Result<Spec> {
        let text = std::fs::read_to_string(path).ctx("read spec", path)?;
        Spec::parse(path, &text)
    }

    /// Validate spec text; `path` locates the spec (errors and relative keys).
    pub fn parse(path: &Path, text: &str) -> Result<Spec> {
        let raw: RawSpec = toml::from_str(text).map_err(|e| spec_err(path, e.to_string()))?;
        let name: DistName = raw
            .name
            .parse()
            .map_err(|e: Error| spec_err(path, e.to_string()))?;
        if raw.arch.is_empty()
            || !raw
                .arch
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(spec_err(
                path,
                format!("arch '{}' is not a plain word", raw.arch),
            ));
        }
        let kernel = match (&name, raw.install_dir, raw.keep_old) {
            (DistName::Kernel(_), Some(i), Some(k)) => {
                Some(KernelDirs::checked(&i, &k).map_err(|(_, why)| spec_err(path, why))?)
            }
            (DistName::Kernel(_), _, _) => {
                return Err(spec_err(
                    path,
                    "a kernel spec needs both install_dir and keep_old",
                ))
            }
            (DistName::World, None, None) => None,
            (DistName::World, _, _) => {
                return Err(spec_err(
                    path,
                    "install_dir and keep_old are for kernel specs only",
                ))
            }
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let obsolete = match raw.obsolete {
            None => Vec::new(),
            Some(f) => {
                let f = dir.join(f);
                let text = std::fs::read_to_string(&f).ctx("read obsolete list", &f)?;
                parse_obsolete(&f, &text)?
            }
        };
        let upgrade = match raw.upgrade {
            None => None,
            Some(f) => {
                let f = dir.join(f);
                Some(std::fs::read(&f).ctx("read upgrade step", &f)?)
            }
        };
        Ok(Spec {
            path: path.to_path_buf(),
            include: Globs::new(path, "include", &raw.include)?,
            exclude: Globs::new(path, "exclude", &raw.exclude)?,
            critical: Globs::new(path, "critical", &raw.critical)?,
            config_given: raw.config.is_some(),
            config: Globs::new(path, "config", &raw.config.unwrap_or_else(default_config))?,
            devices: Globs::new(path, "devices", &raw.devices)?,
            name,
            arch: raw.arch,
            obsolete,
            upgrade,
            kernel,
        })
    }

    /// Whether a tree-relative path belongs in the dist.
    pub fn wants(&self, path: &[u8]) -> bool {
        self.include.matches(path) && !self.exclude.matches(path)
    }
}

/// Parse an obsolete list: one root-relative path per line, `#` comments.
fn parse_obsolete(file: &Path, text: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let p = line.trim_start_matches('/');
        if p.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            return Err(spec_err(
                file,
                format!("line {}: '{line}' is not a plain path", n + 1),
            ));
        }
        out.push(p.to_string());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Spec> {
        Spec::parse(Path::new("/nonexistent/world.toml"), text)
    }

    #[test]
    fn defaults_and_globs() {
        let s = parse(
            r#"name = "world"
arch = "x86_64"
exclude = ["tmp/**", "proc/**", "*.pyc"]
critical = ["usr/lib/*/libc.so.6"]"#,
        )
        .unwrap();
        assert!(s.wants(b"usr/bin/ls"));
        assert!(s.wants(b"tmp"), "the directory itself stays");
        assert!(!s.wants(b"tmp/x/y"));
        assert!(
            !s.wants(b"usr/lib/python3/a.pyc"),
            "base-name pattern at depth"
        );
        assert!(s.critical.matches(b"usr/lib/x86_64-linux-gnu/libc.so.6"));
        assert!(
            !s.critical.matches(b"usr/lib/a/b/libc.so.6"),
            "* stays in one component"
        );
        assert!(s.config.matches(b"etc/ssh/sshd_config"));
        assert!(s.devices.matches(b"dev/null") && s.devices.matches(b"dev/input/event0"));
        assert!(!s.devices.matches(b"usr/bin/mem") && !s.devices.matches(b"srv/dev/x"));
        assert!(s.kernel.is_none());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let e = parse("name = \"world\"\narch = \"x86_64\"\nexlude = []").unwrap_err();
        assert!(e.to_string().contains("exlude"), "{e}");
        assert!(parse("name = \"wrld\"\narch = \"x\"").is_err());
        assert!(parse("name = \"world\"").is_err(), "arch is required");
        assert!(parse("name = \"world\"\narch = \"x\"\ninstall_dir = \"boot\"").is_err());
        assert!(parse("name = \"kernel-G\"\narch = \"x\"").is_err());
        assert!(parse(
            "name = \"kernel-G\"\narch = \"x\"\ninstall_dir = \"../b\"\nkeep_old = \"b.old\""
        )
        .is_err());
        let k = parse("name = \"kernel-G\"\narch = \"x\"\ninstall_dir = \"/boot/kernel\"\nkeep_old = \"boot/kernel.old\"").unwrap();
        assert_eq!(k.kernel.unwrap().install_dir, "boot/kernel");
        let e = parse("name = [").unwrap_err();
        assert!(e.to_string().contains("world.toml"), "{e}");
    }

    #[test]
    fn kernel_dirs_are_plain_apart_and_clear_of_the_state() {
        let ok = KernelDirs::checked("/boot/kernel/", "boot/kernel.old").unwrap();
        assert_eq!(
            (ok.install_dir.as_str(), ok.keep_old.as_str()),
            ("boot/kernel", "boot/kernel.old")
        );
        for (i, k, key) in [
            ("boot/kernel", "../x", "keep_old"),
            ("a/./b", "x", "install_dir"),
            ("boot/kernel", "", "keep_old"),
            ("var/db", "x", "install_dir"),
            ("boot", "var/db/sysup/k", "keep_old"),
            ("boot/kernel", "boot/kernel", "keep_old"),
            ("boot/kernel", "boot/kernel/old", "keep_old"),
            ("boot/kernel", "boot", "keep_old"),
        ] {
            assert_eq!(KernelDirs::checked(i, k).unwrap_err().0, key, "{i} {k}");
        }
        assert!(KernelDirs::checked("boot/kernel", "boot/kernel.old/x").is_ok());
    }

    #[test]
    fn obsolete_lists_are_checked() {
        let ok = parse_obsolete(Path::new("o"), "# c\n/usr/bin/old\n\nusr/lib/x\n").unwrap();
        assert_eq!(ok, vec!["usr/bin/old", "usr/lib/x"]);
        assert!(parse_obsolete(Path::new("o"), "usr/../etc/passwd\n").is_err());
    }
}
