//! `sysup status` lists the keys a host accepted through a mirror's signed
//! KEYS file (key rotation, made with the real `minisign` tool, over a
//! `file://` mirror): each key's id, file, end of validity, whether the next
//! update trusts it, and the last INDEX serial accepted signed by it — in
//! the human output and in `--json` alike. A key past its `until` shows as
//! expired, and a kept file the next update would refuse shows the reason
//! (and the update does refuse it), without failing `status`.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::mirror_support;
use mirror_support::*;

/// The base64 line of a minisign public key file.
fn b64(k: &Keys) -> String {
    let t = fs::read_to_string(&k.public).unwrap();
    t.lines().nth(1).unwrap().to_string()
}

fn status(root: &Path, json: bool) -> String {
    let mut c = common::sysup();
    c.arg("status").arg("--root").arg(root);
    if json {
        c.arg("--json");
    }
    common::ok(&mut c)
}

fn status_json(root: &Path) -> serde_json::Value {
    serde_json::from_str(&status(root, true)).unwrap()
}

#[test]
fn status_lists_the_keys_accepted_through_keys_rotation() {
    let w = World::new(&[1, 2], &[1]);
    let host = Host::at(&w, "host", 1);
    assert_eq!(status_json(&host.root)["keys"], serde_json::json!([]));
    assert!(!status(&host.root, false).contains("\nkey "));

    // The publisher announces key b (valid until 2100), signed by the
    // trusted key, then signs the INDEX with b.
    let b = keys(w.tmp.path(), "b");
    let until = 4_102_444_800u64;
    fs::write(
        w.file("KEYS"),
        format!("sysup-keys 1\nkey {} until={until}\n", b64(&b)),
    )
    .unwrap();
    common::ok(
        Command::new("minisign")
            .args(["-S", "-s"])
            .arg(&w.keys.secret)
            .arg("-m")
            .arg(w.file("KEYS"))
            .stdin(Stdio::null()),
    );
    common::ok(
        common::sysup()
            .arg("publish")
            .arg(&w.pub_dir)
            .arg("--sign")
            .arg(&b.secret),
    );
    let url = format!("file://{}", w.pub_dir.display());
    json_ok(&update(&host.root, &url, &w.keys.public, &["--json"]));

    let id_b = key_id(&b.public);
    let file = host.root.join("var/db/sysup/keys").join(&id_b);
    let serial = index_serial(&w.file("INDEX"));
    let j = status_json(&host.root);
    assert_eq!(
        j["keys"],
        serde_json::json!([{
            "key_id": id_b,
            "path": file.display().to_string(),
            "until": until,
            "trusted": true,
            "serial": serial,
            "error": null,
        }])
    );
    let human = status(&host.root, false);
    let line = format!(
        "key          {id_b} from the mirror's KEYS, kept in {}: trusted until \
         2100-01-01 00:00:00 UTC; last INDEX serial {serial}\n",
        file.display()
    );
    assert!(human.contains(&line), "{line:?} not in:\n{human}");

    // Past its `until`: kept, shown, no longer trusted.
    let sound = fs::read_to_string(&file).unwrap();
    fs::write(&file, format!("sysup-keys 1\nkey {} until=100\n", b64(&b))).unwrap();
    let j = status_json(&host.root);
    assert_eq!(j["keys"][0]["trusted"], false);
    assert_eq!(j["keys"][0]["until"], 100);
    assert!(j["keys"][0]["error"].is_null());
    assert!(
        status(&host.root, false).contains(&format!(
            "key          {id_b} from the mirror's KEYS, kept in {}: expired \
             1970-01-01 00:01:40 UTC, no longer trusted; last INDEX serial {serial}\n",
            file.display()
        )),
        "{}",
        status(&host.root, false)
    );

    // A file holding another key than its name says: status names the
    // cause, and the next update does refuse it.
    fs::write(&file, format!("sysup-keys 1\nkey {}\n", b64(&w.keys))).unwrap();
    let j = status_json(&host.root);
    let k = &j["keys"][0];
    assert_eq!(k["trusted"], false);
    assert!(k["until"].is_null());
    let why = k["error"].as_str().unwrap();
    assert!(why.contains("not the key its name says"), "{why}");
    assert!(why.contains(&key_id(&w.keys.public)), "{why}");
    let human = status(&host.root, false);
    assert!(
        human.contains("unusable, the next update refuses until it is removed: ")
            && human.contains("not the key its name says; remove the file"),
        "{human}"
    );
    let o = update(&host.root, &url, &w.keys.public, &[]);
    refused(&o, &[&id_b, "not the key its name says"]);

    // Sound again: trusted again.
    fs::write(&file, sound).unwrap();
    assert_eq!(status_json(&host.root)["keys"][0]["trusted"], true);
}
