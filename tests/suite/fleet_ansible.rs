//! The Ansible collection (`ansible/`) against real ansible-core, a real
//! nginx mirror signed by the real minisign, and five local "hosts" (roots
//! in temporary directories): `ansible-galaxy collection build` and
//! `install` as an admin does, then the repository's own rolling-update
//! playbook and example inventory — not copies — as docs/fleet.md runs them.
//! Check mode changes nothing and reports the change; a run converges every
//! host, canary first, in batches; a second run changes nothing; a host whose
//! health check fails stops the rollout before the next batch. The modules
//! alone: facts, `to`, a locally edited config file reported, a broken host
//! failing with sysup's own message, and the merge of newer report fields
//! (`config_merged`, `restart`) over several names.
//!
//! ansible-core comes from `.ci/install-deps` (a venv in /opt/sysup-ansible),
//! or `SYSUP_ANSIBLE_BIN` (a directory holding `ansible-playbook`), or PATH.
//! Without it the tests say SKIPPED; under CI (`CI` set) that is a failure.
//! Results are read from what each task returned, recorded as JSON lines by
//! the test's callback plugin `ansible/tests/callback/record.py`, never
//! from text.

use crate::mirror_support;
use mirror_support::*;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

const HOSTS: [&str; 5] = ["host1", "host2", "host3", "host4", "host5"];
const PLAYBOOK: &str = "ansible/playbooks/rolling_update.yml";
const INVENTORY: &str = "ansible/examples/local-fleet.yml";

/// ansible-core's programs and the collection built and installed from `ansible/`.
struct Ansible {
    bin: PathBuf,
    /// Holds `coll/ansible_collections/sysup/sysup` and an empty ansible.cfg.
    dir: tempfile::TempDir,
}

fn find_ansible() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("SYSUP_ANSIBLE_BIN")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    dirs.push("/opt/sysup-ansible/bin".into());
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    dirs.into_iter()
        .find(|d| d.join("ansible-playbook").is_file() && d.join("ansible-galaxy").is_file())
}

/// The collection, built and installed once per test binary; `None` (after
/// saying SKIPPED) without ansible-core outside CI.
fn ansible() -> Option<&'static Ansible> {
    static A: OnceLock<Option<Ansible>> = OnceLock::new();
    A.get_or_init(|| {
        let Some(bin) = find_ansible() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI installs ansible-core (.ci/install-deps)"
            );
            eprintln!("SKIPPED: ansible-core is not installed (bash .ci/install-deps)");
            return None;
        };
        let a = Ansible {
            bin,
            dir: tempfile::tempdir().unwrap(),
        };
        fs::write(a.dir.path().join("ansible.cfg"), "").unwrap();
        let dist = a.dir.path().join("dist");
        common::ok(
            a.cmd("ansible-galaxy")
                .args(["collection", "build", "ansible/", "--output-path"])
                .arg(&dist),
        );
        let tarball = fs::read_dir(&dist).unwrap().next().unwrap().unwrap().path();
        assert!(
            tarball.to_string_lossy().ends_with(".tar.gz"),
            "{tarball:?}"
        );
        let name = tarball.file_name().unwrap().to_string_lossy().into_owned();
        let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/fleet.md"))
            .unwrap();
        assert!(
            doc.contains(&format!("install dist/{name}")),
            "docs/fleet.md installs another {name}"
        );
        common::ok(
            a.cmd("ansible-galaxy")
                .args(["collection", "install"])
                .arg(&tarball)
                .arg("-p")
                .arg(a.dir.path().join("coll")),
        );
        // The test harness (`build_ignore`) is not shipped.
        assert!(!a
            .dir
            .path()
            .join("coll/ansible_collections/sysup/sysup/tests")
            .exists());
        Some(a)
    })
    .as_ref()
}

impl Ansible {
    /// One of ansible-core's programs, run from the repository (so the
    /// playbook and inventory paths are the repository's own), isolated from
    /// this machine's Ansible configuration, results recorded.
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        c.current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("ANSIBLE_CONFIG", self.dir.path().join("ansible.cfg"))
            .env("ANSIBLE_COLLECTIONS_PATH", self.dir.path().join("coll"))
            .env("ANSIBLE_LOCAL_TEMP", self.dir.path().join("tmp"))
            .env("ANSIBLE_REMOTE_TEMP", self.dir.path().join("tmp"))
            .env(
                "ANSIBLE_CALLBACK_PLUGINS",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("ansible/tests/callback"),
            )
            .env("ANSIBLE_CALLBACKS_ENABLED", "record")
            .env("ANSIBLE_LOAD_CALLBACK_PLUGINS", "1")
            .env("ANSIBLE_NOCOLOR", "1")
            // no __pycache__ beside the repository's callback plugin
            .env("PYTHONDONTWRITEBYTECODE", "1");
        without_proxies(&mut c);
        c
    }
}

