//! `sysup demo`: the whole story on built-in fixture trees, in a temporary
//! directory, in a few seconds. Nothing outside that directory is touched:
//! every host-side step runs with `--root` inside it.
//!
//! The story: a build host stages three revisions of a tiny world and two of
//! a named kernel, builds reproducible dists and binary patches between
//! them; a host (a root inside the demo directory) installs revision 1,
//! applies the 1→2→3 chain, shows its state, has a file damaged and a
//! config file edited, and is repaired by applying the installed dist again.

use std::path::{Path, PathBuf};

use crate::cli::fixtures;
use sysup::build::{self, Options};
use sysup::diff::{diff_dists, DiffOptions};
use sysup::error::{IoContext, Result};
use sysup::format::name::Date;
use sysup::format::spec::Spec;
use sysup::host::apply::{apply, ApplyOptions};
use sysup::host::state::State;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Work in DIR (created if missing) instead of a temporary directory, and keep it.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Print the next step's title. The demo prints with `try_outln!`: a
/// failed write (other than a reader that went away, which ends the output
/// quietly) is an error returned up through `run`, so its temporary
/// directory is removed on the way out, where `outln!` would exit on the
/// spot and leave it behind.
fn step(n: &mut u32, what: &str) -> Result<()> {
    *n += 1;
    try_outln!("\n[{n}] {what}")
}

pub fn run(a: Args) -> Result<()> {
    let tmp;
    let dir: &Path = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d).ctx("create directory", d)?;
            d
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("sysup-demo.")
                .tempdir()
                .ctx("create a temporary directory in", std::env::temp_dir())?;
            tmp.path()
        }
    };
    try_outln!("sysup demo in {}", dir.display())?;
    let mut n = 0;
    let built = stage(dir, &mut n)?;
    let dists = dir.join("dists");
    build_all(&built, &dists, &mut n)?;
    let patches = diff_all(&dists, &mut n)?;
    host_story(dir, &dists, &patches, &mut n)?;
    mirror_story(dir, &dists, &mut n)?;

    try_outln!("\nEverything is in {}", dir.display())?;
    if a.dir.is_none() {
        try_outln!("(temporary: removed on exit; use --dir DIR to keep it)")?;
    }
    Ok(())
}

/// Stage the fixture trees: three revisions of a world, two of kernel
/// GENERIC, with their specs; returns (spec, tree, rev) per dist to build.
fn stage(dir: &Path, n: &mut u32) -> Result<Vec<(Spec, PathBuf, u32)>> {
    let privileged = fixtures::privileged();
    step(
        n,
        "build host: stage three revisions of a tiny world and two of kernel GENERIC",
    )?;
    let specs = dir.join("specs");
    std::fs::create_dir_all(&specs).ctx("create directory", &specs)?;
    let world_spec = specs.join("world.toml");
    std::fs::write(&world_spec, fixtures::WORLD_SPEC).ctx("write", &world_spec)?;
    let kernel_spec = specs.join("GENERIC.toml");
    std::fs::write(&kernel_spec, fixtures::kernel_spec("GENERIC")).ctx("write", &kernel_spec)?;
    let world = Spec::load(&world_spec)?;
    let kernel = Spec::load(&kernel_spec)?;
    let mut built = Vec::new();
    for rev in 1..=3u32 {
        let tree = dir.join(format!("stage/world-{rev}"));
        if !tree.exists() {
            fixtures::make_world(&tree, rev, privileged)?;
        }
        built.push((world.clone(), tree, rev));
    }
    for rev in 1..=2u32 {
        let tree = dir.join(format!("stage/kernel-GENERIC-{rev}"));
        if !tree.exists() {
            fixtures::make_kernel(&tree, "GENERIC", rev)?;
        }
        built.push((kernel.clone(), tree, rev));
    }

    Ok(built)
}

/// `sysup build` of each staged tree into `dists`.
fn build_all(built: &[(Spec, PathBuf, u32)], dists: &Path, n: &mut u32) -> Result<()> {
    step(
        n,
        "build host: sysup build → revision-named, reproducible dists",
    )?;
    for (spec, tree, rev) in built {
        let opts = Options {
            rev: rev.to_string().parse()?,
            date: Date::new(2026, 11, 20 + *rev as u8).expect("valid demo date"),
            out_dir: dists.to_path_buf(),
            level: 6,
            progress: Default::default(),
        };
        let r = build::build(spec, tree, &opts)?;
        try_outln!(
            "  {:<38} {:>4} entries  tar {:>8}  gz {:>7}  md5 {}",
            r.id.file_name(),
            r.entries,
            r.tar.size,
            r.compressed_size,
            r.tar.md5_hex()
        )?;
    }
    Ok(())
}

