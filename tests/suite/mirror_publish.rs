//! `sysup publish DIR`: the INDEX lists every dist and patch with the right
//! sizes and digests; `--make-patches K` makes the missing patches from the
//! K previous dists to the newest, which `sysup update` then uses; a
//! republish reuses unchanged dists' digests and raises the serial; no
//! temporary file is ever left; inconsistent input is refused.

use std::fs;
use std::path::Path;

use crate::mirror_support;
use mirror_support::*;

fn no_temp_files(dir: &Path) {
    let left: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn index_lists_every_file_with_its_digests() {
    let w = World::new(&[1, 2, 3], &[1, 2]);
    let idx =
        sysup::mirror::index::Index::parse(&fs::read(w.file("INDEX")).unwrap(), Path::new("INDEX"))
            .unwrap();
    assert_eq!(idx.dists.len(), 3);
    assert_eq!(idx.patches.len(), 2);
    for d in &idx.dists {
        let (size, sha) = sysup::util::digest::file_sha256(&w.file(&d.file())).unwrap();
        assert_eq!((d.size, d.sha256), (size, sha));
        assert_eq!(d.arch, "x86_64");
    }
    for p in &idx.patches {
        let h = sysup::format::patch::PatchHeader::read_file(&w.file(&p.file())).unwrap();
        assert_eq!((p.from, p.to), (h.from.tar, h.to.tar));
        // a patch's result is the next dist's tar
        assert_eq!(Some(p.to), idx.dist(&p.name.to).map(|d| d.tar));
    }
    no_temp_files(&w.pub_dir);
}

#[test]
fn make_patches_fills_in_and_update_uses_them() {
    let w = World::new(&[1, 2, 3, 4], &[]);
    let out = common::ok(
        common::sysup()
            .arg("publish")
            .arg(&w.pub_dir)
            .args(["--make-patches", "2", "--json", "--sign"])
            .arg(&w.keys.secret),
    );
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut made: Vec<String> = j["made"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            Path::new(p.as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    made.sort();
    let w24 = "world-2-20260102_4-20260104.patch".to_string();
    assert_eq!(made, [w24.clone(), patch_name(3, 4)]);
    assert_eq!(j["patches"], 2);
    assert_eq!(
        j["reused"], 4,
        "digests of unchanged dists come from the previous INDEX"
    );
    no_temp_files(&w.pub_dir);
    // again: nothing to make
    let out = common::ok(common::sysup().arg("publish").arg(&w.pub_dir).args([
        "--make-patches",
        "2",
        "--json",
    ]));
    let j2: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j2["made"].as_array().unwrap().len(), 0);
    assert!(j2["serial"].as_u64() > j["serial"].as_u64());
    common::ok(
        common::sysup()
            .arg("publish")
            .arg(&w.pub_dir)
            .arg("--sign")
            .arg(&w.keys.secret),
    );

    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 2);
    let j = json_ok(&update(
        &host.root,
        &nginx.url(),
        &w.keys.public,
        &["--json"],
    ));
    let steps = j["plans"][0]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["file"], w24);
    assert_eq!(installed(&host.root).as_deref(), Some(id(4).as_str()));
}

#[test]
fn a_misnamed_patch_is_refused_and_the_old_index_stays() {
    let w = World::new(&[1, 2, 3], &[1]);
    let before = fs::read(w.file("INDEX")).unwrap();
    fs::copy(w.file(&patch_name(1, 2)), w.file(&patch_name(2, 3))).unwrap();
    let o = common::run(
        common::sysup()
            .arg("publish")
            .arg(&w.pub_dir)
            .arg("--sign")
            .arg(&w.keys.secret),
    );
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&patch_name(2, 3)) && e.contains("header says"),
        "{e}"
    );
    assert_eq!(fs::read(w.file("INDEX")).unwrap(), before);
    no_temp_files(&w.pub_dir);
}

#[test]
fn a_misnamed_dist_is_refused() {
    let w = World::new(&[1], &[]);
    fs::copy(w.file(&dist_name(1)), w.file(&dist_name(2))).unwrap();
    let o = common::run(common::sysup().arg("publish").arg(&w.pub_dir));
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("named for world-2-20260102 but holds world-1-20260101"),
        "{e}"
    );
}