/// A mirror of fixture revisions 1 and 2 (and the patch 1→2) served by nginx,
/// and the five hosts of the example inventory at revision 1.
struct Fleet {
    w: World,
    nginx: Nginx,
    dir: PathBuf,
}

impl Fleet {
    fn new() -> Fleet {
        let w = World::new(&[1, 2], &[1]);
        let nginx = Nginx::serve(&w.pub_dir, "");
        let dir = w.root("fleet");
        for h in HOSTS {
            install(&w.root(&format!("fleet/{h}")), 1);
        }
        Fleet { w, nginx, dir }
    }

    fn root(&self, host: &str) -> PathBuf {
        self.dir.join(host)
    }

    /// The extra vars every run passes, as docs/fleet.md shows them.
    fn vars(&self, c: &mut Command) {
        c.arg("-e")
            .arg(format!("sysup_fleet_dir={}", self.dir.display()))
            .arg("-e")
            .arg(format!("sysup_mirror={}", self.nginx.url()))
            .arg("-e")
            .arg(format!("sysup_pubkey={}", self.w.keys.public.display()))
            .arg("-e")
            .arg(format!("sysup_binary={}", env!("CARGO_BIN_EXE_sysup")));
    }

    /// `ansible-playbook -i INVENTORY [more -i] PLAYBOOK -e … ARGS`: its
    /// output and what its tasks returned.
    fn playbook(&self, a: &Ansible, inventories: &[&Path], args: &[&str]) -> (Output, Run) {
        let mut c = a.cmd("ansible-playbook");
        c.args(["-i", INVENTORY]);
        for i in inventories {
            c.arg("-i").arg(i);
        }
        c.arg(PLAYBOOK);
        self.vars(&mut c);
        c.args(["-e", r#"{"sysup_serial": [1, 2]}"#]).args(args);
        Run::of(&mut c, &self.dir)
    }
}

/// One task's result on one host, as the recording callback wrote it.
struct Rec {
    play: u64,
    task: String,
    host: String,
    status: String,
    result: Value,
}

/// What the tasks of one ansible run returned, in order.
struct Run(Vec<Rec>);

impl Run {
    /// Run `c` (an ansible program) with results recorded in a file in `dir`.
    fn of(c: &mut Command, dir: &Path) -> (Output, Run) {
        let file = dir.join("record.jsonl");
        let _ = fs::remove_file(&file);
        let o = common::run(c.env("SYSUP_TEST_RECORD", &file));
        let text = fs::read_to_string(&file).unwrap_or_default();
        let recs = text
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                Rec {
                    play: v["play"].as_u64().unwrap(),
                    task: v["task"].as_str().unwrap().into(),
                    host: v["host"].as_str().unwrap().into(),
                    status: v["status"].as_str().unwrap().into(),
                    result: v["result"].clone(),
                }
            })
            .collect::<Vec<_>>();
        assert!(
            !recs.is_empty(),
            "ansible recorded no result:\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            stderr(&o)
        );
        (o, Run(recs))
    }

    /// The hosts of each batch, in order (each batch of a `serial` play
    /// starts as a play of its own).
    fn batches(&self) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = Vec::new();
        for r in &self.0 {
            let i = r.play as usize;
            out.resize(out.len().max(i + 1), Vec::new());
            if !out[i].contains(&r.host) {
                out[i].push(r.host.clone());
            }
        }
        out.iter_mut().for_each(|b| b.sort());
        out
    }

    /// Every host's result of the task named `task` (that ran: not skipped).
    fn results(&self, task: &str) -> BTreeMap<String, Value> {
        self.0
            .iter()
            .filter(|r| r.task == task && r.status != "skipped")
            .map(|r| (r.host.clone(), r.result.clone()))
            .collect()
    }

    /// Hosts with a failed task.
    fn failed(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .0
            .iter()
            .filter(|r| r.status == "failed" || r.status == "unreachable")
            .map(|r| r.host.clone())
            .collect();
        v.dedup();
        v
    }
}

fn all_hosts() -> Vec<String> {
    HOSTS.iter().map(|h| h.to_string()).collect()
}

