//! The host's own configuration, `<root>/etc/sysup.conf` (TOML), read by one
//! strict loader, [`HostConf::load`], for every command:
//!
//! ```toml
//! [apply]                       # sysup apply, update, rollback, verify --repair
//! devices = ["dev/**"]          # where device nodes may be installed (host::policy)
//! base-compression = "fast"     # how kept bases are gzipped: "fast" or "none"
//! config-merge = true           # merge config files three ways (docs/config-merge.md)
//!
//! [mirror]                      # sysup update (docs/mirrors.md §4)
//! url = "https://mirror.example.org/sysup/"
//! pubkey = "/etc/sysup/minisign.pub"
//! pubkeys = ["/etc/sysup/keys/b.pub"]  # more trusted keys (docs/mirrors.md)
//! retries = 3
//! timeout = 30
//! speed-limit = 1024
//! speed-time = 60
//! deadline = 14400
//!
//! [clean]                       # sysup clean
//! keep = 2
//! min-age-days = 0            # (min_age_days, its first spelling, is read too)
//! ```
//!
//! Invariants: reading the configuration changes nothing; a missing file or
//! table means the defaults; an unknown table, key or value is an error
//! naming the file and the table or key, whichever command reads it, raised
//! before anything is written. A misspelt key is never silently ignored: it
//! would leave the host on a default its admin meant to change.

use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::format::gz;

/// The host configuration file, relative to the root.
pub const CONF_FILE: &str = "etc/sysup.conf";

/// The tables [`HostConf::load`] knows, as an error lists them.
const TABLES: &str = "[apply], [clean] and [mirror]";

/// How the bases a host keeps (`var/db/sysup/bases/*.tar.gz`) are gzipped.
/// Either way a base is a gzip file that gunzip, GNU tar and bsdtar read,
/// and its CRC-32 is checked each time it is read; only the size and the
/// CPU an apply spends differ (docs/decisions.md, "Host base compression").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseCompression {
    /// Stored deflate blocks: as big as the tar, but an apply neither
    /// deflates the new base nor inflates the old one: for hosts that
    /// prefer CPU to disk.
    None,
    /// A fast deflate (`gz::Engine::Fast`: libdeflate level 1), the members the old
    /// base holds unchanged copied, not deflated again: the default, about
    /// 0.38× of the tar on the bench world (BENCHMARKS.md, "host base gzip").
    #[default]
    Fast,
}

impl BaseCompression {
    /// The gzip engine that writes such a base.
    pub fn engine(self) -> gz::Engine {
        match self {
            BaseCompression::None => gz::Engine::Stored,
            BaseCompression::Fast => gz::Engine::Fast(1),
        }
    }

    /// About how many bytes such a base of a `tar_size`-byte tar takes.
    pub fn estimate(self, tar_size: u64) -> u64 {
        match self {
            BaseCompression::None => tar_size + tar_size / 10_000 + 64,
            BaseCompression::Fast => tar_size / 2,
        }
    }
}

/// The host's `[apply]` settings.
#[derive(Clone, Debug)]
pub struct ApplyConf {
    /// Globs of paths where device nodes may go; `None`: the default.
    pub devices: Option<Vec<String>>,
    pub base_compression: BaseCompression,
    /// Merge locally modified config files three ways (default); `false`:
    /// keep every one beside its new version, as before merging.
    pub config_merge: bool,
    /// The file they came from (whether or not it exists), for messages.
    pub path: PathBuf,
}

/// The `[apply]` table as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ApplyTable {
    devices: Option<Vec<String>>,
    #[serde(default)]
    base_compression: BaseCompression,
    config_merge: Option<bool>,
}

/// The `[mirror]` table: `sysup update`'s settings, which its flags override.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MirrorConf {
    /// Base URL of the mirror (`http://`, `https://`, `file://`, or a directory).
    pub url: Option<String>,
    /// Public key file, a path inside the root.
    pub pubkey: Option<PathBuf>,
    /// More trusted public key files, paths inside the root.
    pub pubkeys: Option<Vec<PathBuf>>,
    /// Retries per file after the first attempt.
    pub retries: Option<u32>,
    /// Seconds a connection or a read may stall before the attempt fails.
    pub timeout: Option<u64>,
    /// Bytes per second a download must bring over `speed-time` (0: off).
    pub speed_limit: Option<u64>,
    /// Seconds of the window of `speed-limit`.
    pub speed_time: Option<u64>,
    /// Seconds one file may take to download, retries included.
    pub deadline: Option<u64>,
}

/// The `[clean]` table: `sysup clean`'s defaults, which its flags override.
/// Its keys are spelt with hyphens like every other table's; the first
/// spelling, `min_age_days`, is still read, so no host's file breaks.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CleanConf {
    /// Kept bases per dist name, the installed one included.
    pub keep: Option<usize>,
    /// Never prune a base (or a download) younger than this many days.
    #[serde(alias = "min_age_days")]
    pub min_age_days: Option<u64>,
}

/// Everything `<root>/etc/sysup.conf` says.
#[derive(Clone, Debug)]
pub struct HostConf {
    pub apply: ApplyConf,
    pub mirror: MirrorConf,
    pub clean: CleanConf,
    /// The file it came from (whether or not it exists), for messages.
    pub path: PathBuf,
}

