//! `sysup update` tells the admin everything `sysup apply` does: the result
//! line of each apply and, with or without `--quiet`, every config file
//! kept beside its `.sysupnew`; `--json` carries the same facts.

use crate::mirror_support;
use mirror_support::*;

#[test]
fn update_lists_kept_config_files_like_apply() {
    let w = World::new(&[1, 2], &[1]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    // the admin's line and the dist's change conflict (docs/config-merge.md)
    let kept = "config kept: etc/motd (modified locally; new version in etc/motd.sysupnew, merge with conflicts in etc/motd.sysupmerge)";
    for (host, args) in [("human", &[][..]), ("quiet", &["-q"][..])] {
        let root = w.root(host);
        install(&root, 1);
        // The admin's own motd; revision 2 changes the shipped one.
        std::fs::write(root.join("etc/motd"), "welcome to the lab\n").unwrap();
        let mut c = common::sysup();
        c.args(args)
            .arg("update")
            .arg("--root")
            .arg(&root)
            .args(["--mirror", &nginx.url()])
            .arg("--pubkey")
            .arg(&w.keys.public)
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY");
        let out = common::ok(&mut c);
        assert!(out.contains(kept), "{host}: {out}");
        assert!(
            out.contains(&format!("upgrade {} → {} in ", id(1), id(2))),
            "{host}: {out}"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("etc/motd")).unwrap(),
            "welcome to the lab\n"
        );
        assert!(root.join("etc/motd.sysupnew").exists());
    }
    // --json: the same list in the apply report.
    let root = w.root("json");
    install(&root, 1);
    std::fs::write(root.join("etc/motd"), "welcome to the lab\n").unwrap();
    let j = json_ok(&update(&root, &nginx.url(), &w.keys.public, &["--json"]));
    assert_eq!(j["applied"][0]["config_kept"][0], "etc/motd", "{j}");
    assert_eq!(j["applied"][0]["config_conflicted"][0], "etc/motd", "{j}");
}