/// `sysup diff` between successive dists; returns the patches, in order.
fn diff_all(dists: &Path, n: &mut u32) -> Result<Vec<PathBuf>> {
    step(
        n,
        "build host: sysup diff → binary patches between the uncompressed tars",
    )?;
    let mut patches = Vec::new();
    let name = |id: &str| dists.join(format!("{id}.tar.gz"));
    for (a, b) in [
        ("world-1-20261121", "world-2-20261122"),
        ("world-2-20261122", "world-3-20261123"),
        ("kernel-GENERIC-1-20261121", "kernel-GENERIC-2-20261122"),
    ] {
        let r = diff_dists(&name(a), &name(b), dists, &DiffOptions::default())?;
        try_outln!(
            "  {:<46} {:>7} bytes  ({:.1}% of the new tar)",
            r.patch
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            r.size,
            100.0 * r.size as f64 / r.header.to.tar.size.max(1) as f64
        )?;
        patches.push(r.patch);
    }

    Ok(patches)
}

/// The first half of the host's story, through the library: install,
/// apply the chains, show what is installed, damage the tree and repair it.
fn host_story(dir: &Path, dists: &Path, patches: &[PathBuf], n: &mut u32) -> Result<()> {
    let name = |id: &str| dists.join(format!("{id}.tar.gz"));
    let root = dir.join("host-root");
    std::fs::create_dir_all(&root).ctx("create directory", &root)?;
    let on_root = |files: Vec<PathBuf>| ApplyOptions {
        root: root.clone(),
        files,
        ..Default::default()
    };
    step(
        n,
        &format!(
            "host: sysup apply --root {} world-1 (a full install)",
            root.display()
        ),
    )?;
    super::apply::print_report(&apply(&on_root(vec![name("world-1-20261121")]))?, false)?;
    apply(&on_root(vec![name("kernel-GENERIC-1-20261121")]))?;

    step(
        n,
        "host: sysup apply the chain world-1→2→3 (streamed: gunzip(base) → patch → patch → tar)",
    )?;
    super::apply::print_report(
        &apply(&on_root(vec![patches[0].clone(), patches[1].clone()]))?,
        false,
    )?;
    step(
        n,
        "host: a new kernel; the running one is kept as boot/kernel.old",
    )?;
    super::apply::print_report(&apply(&on_root(vec![patches[2].clone()]))?, false)?;

    step(n, "host: what is installed")?;
    let state = State::open(&root)?;
    for i in state.installed_all()? {
        try_outln!(
            "  {:<28} md5 {}  base {} bytes",
            i.id.to_string(),
            i.tar.md5_hex(),
            i.base_size
        )?;
    }
    try_outln!(
        "  boot/kernel.old kept: {}",
        if root.join("boot/kernel.old/kernel").exists() {
            "yes"
        } else {
            "no"
        }
    )?;

    step(
        n,
        "host: damage — truncate libc, delete ls; the admin edits a config file",
    )?;
    let libc = root.join("usr/lib/x86_64-linux-gnu/libc.so.6");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&libc)
        .and_then(|f| f.set_len(1000))
        .ctx("truncate", &libc)?;
    let ls = root.join("usr/bin/ls");
    std::fs::remove_file(&ls).ctx("remove", &ls)?;
    let conf = root.join("etc/sysup-demo.conf");
    std::fs::write(&conf, "# edited by the admin\nlevel = 9\n").ctx("write", &conf)?;
    step(
        n,
        "host: sysup apply world-3 again → verifies everything, repairs only what differs",
    )?;
    super::apply::print_report(&apply(&on_root(vec![name("world-3-20261123")]))?, false)?;

    Ok(())
}

