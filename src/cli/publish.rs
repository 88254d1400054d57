//! `sysup publish DIR [--sign SECKEY] [--make-patches K] [--expires DURATION]`: write the signed
//! INDEX of the dists and patches in DIR (build host). See [`sysup::mirror::publish`]
//! and docs/mirrors.md.
//!
//! Invariant: DIR gains files only under temporary names then renamed;
//! `INDEX` comes after every patch it lists, and its signature after it.

use std::path::PathBuf;

use sysup::mirror::publish::{parse_duration, publish, PublishOptions};
use sysup::mirror::sign::SecretKey;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The directory of dists (`*.tar.gz`) and patches (`*.patch`) to publish.
    pub dir: PathBuf,
    /// Sign the INDEX with this minisign secret key (made by `minisign -G`).
    #[arg(long, value_name = "SECKEY")]
    pub sign: Option<PathBuf>,
    /// File whose first line is the secret key's password (encrypted keys
    /// only; without it the password is asked for on the terminal).
    #[arg(long, value_name = "FILE", requires = "sign")]
    pub password_file: Option<PathBuf>,
    /// Make missing patches from each of the K previous dists of every name
    /// to its newest.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub make_patches: usize,
    /// Write an expiry into the INDEX: hosts refuse it DURATION after now
    /// (a number and a unit s, m, h, d or w: `7d`, `12h`). Publish again
    /// before then.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub expires: Option<u64>,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args, ui: &super::progress::Ui) -> sysup::Result<()> {
    let password = match &a.password_file {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| sysup::Error::io("read", p, e))?;
            Some(text.lines().next().unwrap_or("").to_string())
        }
        None => None,
    };
    let sign = match &a.sign {
        Some(k) => Some(SecretKey::read(k, password)?),
        None => None,
    };
    let r = ui.with_progress(|progress| {
        let mut opts = PublishOptions {
            make_patches: a.make_patches,
            sign,
            expires_in: a.expires,
            ..PublishOptions::default()
        };
        opts.diff.progress = progress.clone();
        publish(&a.dir, &opts)
    })?;
    if a.json {
        return super::print_json(&r);
    }
    for m in r.made.iter().filter(|_| !ui.quiet) {
        outln!("made {}", m.display());
    }
    outln!(
        "wrote {} (serial {}, {} dists, {} patches)",
        r.index.display(),
        r.serial,
        r.dists,
        r.patches
    );
    if let Some(e) = r.expires {
        outln!("expires {} UTC", super::utc_time(e as i64));
    }
    match &r.signature {
        Some(s) if !ui.quiet => outln!("wrote {}", s.display()),
        Some(_) => {}
        None => {
            eprintln!("warning: INDEX is not signed; hosts will refuse it (pass --sign SECKEY)")
        }
    }
    Ok(())
}
