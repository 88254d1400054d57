//! Streaming and staging, the part of an apply a dry run shares with the
//! real one: the new tar read once — `.sysup/DIST` and `MANIFEST` checked
//! against the target and the host before anything of the tree is written,
//! every member staged in tar order, the result verified — and the plan
//! made from what staging decided.
//!
//! The stream is `gunzip(base or dist) → patch → … → patch → tee`, where the
//! [`Tee`] feeds the gzip writer of the new base (none in a dry run) and the
//! tar reader that stages members. A dist is hashed (MD5+SHA-256) in the
//! tee; a chain's result is verified by its last patch.
//!
//! Invariants: the stream is read to its very end (the digests cover it
//! all); metadata members come before the tree, each at most once; with no
//! transaction (a dry run) nothing is written.

use std::io::{self, BufReader, Read};
use std::path::Path;

use crate::error::{Error, Result};
use crate::format::archive::member::{self, MemberMeta};
use crate::format::archive::segment::{Item, Segmenter};
use crate::format::dist::{
    DistMeta, DIST_MEMBER, MANIFEST_MEMBER, META_DIR, OBSOLETE_MEMBER, UPGRADE_MEMBER,
};
use crate::format::manifest::{Kind, Manifest};
use crate::host::checkpoint::fault_write;
use crate::host::journal::Journal;
use crate::host::plan::Plan;
use crate::host::policy::Policy;
use crate::host::stage::{MergeSource, Mode, Staged, Stager};
use crate::host::statcache::StatCache;
use crate::util::digest::Digests;
use crate::util::hashing::BackgroundHasher;
use crate::util::readahead::ReadAhead;

use super::input::{Checked, Input};
use super::report::{obsolete_of, Lists};
use super::transaction::{BaseGz, Transaction};
use super::Run;

/// The new tar as members, read through the [`Tee`].
pub(super) type Stream = Segmenter<Tee<ReadAhead>>;

/// Reads `inner`, counting it, hashing it (a dist; a patch chain's last
/// reader verifies its own output) and copying it into the new base's gzip
/// writer.
pub(super) struct Tee<R> {
    inner: R,
    hasher: Option<BackgroundHasher>,
    size: u64,
    gz: Option<BaseGz>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.size += n as u64;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        if let Some(g) = &mut self.gz {
            fault_write(g, &buf[..n], "base-write")?;
        }
        Ok(n)
    }
}

/// The stream of `checked`'s input: the new tar is made (gunzip, patches)
/// on a thread of its own while this one stages it; a dist is hashed here
/// (on hashing threads), a chain's last patch verifies what it makes.
pub(super) fn open(
    reader: Box<dyn Read + Send>,
    checked: &Checked,
    gz: Option<BaseGz>,
) -> Result<Stream> {
    let reader = ReadAhead::spawn("sysup-stream", reader)
        .map_err(|e| Error::io("start reading", Path::new(&checked.label), e))?;
    let tee = Tee {
        // No BufReader between: the read-ahead hands over 1 MiB chunks
        // and serves small reads from them, and another buffer would copy
        // the whole stream once more.
        inner: reader,
        hasher: match checked.input {
            Input::Dist { .. } => Some(BackgroundHasher::new()),
            Input::Chain { .. } => None,
        },
        size: 0,
        gz,
    };
    Ok(Segmenter::new(tee, checked.label.clone()))
}

/// What staging made: the plan, staging's lists, and the new MANIFEST (for
/// the stat cache, and a dry run's foretold cleanup).
pub(super) struct Made {
    pub plan: Plan,
    pub lists: Lists,
    pub manifest: Manifest,
}

/// What the stream held besides the tree, and what staging decided.
struct Streamed {
    meta: DistMeta,
    manifest: Manifest,
    obsolete: Vec<String>,
    upgrade: Option<Vec<u8>>,
    staged: Staged,
}