/// The second half of the story, as an admin runs it: publish a signed
/// INDEX, serve the dists over HTTP, `sysup update` a host from it, then
/// verify, rollback, update forward again, history and clean. Each step runs the real `sysup`
/// binary and prints the command line as a person would type it (paths
/// relative to the demo directory, which is the commands' working
/// directory).
fn mirror_story(dir: &Path, dists: &Path, n: &mut u32) -> Result<()> {
    // A demo key: made here, unencrypted, used for nothing else.
    let kp = minisign::KeyPair::generate_unencrypted_keypair()
        .map_err(|e| sysup::Error::Refused(format!("cannot make a demo key: {e}")))?;
    let (key, pubkey) = (dir.join("demo.key"), dir.join("demo.pub"));
    let sk_text = kp
        .sk
        .to_box(Some("sysup demo key"))
        .map_err(|e| sysup::Error::Refused(format!("cannot make a demo key: {e}")))?
        .to_string();
    write_private(&key, sk_text.as_bytes())?;
    let sk = sysup::mirror::sign::SecretKey::read(&key, None)?;
    std::fs::write(&pubkey, sk.public_key_text()).ctx("write", &pubkey)?;

    step(
        n,
        "build host: sign an INDEX of the mirror directory (made with `minisign -G` in real life)",
    )?;
    sysup(dir, &["publish", "dists", "--sign", "demo.key"], true)?;

    let url = serve(dists)?;
    step(
        n,
        &format!("mirror: any static web server; here a tiny one of the demo's own at {url}"),
    )?;
    let host = dir.join("host2");
    std::fs::create_dir_all(&host).ctx("create directory", &host)?;
    step(n, "a second host, world-1 installed from the full dist")?;
    sysup(
        dir,
        &[
            "-q",
            "apply",
            "--root",
            "host2",
            "dists/world-1-20261121.tar.gz",
        ],
        true,
    )?;
    step(
        n,
        "host: update over HTTP — signed INDEX checked, cheapest chain fetched and applied",
    )?;
    sysup(
        dir,
        &[
            "update", "--root", "host2", "--mirror", &url, "--pubkey", "demo.pub",
        ],
        true,
    )?;
    step(n, "host: verify the installed files against the MANIFEST")?;
    sysup(dir, &["verify", "--root", "host2"], true)?;
    step(n, "host: roll back to the kept older base")?;
    sysup(dir, &["rollback", "--root", "host2"], true)?;
    step(
        n,
        "host: update again — forward to the newest, from the mirror",
    )?;
    sysup(
        dir,
        &[
            "-q", "update", "--root", "host2", "--mirror", &url, "--pubkey", "demo.pub",
        ],
        true,
    )?;
    step(n, "host: the audit log")?;
    sysup(dir, &["history", "--root", "host2"], true)?;
    step(
        n,
        "host: prune kept bases: the installed one and the newest one per name stay",
    )?;
    sysup(dir, &["clean", "--root", "host2", "--keep", "1"], true)?;
    Ok(())
}

/// Write a file only its owner may read.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .ctx("write", path)
}

/// Run this very `sysup` with `args` in `dir`, after printing the command
/// line; its output is printed indented. A failure is an error unless
/// `must_succeed` is false.
fn sysup(dir: &Path, args: &[&str], must_succeed: bool) -> Result<()> {
    try_outln!("  $ sysup {}", args.join(" "))?;
    let exe = std::env::current_exe().ctx("find", Path::new("the sysup binary"))?;
    let out = std::process::Command::new(&exe)
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .ctx("run", &exe)?;
    for line in String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
    {
        try_outln!("    {line}")?;
    }
    if must_succeed && !out.status.success() {
        return Err(sysup::Error::Refused(format!(
            "demo step `sysup {}` failed ({})",
            args.join(" "),
            out.status
        )));
    }
    Ok(())
}

/// Serve the files of `root` over HTTP/1.1 on a loopback port, from a
/// thread that lives as long as the process: GET and HEAD of plain file
/// names, whole files only, one request per connection. For the demo only:
/// a real mirror is any web server.
fn serve(root: &Path) -> Result<String> {
    use std::io::{BufRead, BufReader, Write};
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").ctx("listen on", Path::new("127.0.0.1:0"))?;
    let addr = listener
        .local_addr()
        .ctx("listen on", Path::new("127.0.0.1:0"))?;
    let root = root.to_path_buf();
    let answer = move |stream: std::net::TcpStream| -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut request = String::new();
        reader.read_line(&mut request)?;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
                break;
            }
        }
        let mut words = request.split_whitespace();
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let name = target.trim_start_matches('/');
        let file = (!name.is_empty() && !name.contains('/') && !name.starts_with('.'))
            .then(|| root.join(name))
            .and_then(|p| std::fs::read(p).ok());
        let mut out = stream;
        match file {
            Some(body) => {
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )?;
                if method != "HEAD" {
                    out.write_all(&body)?;
                }
            }
            None => out.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?,
        }
        out.flush()
    };
    std::thread::Builder::new()
        .name("sysup-demo-http".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = answer(stream);
            }
        })
        .ctx("start", Path::new("the demo's HTTP server"))?;
    Ok(format!("http://{addr}"))
}