impl HostConf {
    /// The configuration of the host at `root`: defaults for a missing file
    /// or table; an error naming the file and the table or key for anything
    /// it does not know. Read-only.
    pub fn load(root: &Path) -> Result<HostConf> {
        let path = root.join(CONF_FILE);
        let bad = |reason: String| Error::Metadata {
            what: "configuration",
            path: path.clone(),
            reason,
        };
        let mut apply = ApplyTable::default();
        let mut mirror = MirrorConf::default();
        let mut clean = CleanConf::default();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let all: toml::Table = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
                for (name, value) in all {
                    match name.as_str() {
                        "apply" => apply = table(&name, value).map_err(bad)?,
                        "mirror" => mirror = table(&name, value).map_err(bad)?,
                        "clean" => clean = table(&name, value).map_err(bad)?,
                        _ if value.is_table() => {
                            return Err(bad(format!(
                                "unknown table [{name}]; sysup.conf holds {TABLES}"
                            )))
                        }
                        _ => {
                            return Err(bad(format!(
                                "unknown key '{name}' outside any table; sysup.conf holds \
                                 {TABLES}"
                            )))
                        }
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("read", &path, e)),
        }
        Ok(HostConf {
            apply: ApplyConf {
                devices: apply.devices,
                base_compression: apply.base_compression,
                config_merge: apply.config_merge.unwrap_or(true),
                path: path.clone(),
            },
            mirror,
            clean,
            path,
        })
    }
}

/// The table `name` of the file, its keys checked; the reason when it is
/// not what the table takes.
fn table<T: DeserializeOwned>(name: &str, value: toml::Value) -> std::result::Result<T, String> {
    value
        .try_into()
        .map_err(|e: toml::de::Error| format!("[{name}]: {}", e.message()))
}

impl ApplyConf {
    /// The `[apply]` settings of the host at `root` ([`HostConf::load`]).
    /// Read-only.
    pub fn load(root: &Path) -> Result<ApplyConf> {
        HostConf::load(root).map(|c| c.apply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: Option<&str>) -> Result<HostConf> {
        let t = tempfile::tempdir().unwrap();
        if let Some(text) = text {
            std::fs::create_dir(t.path().join("etc")).unwrap();
            std::fs::write(t.path().join(CONF_FILE), text).unwrap();
        }
        HostConf::load(t.path())
    }

    fn conf(text: Option<&str>) -> Result<ApplyConf> {
        load(text).map(|c| c.apply)
    }

    #[test]
    fn bases_are_deflated_unless_the_host_asks_for_none() {
        for text in [
            None,
            Some("[mirror]\nurl = \"http://x\"\n"),
            Some("[apply]\n"),
        ] {
            let c = conf(text).unwrap();
            assert_eq!(c.base_compression, BaseCompression::Fast, "{text:?}");
            assert_eq!(c.base_compression.engine(), gz::Engine::Fast(1));
            assert!(c.devices.is_none());
        }
        let c = conf(Some("[apply]\nbase-compression = \"none\"\n")).unwrap();
        assert_eq!(c.base_compression.engine(), gz::Engine::Stored);
        let c = conf(Some("[apply]\nbase-compression = \"none\"\ndevices = []\n")).unwrap();
        assert_eq!(c.base_compression, BaseCompression::None);
        assert_eq!(c.devices, Some(vec![]));
    }

    #[test]
    fn a_bad_setting_names_the_file_and_the_key() {
        let e = conf(Some("[apply]\nbase-compression = \"xz\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sysup.conf") && e.contains("xz"), "{e}");
        let e = conf(Some("[apply]\nbase_compression = \"fast\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sysup.conf") && e.contains("base_compression"),
            "{e}"
        );
    }

    #[test]
    fn every_table_is_read_and_checked() {
        assert_eq!(load(None).unwrap().mirror, MirrorConf::default());
        let c = load(Some(
            "[mirror]\nurl = \"http://m/\"\npubkey = \"/etc/k.pub\"\n[clean]\nkeep = 3\n",
        ))
        .unwrap();
        assert_eq!(c.mirror.url.as_deref(), Some("http://m/"));
        assert_eq!(c.mirror.pubkey, Some(PathBuf::from("/etc/k.pub")));
        assert_eq!(c.clean.keep, Some(3));
        assert_eq!(c.clean.min_age_days, None);
        for spelling in ["min-age-days", "min_age_days"] {
            let c = load(Some(&format!("[clean]\n{spelling} = 7\n"))).unwrap();
            assert_eq!(c.clean.min_age_days, Some(7), "{spelling}");
        }
        let e = load(Some("[clean]\nmin-age-days = 1\nmin_age_days = 2\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate") && e.contains("[clean]"), "{e}");
        let c = load(Some(
            "[mirror]\npubkeys = [\"/etc/a.pub\", \"/etc/b.pub\"]\n",
        ))
        .unwrap();
        assert_eq!(c.mirror.pubkeys.map(|v| v.len()), Some(2));
        let e = load(Some("[mirror]\nurl = \"x\"\nbogus = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus") && e.contains("[mirror]"), "{e}");
        let e = load(Some("[update]\nurl = \"x\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[update]") && e.contains("sysup.conf"), "{e}");
        let e = load(Some("url = \"x\"\n")).unwrap_err().to_string();
        assert!(e.contains("'url'") && e.contains("sysup.conf"), "{e}");
    }
}
