//! Threat: a mirror that never quite stops. Per-read timeouts alone let a
//! server that sends a byte now and then hold a download — and the host
//! lock — for as long as it likes. A download is cut off when fewer than
//! `speed-limit` bytes per second arrived over the last `speed-time`
//! seconds, and when its `deadline` (all attempts of one file together)
//! passes; the error names the URL and the cause, sysup exits 1, the lock
//! goes with the process, and nothing is applied.
//!
//! The slow server is a thread of this test on 127.0.0.1 that serves INDEX
//! and its signature at once and every other file at the pace it is given.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::mirror_support;
use mirror_support::*;

/// Serve `dir` on 127.0.0.1: INDEX* whole, other files `chunk` bytes every
/// `every`. Returns the mirror URL. The threads end when sysup hangs up.
fn drip_server(dir: PathBuf, chunk: usize, every: Duration) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let dir = dir.clone();
            std::thread::spawn(move || serve(s, &dir, chunk, every));
        }
    });
    url
}

fn serve(mut s: TcpStream, dir: &Path, chunk: usize, every: Duration) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut first = String::new();
    if r.read_line(&mut first).is_err() {
        return;
    }
    loop {
        let mut l = String::new();
        match r.read_line(&mut l) {
            Ok(0) | Err(_) => return,
            Ok(_) if l == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let path = first
        .split(' ')
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/');
    let Ok(body) = fs::read(dir.join(path)) else {
        let _ = s
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if s.write_all(head.as_bytes()).is_err() {
        return;
    }
    if path.starts_with("INDEX") {
        let _ = s.write_all(&body);
        return;
    }
    for c in body.chunks(chunk) {
        std::thread::sleep(every);
        if s.write_all(c).and_then(|()| s.flush()).is_err() {
            return; // sysup hung up
        }
    }
}

fn conf(root: &Path, mirror: &str) {
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/sysup.conf"), format!("[mirror]\n{mirror}")).unwrap();
}

/// Run `sysup update`, killing it (and failing) after `limit`.
fn run_within(root: &Path, url: &str, pubkey: &Path, limit: Duration) -> (Output, Duration) {
    let t0 = Instant::now();
    let mut child = update_command(root, url)
        .arg("--pubkey")
        .arg(pubkey)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "sysup update still running after {limit:?}; stderr:\n{}",
                stderr(&o)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child.wait_with_output().unwrap(), t0.elapsed())
}

/// Nothing applied; what arrived is kept as a partial file, for a later
/// run to resume (as after any cut transfer).
fn nothing_applied(host: &Host) {
    let diffs = common::diff_snapshots(&host.before, &snapshot(&host.root));
    assert!(diffs.is_empty(), "the root changed:\n{}", diffs.join("\n"));
    assert_eq!(installed(&host.root).as_deref(), Some(id(1).as_str()));
    let left = downloads(&host.root);
    assert!(left.iter().all(|f| f.ends_with(".partial")), "{left:?}");
}

/// The host's lock is free again (the refused run let go of it).
fn lock_is_free(root: &Path) {
    let state = sysup::host::state::State::open(root).unwrap();
    state.lock().expect("the lock was released");
}

#[test]
fn a_trickling_mirror_is_cut_off_by_the_speed_limit() {
    let w = World::new(&[1, 2], &[1]);
    let url = drip_server(w.pub_dir.clone(), 1, Duration::from_secs(1));
    let mut host = Host::at(&w, "host", 1);
    conf(
        &host.root,
        "retries = 1\nspeed-limit = 100\nspeed-time = 2\ndeadline = 600\n",
    );
    host.before = snapshot(&host.root);
    let (o, took) = run_within(&host.root, &url, &w.keys.public, Duration::from_secs(30));
    let file = patch_name(1, 2);
    let e = refused(
        &o,
        &[&format!("{url}{file}"), "slower than 100 bytes/s", "2 s"],
    );
    eprintln!("{e}");
    // two attempts of about 2 s each, and a back-off
    assert!(took < Duration::from_secs(15), "took {took:?}");
    nothing_applied(&host);
    lock_is_free(&host.root);
}

#[test]
fn a_download_past_its_deadline_is_cut_off() {
    // Fast enough for the speed limit (about 1000 bytes/s), never done in time.
    let w = World::new(&[1, 2], &[]);
    let size = fs::metadata(w.file(&dist_name(2))).unwrap().len();
    assert!(
        size > 10_000,
        "the dist must outlast the deadline: {size} bytes"
    );
    let url = drip_server(w.pub_dir.clone(), 100, Duration::from_millis(100));
    let mut host = Host::at(&w, "host", 1);
    conf(
        &host.root,
        "retries = 5\nspeed-limit = 100\nspeed-time = 2\ndeadline = 3\n",
    );
    host.before = snapshot(&host.root);
    let (o, took) = run_within(&host.root, &url, &w.keys.public, Duration::from_secs(30));
    let file = dist_name(2);
    let e = refused(&o, &[&format!("{url}{file}"), "deadline", "3 s"]);
    eprintln!("{e}");
    // The deadline holds across retries: one file, 3 s, whatever the retries.
    assert!(took < Duration::from_secs(8), "took {took:?}");
    nothing_applied(&host);
    lock_is_free(&host.root);
}

#[test]
fn bad_pacing_settings_are_refused() {
    let w = World::new(&[1, 2], &[1]);
    let host = Host::at(&w, "host", 1);
    for bad in ["deadline = 0\n", "speed-time = 0\n"] {
        conf(&host.root, bad);
        let o = update(&host.root, "http://127.0.0.1:9/", &w.keys.public, &[]);
        refused(&o, &["sysup.conf", bad.split(' ').next().unwrap()]);
    }
}
