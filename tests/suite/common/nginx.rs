//! A private nginx on a free port of 127.0.0.1, for the mirror tests and
//! the crash soak (which includes this file by path): its prefix,
//! configuration, pid file, logs and temporary directories all in one
//! directory the caller owns.
//!
//! Invariant: [`start`] returns only an nginx that is this call's own — it
//! has written its pid file, which nginx does after binding, and accepts
//! connections. A free port can be taken by another process between the
//! probe and nginx's bind, and a connect alone could then reach that
//! process; nginx exits with "Address already in use" and another port is
//! tried.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Start nginx in `dir` (an absolute path; made if missing), serving one
/// server on 127.0.0.1 whose body is `server_body`; `http_extra` goes in
/// the http block and must say where the access log goes (`access_log
/// off;` or a path: nginx's default is under `dir/logs`, which is not
/// made). Returns the running nginx and its port; the caller kills it.
pub fn start(dir: &Path, http_extra: &str, server_body: &str) -> Result<(Child, u16), String> {
    let d = dir.display();
    fs::create_dir_all(dir.join("tmp")).map_err(|e| format!("{d}/tmp: {e}"))?;
    for _ in 0..10 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("find a free port: {e}"))?
            .port();
        let conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nevents {{ worker_connections 64; }}\n\
             http {{\n    default_type application/octet-stream;\n    \
             client_body_temp_path {d}/tmp/body;\n    proxy_temp_path {d}/tmp/proxy;\n    \
             fastcgi_temp_path {d}/tmp/fastcgi;\n    uwsgi_temp_path {d}/tmp/uwsgi;\n    \
             scgi_temp_path {d}/tmp/scgi;\n    {http_extra}\n    \
             server {{\n        listen 127.0.0.1:{port};\n        {server_body}\n    }}\n}}\n"
        );
        fs::write(dir.join("nginx.conf"), conf).map_err(|e| format!("{d}/nginx.conf: {e}"))?;
        // a failed try's leftovers would be read as this one's
        let _ = fs::remove_file(dir.join("error.log"));
        let _ = fs::remove_file(dir.join("nginx.pid"));
        let mut child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .args(["-g", "daemon off; master_process off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start nginx (.ci/install-deps installs it): {e}"))?;
        let t0 = Instant::now();
        loop {
            if let Some(status) = child.try_wait().map_err(|e| format!("nginx: {e}"))? {
                let log = fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                if log.contains("Address already in use") {
                    break;
                }
                return Err(format!("nginx exited ({status}):\n{log}"));
            }
            let pid = fs::read_to_string(dir.join("nginx.pid")).unwrap_or_default();
            if pid.trim() == child.id().to_string()
                && TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                return Ok((child, port));
            }
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                return Err("nginx did not start within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Err("no free port for nginx in 10 tries".into())
}
