//! The dist's own `upgrade` step, the only external program an apply
//! runs, after every file is in place (see the invariants of
//! [`super`]): on the root `/` with `/bin/sh`, cwd `/` and sysup's
//! environment; under any other root confined to it — chrooted through
//! the root's descriptor, its own `/bin/sh`, a fixed environment, without
//! the capabilities that leave a chroot ([`ESCAPE_CAPABILITIES`]).
//!
//! Invariants: the script lives in the state directory as
//! `upgrade.<txid>` only while it runs; a root that cannot run it (no
//! shell, no chroot permitted) does not fail the cleanup: the step is not
//! run and the reason is returned.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::host::plan::Plan;
use crate::host::root::Root;
use crate::host::state::State;

/// Capabilities a confined upgrade step loses: those that leave a chroot
/// (`CAP_SYS_CHROOT`: chroot again and climb out; `CAP_DAC_READ_SEARCH`:
/// `open_by_handle_at`; `CAP_SYS_ADMIN`: mount, setns, …) or reach the
/// host past the root's files (`CAP_SYS_PTRACE`, `CAP_SYS_MODULE`,
/// `CAP_SYS_RAWIO`, `CAP_MKNOD`, `CAP_SYS_BOOT`, `CAP_SYS_TIME`, network,
/// audit, MAC, BPF, perf, …). What an upgrade step needs on the root's own
/// files — owners, modes, overriding permissions, file capabilities — stays.
/// `CAP_SETPCAP` is dropped last (it is what allows the drops).
const ESCAPE_CAPABILITIES: &[libc::c_int] = &[
    2,  // CAP_DAC_READ_SEARCH
    5,  // CAP_KILL
    12, // CAP_NET_ADMIN
    13, // CAP_NET_RAW
    15, // CAP_IPC_OWNER
    16, // CAP_SYS_MODULE
    17, // CAP_SYS_RAWIO
    18, // CAP_SYS_CHROOT
    19, // CAP_SYS_PTRACE
    20, // CAP_SYS_PACCT
    21, // CAP_SYS_ADMIN
    22, // CAP_SYS_BOOT
    24, // CAP_SYS_RESOURCE
    25, // CAP_SYS_TIME
    26, // CAP_SYS_TTY_CONFIG
    27, // CAP_MKNOD
    29, // CAP_AUDIT_WRITE
    30, // CAP_AUDIT_CONTROL
    32, // CAP_MAC_OVERRIDE
    33, // CAP_MAC_ADMIN
    34, // CAP_SYSLOG
    35, // CAP_WAKE_ALARM
    36, // CAP_BLOCK_SUSPEND
    37, // CAP_AUDIT_READ
    38, // CAP_PERFMON
    39, // CAP_BPF
    40, // CAP_CHECKPOINT_RESTORE
    8,  // CAP_SETPCAP
];

/// In the child of a confined upgrade step, after its chroot: take
/// [`ESCAPE_CAPABILITIES`] out of the bounding set (no program it runs can
/// regain them) and out of the effective, permitted and inheritable sets,
/// and set `no_new_privs`. Only raw system calls: it runs between fork and
/// exec. A kernel that does not know a capability has nothing to drop.
fn drop_escape_capabilities() -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let last_os = std::io::Error::last_os_error;
    for &cap in ESCAPE_CAPABILITIES {
        // SAFETY: prctl with integer arguments.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if r != 0 && last_os().raw_os_error() != Some(libc::EINVAL) {
            return Err(last_os());
        }
    }
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capget/capset with a v3 header and two data elements.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(last_os());
    }
    for &cap in ESCAPE_CAPABILITIES {
        let (i, bit) = ((cap / 32) as usize, 1u32 << (cap % 32));
        data[i].effective &= !bit;
        data[i].permitted &= !bit;
        data[i].inheritable &= !bit;
    }
    // SAFETY: as above.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } != 0 {
        return Err(last_os());
    }
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(last_os());
    }
    Ok(())
}

/// The fixed `PATH` of a confined upgrade step (the root's own programs).
const CONFINED_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Run the dist's upgrade step (see the module doc); its output goes to
/// stderr so `--json` stdout stays one document. `Ok(Some(why))` when it
/// was not run because the root cannot run it.
pub(super) fn run_upgrade(
    root: &Root,
    state: &State,
    plan: &Plan,
    script: &[u8],
) -> Result<Option<String>> {
    // Written through the state directory's descriptor; run by its path,
    // which the shell needs.
    let name = format!("upgrade.{}", plan.txid);
    state.write_file(&name, script, 0o700)?;
    let path = state.dir().join(&name);
    let from = plan
        .from
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let on_this_system = state.root() == Path::new("/");
    let mut cmd = Command::new("/bin/sh");
    if on_this_system {
        cmd.arg(&path).current_dir("/").env("SYSUP_ROOT", "/");
    } else {
        // The script as the chrooted shell finds it: the state directory's
        // real path, below the root's real path (State::open checked both).
        let inside = Path::new("/").join(path.strip_prefix(state.root()).map_err(|_| {
            Error::Refused(format!(
                "the upgrade step '{}' is not inside the root {}",
                path.display(),
                state.root().display()
            ))
        })?);
        let fd = root.dir().fd_ref().as_raw_fd();
        cmd.arg(inside)
            .env_clear()
            .env("PATH", CONFINED_PATH)
            .env("SYSUP_ROOT", "/");
        // SAFETY: between fork and exec only async-signal-safe calls, on a
        // descriptor and constant C strings made before the fork.
        unsafe {
            cmd.pre_exec(move || {
                for r in [
                    libc::fchdir(fd),
                    libc::chroot(c".".as_ptr()),
                    libc::chdir(c"/".as_ptr()),
                ] {
                    if r != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                drop_escape_capabilities()
            });
        }
    }
    let out = cmd
        .env("SYSUP_TO", plan.target.to_string())
        .env("SYSUP_FROM", from)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    let _ = state.fd().unlink(name.as_bytes());
    let shown = state.root().display();
    let out = match out {
        Ok(out) => out,
        Err(e) if !on_this_system => {
            let why = match e.raw_os_error() {
                // (also a dynamic shell whose loader the root lacks)
                Some(libc::ENOENT) => format!("{shown} has no /bin/sh it can run"),
                Some(libc::ENOEXEC | libc::EACCES | libc::ENOTDIR | libc::ELIBBAD) => {
                    format!("{shown}/bin/sh cannot be run ({e})")
                }
                Some(libc::EPERM) => format!(
                    "chroot into {shown} is not permitted to uid {} ({e}); run sysup as root",
                    nix::unistd::geteuid()
                ),
                _ => return Err(Error::io("run the upgrade step in", state.root(), e)),
            };
            return Ok(Some(format!("upgrade step not run: {why}")));
        }
        Err(e) => return Err(Error::io("run the upgrade step", &path, e)),
    };
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(&out.stdout);
    let _ = err.write_all(&out.stderr);
    if !out.status.success() {
        return Err(Error::Refused(format!(
            "the upgrade step of {} failed ({}); everything else is installed — fix the cause and run the same command again to retry it",
            plan.target, out.status
        )));
    }
    Ok(None)
}