/// Assert a host's update result: changed or not, its world ids, and the
/// facts taken from sysup's report (`report`) as they are there.
fn assert_update(r: &Value, changed: bool, from: u32, to: u32, result: &str) {
    assert_eq!(r["changed"], changed, "{r:#}");
    assert_eq!(r["ids"]["world"]["from"], id(from), "{r:#}");
    assert_eq!(r["ids"]["world"]["to"], id(to), "{r:#}");
    assert_eq!(r["result"], result, "{r:#}");
    let report = &r["report"];
    assert_eq!(r["result"], report["result"]);
    assert_eq!(r["fetched_bytes"], report["fetched_bytes"]);
    assert_eq!(r["serial"], report["serial"]);
    let applied = report["applied"].as_array().unwrap();
    assert_eq!(applied.len(), usize::from(result == "applied"), "{r:#}");
    // Config files and the restart report: passed through when sysup
    // reports them (`config_merged` and `restart` are newer fields).
    let all = |field: &str| -> Vec<Value> {
        applied
            .iter()
            .flat_map(|a| a[field].as_array().cloned().unwrap_or_default())
            .collect()
    };
    assert_eq!(r["config_kept"], Value::Array(all("config_kept")), "{r:#}");
    assert_eq!(
        r["config_merged"],
        Value::Array(all("config_merged")),
        "{r:#}"
    );
    if applied.iter().any(|a| a["restart"].is_object()) {
        assert!(r["restart"]["reboot_needed"].is_boolean(), "{r:#}");
        assert!(r["restart"]["processes"].is_array(), "{r:#}");
    } else {
        assert_eq!(r["restart"], Value::Null, "{r:#}");
    }
}

