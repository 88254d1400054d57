//! What a host lets a dist install beyond what the dist itself says:
//! character and block device nodes only at the paths the host's own
//! `<root>/etc/sysup.conf` allows —
//!
//! ```toml
//! [apply]
//! devices = ["dev/**"]   # the default; gitignore-like globs, as in specs
//! ```
//!
//! A device node is a door into the kernel: a dist that ships `usr/bin/mem`
//! as char 1,1 with mode 0666 hands every local user the machine's memory,
//! and one under `home/` or `srv/` is as bad. So the build host refuses
//! device nodes outside its spec's `devices` globs (`build::scan`), and the
//! host refuses any outside its own list. Nothing in a dist is read for
//! this: a dist cannot grant itself more than the host allows.
//!
//! Invariants: [`Policy::check`] runs on the new MANIFEST right after it is
//! read, before anything of the tree is staged; the stager then insists that
//! every member matches its MANIFEST entry's type, so no device node can get
//! in under another type. Reading the configuration changes nothing.

use crate::error::{Error, Result};
use crate::format::manifest::{Kind, Manifest};
use crate::format::spec::{Globs, DEFAULT_DEVICES};
use crate::host::conf::ApplyConf;

/// The host's rules for what a dist may install.
#[derive(Debug, Clone)]
pub struct Policy {
    devices: Globs,
    /// Where the rules came from, for messages.
    source: String,
}

impl Policy {
    /// The rules of the host at `root` (defaults when its configuration
    /// file or its `[apply]` table is missing). Read-only.
    #[cfg(test)]
    fn load(root: &std::path::Path) -> Result<Policy> {
        Policy::new(&ApplyConf::load(root)?)
    }

    /// The rules `conf` sets.
    pub fn new(conf: &ApplyConf) -> Result<Policy> {
        let p = &conf.path;
        let (patterns, source) = match &conf.devices {
            Some(d) => (d.clone(), format!("[apply] devices in {}", p.display())),
            None => (
                vec![DEFAULT_DEVICES.to_string()],
                format!(
                    "the default; set [apply] devices in {} to allow more",
                    p.display()
                ),
            ),
        };
        let devices = Globs::new(p, "[apply] devices", &patterns).map_err(|e| Error::Metadata {
            what: "configuration",
            path: p.clone(),
            reason: e.to_string(),
        })?;
        Ok(Policy { devices, source })
    }

    /// Refuse `manifest` (of the dist `label`) when it holds a device node
    /// the host does not allow.
    pub fn check(&self, manifest: &Manifest, label: &str) -> Result<()> {
        let denied = manifest
            .entries()
            .iter()
            .find(|e| matches!(e.kind, Kind::Char | Kind::Block) && !self.devices.matches(&e.path));
        match denied {
            None => Ok(()),
            Some(e) => {
                let (major, minor) = e.dev.unwrap_or_default();
                Err(Error::Refused(format!(
                    "'{label}' would install a {} device at '{}' ({major},{minor}), but this host \
                     allows device nodes only at {} ({}); nothing was written",
                    e.kind.as_str(),
                    crate::format::manifest::escape(&e.path),
                    self.devices.patterns().join(", "),
                    self.source
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::Entry;
    use crate::host::conf::CONF_FILE;

    fn with_dev(path: &str) -> Manifest {
        let mut d = Entry::new(path.as_bytes().to_vec(), Kind::Char);
        d.dev = Some((1, 1));
        Manifest::new(vec![d]).unwrap()
    }

    #[test]
    fn devices_only_under_dev_unless_the_host_says_more() {
        let t = tempfile::tempdir().unwrap();
        let p = Policy::load(t.path()).unwrap();
        p.check(&with_dev("dev/null"), "d").unwrap();
        let e = p.check(&with_dev("usr/bin/mem"), "w.tar.gz").unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("w.tar.gz") && e.contains("usr/bin/mem") && e.contains("dev/**"),
            "{e}"
        );
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(
            t.path().join(CONF_FILE),
            "[mirror]\nurl = \"http://x\"\n[apply]\ndevices = [\"dev/**\", \"srv/jail/*/dev/**\"]\n",
        )
        .unwrap();
        let p = Policy::load(t.path()).unwrap();
        p.check(&with_dev("srv/jail/a/dev/null"), "d").unwrap();
        assert!(p.check(&with_dev("srv/jail/a/bin/mem"), "d").is_err());
        std::fs::write(t.path().join(CONF_FILE), "[apply]\ndevics = []\n").unwrap();
        let e = Policy::load(t.path()).unwrap_err().to_string();
        assert!(e.contains("devics") && e.contains("sysup.conf"), "{e}");
    }
}