impl Run<'_> {
    /// Stream, stage and verify `checked`'s input, then make the plan. With
    /// a transaction, staging is journaled in it and the new base kept
    /// under its temporary name; without one (a dry run) nothing is written.
    pub(super) fn stage(
        &self,
        checked: &Checked,
        mut seg: Stream,
        mut txn: Option<&mut Transaction>,
    ) -> Result<Made> {
        let journal = txn.as_deref_mut().map(Transaction::journal);
        let streamed = self.stream_and_stage(&mut seg, checked, journal)?;
        // Verify: every byte of the result against the chain's to-digests.
        let mut tee = seg.into_inner();
        let tar = verified(checked, &mut tee)?;
        // The base: complete and durable under its temporary name (none in
        // a dry run).
        let base_temp = match (tee.gz, txn) {
            (Some(gz), Some(txn)) => txn.keep_base(gz)?,
            _ => String::new(),
        };
        Ok(self.plan_of(checked, streamed, tar, base_temp))
    }

    /// The plan: what commit, record and cleanup do.
    fn plan_of(&self, checked: &Checked, s: Streamed, tar: Digests, base_temp: String) -> Made {
        let Streamed {
            meta,
            manifest,
            obsolete,
            upgrade,
            mut staged,
        } = s;
        let lists = Lists {
            added: std::mem::take(&mut staged.added),
            changed: std::mem::take(&mut staged.changed),
        };
        let dirs = || manifest.entries().iter().filter(|e| e.kind == Kind::Dir);
        let mut dir_mtimes: Vec<(Vec<u8>, i64)> =
            dirs().map(|e| (e.path.clone(), e.mtime)).collect();
        dir_mtimes.sort_by(|a, b| b.0.cmp(&a.0));
        let plan = Plan {
            txid: checked.txid.clone(),
            target: checked.target.clone(),
            from: checked.from(),
            arch: meta.arch.clone(),
            tar,
            base_temp,
            dist_dirs: dirs().map(|e| e.path.clone()).collect(),
            dir_renames: staged.dir_renames,
            renames: staged.renames,
            critical: staged.critical,
            dir_attrs: staged.dir_attrs,
            attrs: staged.attrs,
            dir_mtimes,
            kernel: staged.kernel,
            obsolete: obsolete_of(checked.old_meta.as_ref(), &manifest, obsolete),
            config_kept: staged.config_kept,
            config_merged: staged.config_merged,
            config_conflicted: staged.config_conflicted,
            upgrade,
            counts: staged.counts,
            action: self.opts.action.clone(),
        };
        Made {
            plan,
            lists,
            manifest,
        }
    }

    /// Read the `.sysup/` head, check it, then stage every member.
    fn stream_and_stage(
        &self,
        seg: &mut Stream,
        checked: &Checked,
        journal: Option<&mut Journal>,
    ) -> Result<Streamed> {
        let label = checked.label.as_str();
        let (meta, manifest) = self.read_head(seg, checked)?;
        self.check_host(checked, &meta, &manifest)?;
        let kernel = match (checked.mode, &meta.kernel) {
            (Mode::Fresh | Mode::Upgrade, Some(k)) => Some(k.clone()),
            _ => None,
        };
        crate::host::stage::refuse_state_paths(label, &manifest, &[], meta.kernel.as_ref())?;
        let old = checked.old_meta.as_ref();
        let stats = match (checked.mode, checked.from_base, old) {
            (Mode::Upgrade, Some(i), Some(o)) => {
                StatCache::load(self.state, &i.id, o.manifest.entries().len())
            }
            _ => StatCache::default(),
        };
        let mut stager = Stager::new(
            self.root,
            journal,
            checked.txid.clone(),
            checked.mode,
            &manifest,
            old.map(|o| &o.manifest),
            kernel,
        )
        .with_stats(&stats)
        .with_made_by_sysup(self.state.made())
        .with_merge(MergeSource {
            on: self.conf.config_merge,
            base: checked.from_base.map(|i| (self.state, i.id.clone())),
        });
        let (obsolete, upgrade) = stage_members(seg, &mut stager, label, &manifest)?;
        // The stream must have been read to its very end (the digests cover it all).
        let mut rest = Vec::new();
        seg.data()
            .read_to_end(&mut rest)
            .map_err(|e| Error::from_io(e, "read", Path::new(label)))?;
        let staged = stager.finish(label)?;
        Ok(Streamed {
            meta,
            manifest,
            obsolete,
            upgrade,
            staged,
        })
    }

    /// `.sysup/DIST` (the target, for this host's architecture), then
    /// `.sysup/MANIFEST`, parsed as it streams.
    fn read_head(&self, seg: &mut Stream, checked: &Checked) -> Result<(DistMeta, Manifest)> {
        let label = checked.label.as_str();
        let target = &checked.target;
        let Some((m, size)) = next_member(seg, label)? else {
            return Err(not_dist(label, "empty"));
        };
        if m.path != DIST_MEMBER.as_bytes() {
            return Err(not_dist(label, "the first member is not .sysup/DIST"));
        }
        let meta = DistMeta::parse(
            Path::new(label),
            &read_meta_member(seg, size, 64 * 1024, label, "DIST")?,
        )?;
        if &meta.id != target {
            return Err(Error::Mismatch(format!(
                "'{label}' holds {} but {target} was expected",
                meta.id
            )));
        }
        let host_arch = checked
            .from_base
            .map(|i| i.arch.clone())
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        if meta.arch != host_arch {
            return Err(Error::Mismatch(format!(
                "{} is for {}, but {} is {}",
                meta.id,
                meta.arch,
                self.state.root().display(),
                host_arch
            )));
        }
        let Some((m, size)) = next_member(seg, label)? else {
            return Err(not_dist(label, "no MANIFEST"));
        };
        if m.path != MANIFEST_MEMBER.as_bytes() {
            return Err(not_dist(label, "the second member is not .sysup/MANIFEST"));
        }
        if size > 512 << 20 {
            return Err(Error::Tar {
                path: label.into(),
                reason: format!("MANIFEST claims {size} bytes, more than the 512 MiB allowed"),
            });
        }
        // Parsed as it streams, never held as text: a hostile MANIFEST (a gzip
        // bomb) is refused at its first bad line, or its first entry past DIST's count.
        let manifest = Manifest::read(Path::new(label), BufReader::new(seg.data()), meta.entries)?;
        if manifest.entries().len() as u64 != meta.entries {
            return Err(not_dist(
                label,
                "DIST and MANIFEST disagree on the entry count",
            ));
        }
        Ok((meta, manifest))
    }

    /// What the host allows, before anything of the tree is written: its
    /// policy (device nodes), free space (not in a dry run), kernel
    /// directories.
    fn check_host(&self, checked: &Checked, meta: &DistMeta, manifest: &Manifest) -> Result<()> {
        let label = checked.label.as_str();
        let old = checked.old_meta.as_ref();
        Policy::new(self.conf)?.check(manifest, label)?;
        if !self.opts.dry_run {
            let need = space_needed(manifest, old.map(|o| &o.manifest), checked.mode);
            let have = crate::util::fsutil::free_bytes(self.state.root())?;
            let base_guess = self.conf.base_compression.estimate(tar_size(manifest));
            if need + base_guess + (need + base_guess) / 50 > have {
                return Err(Error::Refused(format!(
                    "not enough free space on {}: staging {} from '{label}' needs about {}, {} are free",
                    self.state.root().display(),
                    checked.target,
                    crate::util::fsutil::human_size(need + base_guess),
                    crate::util::fsutil::human_size(have)
                )));
            }
        }
        crate::host::kernel_dirs::check(self.root, self.state, meta, manifest, old, label)
    }
}