#[test]
fn rolling_update_canary_then_batches_stops_at_first_failure() {
    let Some(a) = ansible() else { return };
    let f = Fleet::new();
    let before: Vec<_> = HOSTS.iter().map(|h| snapshot(&f.root(h))).collect();
    let patch12 = fs::metadata(f.w.file(&patch_name(1, 2))).unwrap().len();

    // Check mode: sysup's dry run on every host; each reports the change,
    // nothing is fetched or applied.
    let (o, run) = f.playbook(a, &[], &["--check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let up = run.results("Update with sysup");
    assert_eq!(up.keys().cloned().collect::<Vec<_>>(), all_hosts());
    for (i, h) in HOSTS.iter().enumerate() {
        assert_update(&up[*h], true, 1, 2, "would-apply");
        assert_eq!(up[*h]["fetched_bytes"], patch12);
        let d = common::diff_snapshots(&before[i], &snapshot(&f.root(h)));
        assert!(d.is_empty(), "check mode changed {h}:\n{}", d.join("\n"));
        assert_eq!(installed(&f.root(h)), Some(id(1)));
        assert!(downloads(&f.root(h)).is_empty());
    }
    assert!(
        !f.nginx.hits().iter().any(|h| h.uri.ends_with(".patch")),
        "check mode fetched a patch"
    );

    // The real run: the canary alone, then batches of two; every host ends
    // at revision 2, byte for byte, and its health check (sysup verify) passes.
    let (o, run) = f.playbook(a, &[], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        run.batches(),
        [
            vec!["host1"],
            vec!["host2", "host3"],
            vec!["host4", "host5"]
        ]
    );
    let up = run.results("Update with sysup");
    let health = run.results("Health check");
    for h in HOSTS {
        assert_update(&up[h], true, 1, 2, "applied");
        assert_eq!(up[h]["fetched_bytes"], patch12);
        assert_eq!(up[h]["config_kept"], serde_json::json!([]));
        assert_eq!(up[h]["report"]["applied"][0]["to"], id(2));
        assert_eq!(health[h]["rc"], 0, "{:#}", health[h]);
        assert_eq!(tree_diff(&f.root(h), 2), Vec::<String>::new(), "{h}");
    }

    // Again: nothing to do, nothing changed.
    let (o, run) = f.playbook(a, &[], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let up = run.results("Update with sysup");
    for h in HOSTS {
        assert_update(&up[h], false, 2, 2, "up-to-date");
    }
    assert!(run.0.iter().all(|r| r.result["changed"] != true));

    // Revision 3 is published; host2's health check fails (its service did
    // not come back): its batch finishes, the next batch never starts.
    fs::copy(&built().dists[2], f.w.file(&dist_name(3))).unwrap();
    fs::copy(&built().patches[1], f.w.file(&patch_name(2, 3))).unwrap();
    f.w.publish();
    // host3 also has a health-check tasks file (run before the command), which
    // sees the update's result.
    let rig = f.dir.join("rig.yml");
    let tasks = f.dir.join("health.yml");
    fs::write(
        &rig,
        format!(
            "all:\n  hosts:\n    host2:\n      sysup_health_check: \
             \"echo 'nginx did not come back' >&2; exit 1\"\n    host3:\n      \
             sysup_health_check_tasks: {}\n",
            tasks.display()
        ),
    )
    .unwrap();
    fs::write(
        &tasks,
        format!(
            "- ansible.builtin.copy:\n    dest: {}/checked-{{{{ inventory_hostname }}}}\n    \
             content: \"{{{{ sysup_update.ids.world.to }}}}\"\n",
            f.dir.display()
        ),
    )
    .unwrap();
    let untouched: Vec<_> = ["host4", "host5"]
        .iter()
        .map(|h| snapshot(&f.root(h)))
        .collect();
    let (o, run) = f.playbook(a, &[&rig], &[]);
    assert!(!o.status.success(), "the rollout did not fail");
    assert_eq!(run.batches(), [vec!["host1"], vec!["host2", "host3"]]);
    let up = run.results("Update with sysup");
    for h in ["host1", "host2", "host3"] {
        assert_update(&up[h], true, 2, 3, "applied");
        assert_eq!(installed(&f.root(h)), Some(id(3)));
    }
    let health = run.results("Health check");
    assert!(health["host2"]["stderr"]
        .as_str()
        .unwrap()
        .contains("did not come back"));
    assert_eq!(run.failed(), ["host2"]);
    assert_eq!(
        fs::read_to_string(f.dir.join("checked-host3")).unwrap(),
        id(3)
    );
    assert!(!f.dir.join("checked-host1").exists());
    for (h, snap) in ["host4", "host5"].iter().zip(&untouched) {
        assert!(!up.contains_key(*h), "{h} was updated after a failure");
        assert_eq!(installed(&f.root(h)), Some(id(2)));
        assert!(common::diff_snapshots(snap, &snapshot(&f.root(h))).is_empty());
    }
}

/// `ansible HOST -m MODULE -a ARGS` with the example inventory; the host's
/// result, with `failed` set from how the task ended.
fn adhoc(a: &Ansible, f: &Fleet, host: &str, module: &str, args: &str) -> Value {
    let mut c = a.cmd("ansible");
    c.args([host, "-i", INVENTORY, "-m", module, "-a", args]);
    f.vars(&mut c);
    let (_, run) = Run::of(&mut c, &f.dir);
    assert_eq!(run.0.len(), 1, "one result");
    let rec = &run.0[0];
    let mut r = rec.result.clone();
    r["failed"] = Value::Bool(rec.status == "failed");
    r
}

#[test]
fn modules_report_facts_go_to_an_id_and_fail_with_sysups_message() {
    let Some(a) = ansible() else { return };
    let f = Fleet::new();
    fs::copy(&built().dists[2], f.w.file(&dist_name(3))).unwrap();
    fs::copy(&built().patches[1], f.w.file(&patch_name(2, 3))).unwrap();
    f.w.publish();

    let r = adhoc(
        a,
        &f,
        "host1",
        "sysup.sysup.facts",
        "root={{ sysup_root }} binary={{ sysup_binary }}",
    );
    assert_eq!(r["changed"], false, "{r:#}");
    let facts = &r["ansible_facts"]["sysup"];
    assert_eq!(facts["installed"]["world"], id(1), "{r:#}");
    assert_eq!(facts["pending"], Value::Null);
    assert_eq!(facts["names"][0]["installed"]["id"], id(1));

    // `to`: revision 2 although the mirror's newest is 3.
    let args = format!(
        "root={{{{ sysup_root }}}} binary={{{{ sysup_binary }}}} mirror={{{{ sysup_mirror }}}} \
         pubkey={{{{ sysup_pubkey }}}} to={}",
        id(2)
    );
    // The admin edited etc/motd, which the update changes too: it is kept
    // (or, where sysup merges config files, merged) and reported.
    let motd = f.root("host1").join("etc/motd");
    let mut text = fs::read_to_string(&motd).unwrap();
    text.push_str("local note\n");
    fs::write(&motd, text).unwrap();
    let r = adhoc(a, &f, "host1", "sysup.sysup.update", &args);
    assert_update(&r, true, 1, 2, "applied");
    assert_eq!(installed(&f.root("host1")), Some(id(2)));
    let config: Vec<&Value> = r["config_kept"]
        .as_array()
        .unwrap()
        .iter()
        .chain(r["config_merged"].as_array().unwrap())
        .collect();
    assert_eq!(config, [&Value::from("etc/motd")], "{r:#}");
    let diff: Vec<String> = tree_diff(&f.root("host1"), 2)
        .into_iter()
        .filter(|d| !d.contains("etc/motd"))
        .collect();
    assert_eq!(diff, Vec::<String>::new());

    // A host whose configuration is broken: the module fails with sysup's
    // message, which names the file and the key; the root is untouched.
    let root = f.root("host2");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/sysup.conf"), "[mirror]\nmirorr = \"x\"\n").unwrap();
    let snap = snapshot(&root);
    let r = adhoc(a, &f, "host2", "sysup.sysup.update", &args);
    assert_eq!(r["failed"], true, "{r:#}");
    let msg = r["msg"].as_str().unwrap();
    assert!(
        msg.contains("sysup.conf") && msg.contains("mirorr"),
        "{msg}"
    );
    assert_eq!(r["rc"], 1, "{r:#}");
    assert!(common::diff_snapshots(&snap, &snapshot(&root)).is_empty());
    assert_eq!(installed(&root), Some(id(1)));
}

/// docs/fleet.md shows the commands these tests run, as they run them.
#[test]
fn fleet_md_shows_the_commands_these_tests_run() {
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/fleet.md"))
        .unwrap()
        .replace("\\\n      ", "");
    let galaxy =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ansible/galaxy.yml"))
            .unwrap();
    let version = galaxy
        .lines()
        .find_map(|l| l.strip_prefix("version: "))
        .unwrap();
    for cmd in [
        "ansible-galaxy collection build ansible/ --output-path dist/".to_string(),
        format!("ansible-galaxy collection install dist/sysup-sysup-{version}.tar.gz"),
        format!(
            "ansible-playbook -i {INVENTORY} {PLAYBOOK} -e sysup_fleet_dir=/tmp/fleet \
             -e sysup_mirror=http://127.0.0.1:8080/ -e sysup_pubkey=/tmp/fleet/sysup.pub \
             -e sysup_binary=$(command -v sysup) -e '{{\"sysup_serial\": [1, 2]}}'"
        ),
        format!("ansible-playbook -i inventory.yml {PLAYBOOK} --check"),
    ] {
        assert!(doc.contains(&cmd), "docs/fleet.md lacks {cmd:?}");
    }
}

/// The module's summary of an update report whose applies carry the newer
/// fields (`config_merged`, `restart`: two names, a process in both): run
/// by the venv's Python on the installed collection's own code.
#[test]
fn module_merges_config_files_and_restart_reports_of_every_name() {
    let Some(a) = ansible() else { return };
    let report = serde_json::json!({
        "result": "applied", "fetched_bytes": 10, "serial": 7,
        "applied": [
            {"to": "world-2-20260102", "config_kept": ["etc/motd"], "config_merged": ["etc/a.conf"],
             "restart": {"reboot_needed": false, "reboot_reasons": [],
                         "processes": [{"pid": 10, "comm": "sshd", "unit": "ssh.service", "files": ["usr/sbin/sshd"]}]}},
            {"to": "kernel-GENERIC-2-20260202", "config_kept": [],
             "restart": {"reboot_needed": true, "reboot_reasons": ["kernel-GENERIC changed"],
                         "processes": [{"pid": 10, "comm": "sshd", "unit": "ssh.service", "files": ["usr/lib/x.so"]}]}}
        ]
    });
    let script = "import json, sys\n\
        from ansible_collections.sysup.sysup.plugins.modules.update import summary\n\
        r = summary(json.load(sys.stdin), {})\n\
        del r['report']\n\
        print(json.dumps(r))\n";
    let mut child = Command::new(a.bin.join("python3"))
        .args(["-c", script])
        .env("PYTHONPATH", a.dir.path().join("coll"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &report).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["config_kept"], serde_json::json!(["etc/motd"]));
    assert_eq!(r["config_merged"], serde_json::json!(["etc/a.conf"]));
    assert_eq!(r["restart"]["reboot_needed"], true);
    assert_eq!(
        r["restart"]["reboot_reasons"],
        serde_json::json!(["kernel-GENERIC changed"])
    );
    // One process, listed once, with every replaced file it still uses.
    let procs = r["restart"]["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 1, "{r:#}");
    assert_eq!(
        procs[0]["files"],
        serde_json::json!(["usr/sbin/sshd", "usr/lib/x.so"])
    );
    assert_eq!(
        (r["fetched_bytes"].as_u64(), r["serial"].as_u64()),
        (Some(10), Some(7))
    );
}
