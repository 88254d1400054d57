//! A local nginx serving a signed INDEX of the pair, for the `sysup update`
//! operations: bound to 127.0.0.1, killed on drop.

use super::*;

/// A local nginx serving a signed INDEX of the pair (started by
/// `tests/suite/common/nginx.rs`, as the mirror tests' are: bound to
/// 127.0.0.1, killed on drop).
pub struct Mirror {
    child: Child,
    pub url: String,
    pub pubkey: PathBuf,
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether nginx and minisign are installed.
pub fn mirror_tools() -> bool {
    ["nginx", "minisign"].iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Publish the pair (both dists and the patch, signed with a fresh minisign
/// key) under `work/mirror/` and serve it.
pub fn start_mirror(sysup: &Path, work: &Path, pair: &Pair) -> Result<Mirror, String> {
    // nginx resolves the paths of its configuration against its prefix
    // (`-p`): every one of them must be absolute, whatever `--work` was.
    let dir = std::path::absolute(work.join("mirror")).map_err(|e| e.to_string())?;
    let _ = fs::remove_dir_all(&dir);
    let docroot = dir.join("pub");
    fs::create_dir_all(&docroot).map_err(|e| e.to_string())?;
    for f in [&pair.a.dist, &pair.b.dist, &pair.patch] {
        let to = docroot.join(f.file_name().expect("file"));
        fs::hard_link(f, &to)
            .or_else(|_| fs::copy(f, &to).map(|_| ()))
            .map_err(|e| format!("publish {}: {e}", f.display()))?;
    }
    let (pubkey, seckey) = (dir.join("sysup.pub"), dir.join("sysup.key"));
    must(
        Command::new("minisign")
            .args(["-G", "-W", "-f", "-p"])
            .arg(&pubkey)
            .arg("-s")
            .arg(&seckey)
            .stdin(Stdio::null()),
    )?;
    must(
        Command::new(sysup)
            .arg("publish")
            .arg(&docroot)
            .arg("--sign")
            .arg(&seckey),
    )?;
    let docroot = fs::canonicalize(&docroot).map_err(|e| e.to_string())?;
    let (child, port) = nginx::start(
        &dir,
        "access_log off;",
        &format!("root {};\n        location / {{ }}", docroot.display()),
    )?;
    Ok(Mirror {
        child,
        url: format!("http://127.0.0.1:{port}/"),
        pubkey,
    })
}