/// The OBSOLETE and upgrade members, then every member of the tree, staged.
fn stage_members(
    seg: &mut Stream,
    stager: &mut Stager,
    label: &str,
    manifest: &Manifest,
) -> Result<(Vec<String>, Option<Vec<u8>>)> {
    let mut obsolete = Vec::new();
    let mut seen_obsolete = false;
    let mut upgrade = None;
    let mut in_tree = false;
    while let Some((m, size)) = next_member(seg, label)? {
        if !m.path.starts_with(META_DIR.as_bytes()) {
            in_tree = true;
            stager.member(label, &m, &mut seg.data())?;
            continue;
        }
        if in_tree {
            // `sysup info` reads the head only: metadata hidden after the
            // tree (an upgrade step) would run unseen.
            return Err(not_dist(
                label,
                &format!(
                    "metadata member '{}' after the tree",
                    String::from_utf8_lossy(&m.path)
                ),
            ));
        }
        match std::str::from_utf8(&m.path).unwrap_or_default() {
            OBSOLETE_MEMBER if !seen_obsolete && upgrade.is_none() => {
                seen_obsolete = true;
                let text = read_meta_member(seg, size, 64 << 20, label, "OBSOLETE")?;
                obsolete = String::from_utf8(text)
                    .map_err(|_| not_dist(label, "OBSOLETE is not UTF-8"))?
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect();
                crate::host::stage::refuse_state_paths(label, manifest, &obsolete, None)?;
            }
            UPGRADE_MEMBER if upgrade.is_none() => {
                upgrade = Some(read_meta_member(seg, size, 16 << 20, label, "upgrade")?);
            }
            _ => {
                return Err(not_dist(
                    label,
                    &format!(
                        "unexpected metadata member '{}'",
                        String::from_utf8_lossy(&m.path)
                    ),
                ))
            }
        }
    }
    Ok((obsolete, upgrade))
}

