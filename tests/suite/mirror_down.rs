//! A mirror that is down (nothing listening) or failing (HTTP 503): bounded
//! retries, then a clear error naming the URL; nothing applied, no serial
//! recorded, and quickly.

use std::time::{Duration, Instant};

use crate::mirror_support;
use mirror_support::*;

#[test]
fn nothing_listening_fails_fast_with_the_url() {
    let w = World::new(&[1, 2], &[1]);
    let host = Host::at(&w, "host", 1);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: nothing listens there
    let url = format!("http://127.0.0.1:{port}/sysup");
    let t0 = Instant::now();
    let o = update(&host.root, &url, &w.keys.public, &["--retries", "2"]);
    let e = refused(&o, &[&format!("{url}/INDEX"), "gave up after 3 attempts"]);
    assert!(
        e.to_lowercase().contains("connect") || e.contains("refused"),
        "{e}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    host.unchanged(1);
    assert_eq!(serial(&host.root), None);
}

#[test]
fn a_failing_mirror_is_retried_then_refused() {
    let w = World::new(&[1, 2], &[1]);
    let nginx = Nginx::serve(&w.pub_dir, "return 503;");
    let host = Host::at(&w, "host", 1);
    let o = update(
        &host.root,
        &nginx.url(),
        &w.keys.public,
        &["--retries", "1"],
    );
    refused(&o, &["INDEX", "HTTP 503", "gave up after 2 attempts"]);
    assert_eq!(nginx.hits_of("INDEX").len(), 2);
    host.unchanged(1);
}

#[test]
fn a_mirror_that_lost_a_file_is_refused_without_retrying() {
    let w = World::new(&[1, 2], &[1]);
    std::fs::remove_file(w.file(&patch_name(1, 2))).unwrap();
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    let o = update(&host.root, &nginx.url(), &w.keys.public, &[]);
    refused(&o, &[&patch_name(1, 2), "HTTP 404", "does not have it"]);
    assert_eq!(nginx.hits_of(&patch_name(1, 2)).len(), 1);
    host.unchanged(1);
}
