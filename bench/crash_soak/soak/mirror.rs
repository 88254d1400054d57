//! A local nginx serving a signed INDEX of the pair, for the `sysup update`
//! operations: bound to 127.0.0.1, killed on drop.

use super::*;

/// A local nginx serving a signed INDEX of the pair (as `tests/suite/mirror_support`
/// starts it: bound to 127.0.0.1, killed on drop).
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
    fs::create_dir_all(docroot.join("..").join("tmp")).map_err(|e| e.to_string())?;
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
    for _ in 0..10 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let d = dir.display();
        let conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nevents {{ worker_connections 64; }}\n\
             http {{\n  default_type application/octet-stream;\n  access_log off;\n  \
             client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n  \
             fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  \
             scgi_temp_path {d}/tmp/scgi;\n  server {{\n    listen 127.0.0.1:{port};\n    \
             root {};\n    location / {{ }}\n  }}\n}}\n",
            docroot.display()
        );
        fs::write(dir.join("nginx.conf"), conf).map_err(|e| e.to_string())?;
        let mut child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .args(["-g", "daemon off; master_process off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start nginx: {e}"))?;
        let t0 = Instant::now();
        loop {
            if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
                let log = fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                if log.contains("Address already in use") {
                    break;
                }
                return Err(format!("nginx exited ({st}):\n{log}"));
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Mirror {
                    child,
                    url: format!("http://127.0.0.1:{port}/"),
                    pubkey,
                });
            }
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                return Err("nginx did not start".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Err("no free port for nginx".into())
}
