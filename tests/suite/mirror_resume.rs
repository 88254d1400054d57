//! Resuming a download cut off mid-file: the re-run asks for the rest with a
//! Range request and the mirror sends only the missing bytes (the nginx
//! access log shows `Range: bytes=N-`, status 206 and size − N bytes).
//! Two ways to be cut: a partial file a previous run left behind, and a run
//! killed (SIGKILL) while a rate-limited mirror was sending.

use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::mirror_support;
use mirror_support::*;

/// The partial download of `file` in `root` (named by its SHA-256).
fn partial_path(root: &std::path::Path, file: &std::path::Path) -> std::path::PathBuf {
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(fs::read(file).unwrap()));
    root.join("var/db/sysup/download")
        .join(format!("{sha}.partial"))
}

#[test]
fn a_partial_file_left_behind_is_resumed_with_a_range_request() {
    let w = World::new(&[4], &[]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let root = w.root("host");
    let dist = w.file(&dist_name(4));
    let bytes = fs::read(&dist).unwrap();
    let cut = bytes.len() as u64 / 2 + 1234;
    // What an interrupted run leaves: the first `cut` bytes under the partial name.
    sysup::host::state::State::open(&root).unwrap();
    fs::write(partial_path(&root, &dist), &bytes[..cut as usize]).unwrap();

    let to = id(4);
    let j = json_ok(&update(
        &root,
        &nginx.url(),
        &w.keys.public,
        &["--json", "--to", &to],
    ));
    let hits = nginx.hits_of(&dist_name(4));
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(
        hits[0].range.as_deref(),
        Some(format!("bytes={cut}-").as_str())
    );
    assert_eq!(hits[0].status, 206);
    assert_eq!(hits[0].bytes, bytes.len() as u64 - cut);
    assert_eq!(hits[0].accept_encoding, "identity");
    let d = &j["downloads"][0];
    assert_eq!(d["resumed_from"], cut);
    assert_eq!(d["fetched"], bytes.len() as u64 - cut);
    assert_eq!(j["result"], "applied");
    assert_eq!(installed(&root).as_deref(), Some(to.as_str()));
    let diffs = tree_diff(&root, 4);
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    assert!(downloads(&root).is_empty(), "{:?}", downloads(&root));
}

#[test]
fn a_run_killed_mid_transfer_is_resumed_where_it_stopped() {
    let w = World::new(&[4], &[]);
    let slow = Nginx::serve(&w.pub_dir, "limit_rate 48k;");
    let fast = Nginx::serve(&w.pub_dir, "");
    let root = w.root("host");
    let dist = w.file(&dist_name(4));
    let size = fs::metadata(&dist).unwrap().len();
    let partial = partial_path(&root, &dist);
    let to = id(4);

    let mut child = common::sysup()
        .arg("update")
        .arg("--root")
        .arg(&root)
        .args(["--mirror", &slow.url(), "--to", &to, "--download-only"])
        .arg("--pubkey")
        .arg(&w.keys.public)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while fs::metadata(&partial).map_or(0, |m| m.len()) < 64 * 1024 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the download never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "sysup ended before it was cut"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let kept = fs::metadata(&partial).unwrap().len();
    assert!(kept > 0 && kept < size, "kept {kept} of {size}");

    let j = json_ok(&update(
        &root,
        &fast.url(),
        &w.keys.public,
        &["--json", "--to", &to],
    ));
    let hits = fast.hits_of(&dist_name(4));
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(
        hits[0].range.as_deref(),
        Some(format!("bytes={kept}-").as_str())
    );
    assert_eq!((hits[0].status, hits[0].bytes), (206, size - kept));
    assert_eq!(j["fetched_bytes"], size - kept);
    assert_eq!(installed(&root).as_deref(), Some(to.as_str()));
    let diffs = tree_diff(&root, 4);
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
fn a_stale_partial_that_fails_its_check_is_fetched_again_from_the_start() {
    let w = World::new(&[4], &[]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let root = w.root("host");
    let dist = w.file(&dist_name(4));
    let size = fs::metadata(&dist).unwrap().len();
    sysup::host::state::State::open(&root).unwrap();
    // A partial whose bytes are not the file's (a crash left garbage).
    fs::write(partial_path(&root, &dist), vec![0xa5u8; 1000]).unwrap();
    let to = id(4);
    let j = json_ok(&update(
        &root,
        &nginx.url(),
        &w.keys.public,
        &["--json", "--to", &to],
    ));
    let hits = nginx.hits_of(&dist_name(4));
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert_eq!(hits[0].range.as_deref(), Some("bytes=1000-"));
    assert_eq!((hits[1].range.as_deref(), hits[1].bytes), (None, size));
    assert_eq!(j["result"], "applied");
}