/// The digests of the new tar, read to its end: a dist's as hashed, a
/// chain's as its last patch verified them (size checked here).
fn verified<R>(checked: &Checked, tee: &mut Tee<R>) -> Result<Digests> {
    match checked.input {
        Input::Dist { .. } => {
            let h = tee.hasher.take().expect("a dist is hashed");
            Ok(h.finish().digests().expect("with SHA-256"))
        }
        Input::Chain { patches } => {
            // The stream was read to EOF, which the last patch returns
            // only once its output matched these digests.
            let want = patches.last().expect("non-empty").1.to.tar;
            if want.size != tee.size {
                return Err(Error::DigestMismatch {
                    what: "size of the result of the patch chain".into(),
                    path: checked.label.clone().into(),
                    expected: want.size.to_string(),
                    actual: tee.size.to_string(),
                });
            }
            Ok(want)
        }
    }
}

/// The next member's metadata and size, or `None` at the trailer.
fn next_member(seg: &mut Stream, label: &str) -> Result<Option<(MemberMeta, u64)>> {
    match seg.next_item()? {
        Some(Item::Member(m)) => {
            let meta = member::parse(&m.header).map_err(|reason| Error::Tar {
                path: label.into(),
                reason: format!("member at byte {}: {reason}", m.offset),
            })?;
            Ok(Some((meta, m.size)))
        }
        Some(Item::Trailer(_)) | None => Ok(None),
    }
}

fn not_dist(label: &str, why: &str) -> Error {
    Error::Tar {
        path: label.into(),
        reason: format!("not a sysup dist: {why}"),
    }
}

fn read_meta_member(
    seg: &mut Stream,
    size: u64,
    cap: u64,
    label: &str,
    what: &str,
) -> Result<Vec<u8>> {
    if size > cap {
        return Err(Error::Tar {
            path: label.into(),
            reason: format!("{what} claims {size} bytes, more than the {cap} allowed"),
        });
    }
    let mut v = Vec::with_capacity(size as usize);
    seg.data()
        .read_to_end(&mut v)
        .map_err(|e| Error::from_io(e, "read", Path::new(label)))?;
    Ok(v)
}

/// Bytes the staging of `new` may write, given `old` and the mode.
fn space_needed(new: &Manifest, old: Option<&Manifest>, mode: Mode) -> u64 {
    new.entries()
        .iter()
        .filter(|e| e.kind == Kind::File)
        .filter(|e| match (mode, old.and_then(|o| o.get(&e.path))) {
            (Mode::Repair, _) => false,
            (Mode::Upgrade, Some(o)) => {
                o.sha256 != e.sha256
                    || o.mode != e.mode
                    || o.uid != e.uid
                    || o.gid != e.gid
                    || o.mtime != e.mtime
            }
            _ => true,
        })
        .map(|e| e.size)
        .sum()
}

/// About how big the tar of `manifest` is: each entry's header and data,
/// in 512-byte blocks, and the trailer. Long names, extended attributes and
/// `.sysup/` add a little more.
fn tar_size(manifest: &Manifest) -> u64 {
    let data = |e: &crate::format::manifest::Entry| match e.kind {
        Kind::File => e.size + crate::format::archive::segment::pad_len(e.size),
        _ => 0,
    };
    manifest
        .entries()
        .iter()
        .map(|e| 512 + data(e))
        .sum::<u64>()
        + 1024
}
