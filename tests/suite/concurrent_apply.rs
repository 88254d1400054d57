//! Threat: two sysups on one root at once. The second is refused while the
//! first holds the lock (naming its pid), never interleaved; when both race,
//! the root still ends on the target.

use crate::common;

use common::*;

#[test]
fn a_second_apply_is_refused_while_the_lock_is_held() {
    let c = chain();
    let (t, before) = installed_root(1);
    let state = sysup::host::state::State::open(t.path()).unwrap();
    let _held = state.lock().unwrap();
    let e = apply_fails(t.path(), &[&c.patches[0]]);
    assert!(
        e.contains("another sysup") && e.contains(&std::process::id().to_string()),
        "{e}"
    );
    assert_unchanged(t.path(), &before);
}

#[test]
fn racing_applies_never_interleave() {
    let c = chain();
    let (t, _) = installed_root(1);
    let spawn = || {
        sysup()
            .arg("apply")
            .arg("--root")
            .arg(t.path())
            .arg(&c.patches[0])
            .arg(&c.patches[1])
            .output()
            .unwrap()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap(), b.join().unwrap())
    });
    let outcomes = [&a, &b];
    assert!(
        outcomes.iter().any(|o| o.status.success()),
        "one of them applies"
    );
    for o in outcomes.iter().filter(|o| !o.status.success()) {
        let err = String::from_utf8_lossy(&o.stderr);
        // refused by the lock, or (if it came second) by the moved-on base
        assert!(
            err.contains("another sysup") || err.contains("wrong base"),
            "{err}"
        );
    }
    assert_root_is(t.path(), &c.trees[2]);
    assert!(leftovers(t.path()).is_empty());
}
