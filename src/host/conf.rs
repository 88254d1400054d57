//! The `[apply]` table of the host's own `<root>/etc/sysup.conf`:
//!
//! ```toml
//! [apply]
//! devices = ["dev/**"]          # where device nodes may be installed (host::policy)
//! base-compression = "none"     # how kept bases are gzipped: "none" or "fast"
//! ```
//!
//! Invariants: reading the configuration changes nothing; a missing file or
//! table means the defaults; an unknown key or value is an error naming the
//! file, raised in the check phase, before anything is written.

use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::format::gz;
use crate::mirror::update::CONF_FILE;

/// How the bases a host keeps (`var/db/sysup/bases/*.tar.gz`) are gzipped.
/// Either way a base is a gzip file that gunzip, GNU tar and bsdtar read,
/// and its CRC-32 is checked each time it is read; only the size and the
/// CPU an apply spends differ (docs/decisions.md, "Host base compression").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseCompression {
    /// Stored deflate blocks: as big as the tar, but an apply neither
    /// deflates the new base nor inflates the old one. The default: on the
    /// bench world an apply takes two thirds of the CPU it takes with `fast`.
    #[default]
    None,
    /// Deflate level 1 (`gz::Engine::Fast`: ISA-L in a build with the
    /// `isal` feature, zlib-rs otherwise): under half the tar, for hosts
    /// short of disk.
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
    /// The file they came from (whether or not it exists), for messages.
    pub path: PathBuf,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Table {
    devices: Option<Vec<String>>,
    #[serde(default)]
    base_compression: BaseCompression,
}

impl ApplyConf {
    /// The settings of the host at `root`: defaults when its configuration
    /// file or its `[apply]` table is missing. Read-only.
    pub fn load(root: &Path) -> Result<ApplyConf> {
        let path = root.join(CONF_FILE);
        let bad = |reason: String| Error::Metadata {
            what: "configuration",
            path: path.clone(),
            reason,
        };
        let table = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let all: toml::Table = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
                match all.get("apply") {
                    None => Table::default(),
                    Some(v) => v
                        .clone()
                        .try_into()
                        .map_err(|e: toml::de::Error| bad(format!("[apply]: {}", e.message())))?,
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Table::default(),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        Ok(ApplyConf {
            devices: table.devices,
            base_compression: table.base_compression,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: Option<&str>) -> Result<ApplyConf> {
        let t = tempfile::tempdir().unwrap();
        if let Some(text) = text {
            std::fs::create_dir(t.path().join("etc")).unwrap();
            std::fs::write(t.path().join(CONF_FILE), text).unwrap();
        }
        ApplyConf::load(t.path())
    }

    #[test]
    fn bases_are_stored_unless_the_host_asks_for_fast() {
        for text in [
            None,
            Some("[mirror]\nurl = \"http://x\"\n"),
            Some("[apply]\n"),
        ] {
            let c = conf(text).unwrap();
            assert_eq!(c.base_compression, BaseCompression::None, "{text:?}");
            assert_eq!(c.base_compression.engine(), gz::Engine::Stored);
            assert!(c.devices.is_none());
        }
        let c = conf(Some("[apply]\nbase-compression = \"fast\"\n")).unwrap();
        assert_eq!(c.base_compression.engine(), gz::Engine::Fast(1));
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
}
