//! Re-encode: diffing an xz- or zstd-compressed member through its
//! uncompressed bytes (patch format 4), the way [`regz`](super::regz) does it
//! for gzip, and a zip archive through its expanded form (patch format 5,
//! [`rezip`]: the recipe names the codec, a table after the record says
//! which entries are deflated again).
//!
//! A kernel module (`.ko.xz`) rebuilt for the next kernel changes a little
//! uncompressed and nearly everywhere compressed. When the new member is
//! **exactly** what this build's liblzma ([`rexz`]) or zstd ([`rezstd`])
//! makes from its uncompressed bytes with settings read from the member's
//! own headers, the patch carries a bsdiff of the uncompressed bytes and
//! those settings (a [`Recipe`]); the applier decompresses the old member,
//! rebuilds the new uncompressed bytes and compresses them again.
//!
//! Invariants:
//! - [`recipe`] says yes only after compressing the uncompressed bytes with
//!   the recipe and comparing the whole member byte for byte, and only for
//!   a recipe [`Recipe::check`] accepts, so a member the differ encodes this
//!   way is one this build rebuilds;
//! - every buffer is bounded by [`MAX_RAW`] (uncompressed bytes either side)
//!   and [`MAX_PACKED`] (a member's compressed bytes): decompression stops
//!   past the bound, and a recipe's encoder settings are bounded by
//!   [`Recipe::check`], which the applier runs on every decoded recipe
//!   before anything is allocated from it;
//! - the codec is the same on both sides of a pair: the applier
//!   decompresses the old member with the recipe's codec.

use std::io;

use super::{rexz, rezip, rezstd};

/// Most uncompressed bytes either side of a re-encoded member: the
/// applier holds the old and the new uncompressed bytes and the rebuilt
/// member at once.
pub const MAX_RAW: u64 = 8 << 20;
/// Most compressed bytes of a re-encoded member (old or new).
pub const MAX_PACKED: u64 = MAX_RAW + (1 << 20);

/// The compressor a recipe names, with its settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Xz(rexz::Params),
    Zstd(rezstd::Params),
    /// A zip archive; its [`rezip::Table`] follows the record.
    Zip(rezip::Params),
}

/// How a reproducible member is rebuilt from its uncompressed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recipe {
    pub codec: Codec,
    /// Uncompressed bytes.
    pub raw_len: u64,
}

/// Record codes of the codecs.
const XZ: u64 = 1;
const ZSTD: u64 = 2;
const ZIP: u64 = 3;

/// Which codec a member's first bytes say it is, if one of ours.
pub fn sniff(head: &[u8]) -> Option<u64> {
    if head.starts_with(&rexz::MAGIC) {
        Some(XZ)
    } else if head.starts_with(&rezstd::MAGIC) {
        Some(ZSTD)
    } else if head.starts_with(&rezip::MAGIC) {
        Some(ZIP)
    } else {
        None
    }
}

/// Bytes at the start of a member [`sniff`] needs.
pub const SNIFF_LEN: usize = 6;

impl Recipe {
    /// The record's fields after the data reference: codec, its settings,
    /// the uncompressed length.
    pub fn fields(&self) -> Vec<u64> {
        let mut f = match self.codec {
            Codec::Xz(p) => [vec![XZ], p.fields()].concat(),
            Codec::Zstd(p) => [vec![ZSTD], p.fields()].concat(),
            Codec::Zip(p) => [vec![ZIP], p.fields()].concat(),
        };
        f.push(self.raw_len);
        f
    }

    /// The inverse of [`Self::fields`], reading numbers from `next`; a
    /// recipe [`Self::check`] refuses is refused here too.
    pub fn read<E>(
        mut next: impl FnMut() -> Result<u64, E>,
        malformed: impl Fn(&'static str) -> E,
    ) -> Result<Recipe, E> {
        let codec = match next()? {
            XZ => Codec::Xz(rexz::Params::read(&mut next, &malformed)?),
            ZSTD => Codec::Zstd(rezstd::Params::read(&mut next, &malformed)?),
            ZIP => Codec::Zip(rezip::Params::read(&mut next, &malformed)?),
            _ => return Err(malformed("an unknown codec in a re-encoded member")),
        };
        let r = Recipe {
            codec,
            raw_len: next()?,
        };
        r.check().map_err(&malformed)?;
        Ok(r)
    }

    /// Whether the applier may run this recipe: sizes and encoder settings
    /// within the bounds above.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.raw_len > MAX_RAW {
            return Err("a re-encoded member larger than this sysup rebuilds");
        }
        match self.codec {
            Codec::Xz(p) => p.check(),
            Codec::Zstd(p) => p.check(),
            Codec::Zip(_) => Ok(()),
        }
    }

    /// About the memory the encoder touches running this recipe, for the
    /// applier's budget of work handed to the compression threads (so two
    /// big encodes do not run side by side). liblzma's binary-tree match
    /// finder writes its hash table (about 2 bytes per dictionary byte) all
    /// over and keeps ~9 bytes per byte of history; libzstd sizes its
    /// tables from the input size when it was told it, and from the level
    /// (at most ~90 MiB at 19) when not.
    pub fn encoder_memory(&self) -> u64 {
        let raw = self.raw_len;
        match self.codec {
            Codec::Xz(p) => {
                let dict = u64::from(p.dict_size);
                2 * dict + 9 * dict.min(raw) + 2 * raw.min(p.block_size)
            }
            Codec::Zstd(p) if p.pledged => 16 * raw + (1 << 20),
            Codec::Zstd(_) => 96 << 20,
            // zlib's state at memLevel 9, and the rebuilt archive.
            Codec::Zip(_) => (1 << 20) + raw,
        }
    }

    /// The codec's name, for messages and statistics.
    pub fn name(&self) -> &'static str {
        match self.codec {
            Codec::Xz(_) => "xz",
            Codec::Zstd(_) => "zstd",
            Codec::Zip(_) => "zip",
        }
    }
}

/// The uncompressed bytes (at most [`MAX_RAW`]) of a member compressed
/// with the codec of `recipe` (a zip: the old side's expanded form,
/// [`rezip::expand_old`]); `None` if it is not one whole, valid stream.
pub fn raw_as(recipe: &Recipe, file: &[u8]) -> Option<Vec<u8>> {
    raw_of_codec(codec_code(recipe), file)
}

fn codec_code(r: &Recipe) -> u64 {
    match r.codec {
        Codec::Xz(_) => XZ,
        Codec::Zstd(_) => ZSTD,
        Codec::Zip(_) => ZIP,
    }
}

fn raw_of_codec(code: u64, file: &[u8]) -> Option<Vec<u8>> {
    if file.len() as u64 > MAX_PACKED {
        return None;
    }
    match code {
        XZ => rexz::raw_of(file, MAX_RAW),
        ZSTD => rezstd::raw_of(file, MAX_RAW),
        ZIP => rezip::expand_old(file),
        _ => None,
    }
}

/// The uncompressed bytes of an xz or zstd member, by its magic (a zip:
/// its expanded form as an old member); `None` if it is none of them, or
/// not one whole, valid stream within the bounds.
pub fn raw_of(file: &[u8]) -> Option<Vec<u8>> {
    raw_of_codec(sniff(file)?, file)
}

/// The recipe that rebuilds an xz or zstd `file` exactly from its
/// uncompressed bytes, and those bytes; `None` if no setting tried
/// reproduces it (a zip's is [`zip_recipe`]).
pub fn recipe(file: &[u8]) -> Option<(Recipe, Vec<u8>)> {
    if file.len() as u64 > MAX_PACKED {
        return None;
    }
    let (codec, raw) = match sniff(file)? {
        XZ => {
            let (p, raw) = rexz::recipe(file, MAX_RAW)?;
            (Codec::Xz(p), raw)
        }
        ZSTD => {
            let (p, raw) = rezstd::recipe(file, MAX_RAW)?;
            (Codec::Zstd(p), raw)
        }
        _ => return None,
    };
    let r = Recipe {
        codec,
        raw_len: raw.len() as u64,
    };
    r.check().ok()?;
    Some((r, raw))
}

/// The recipe and table that rebuild a zip `file` from its expanded form,
/// and that form; `None` if zlib reproduces none of its deflate entries.
pub fn zip_recipe(file: &[u8]) -> Option<(Recipe, rezip::Table, Vec<u8>)> {
    let (table, expanded) = rezip::recipe(file)?;
    let r = Recipe {
        codec: Codec::Zip(rezip::Params {
            entries: u32::try_from(table.0.len()).ok()?,
        }),
        raw_len: expanded.len() as u64,
    };
    r.check().ok()?;
    Some((r, table, expanded))
}

/// Compress `raw` by an xz or zstd `recipe`: the rebuilt member (a zip's
/// is [`rezip::rebuild`], with its table).
pub fn rebuild(recipe: &Recipe, raw: &[u8]) -> io::Result<Vec<u8>> {
    recipe.check().map_err(io::Error::other)?;
    let mut out = Vec::new();
    let sink = |chunk: &[u8]| {
        out.extend_from_slice(chunk);
        true
    };
    match recipe.codec {
        Codec::Xz(p) => rexz::encode(&p, raw, sink)?,
        Codec::Zstd(p) => rezstd::encode(&p, raw, sink)?,
        Codec::Zip(_) => return Err(io::Error::other("a zip member is rebuilt from its table")),
    };
    Ok(out)
}

/// The versions of the linked compressors, for messages.
pub fn versions() -> String {
    format!(
        "liblzma {}, zstd {}, zlib {}",
        rexz::version(),
        zstd::zstd_safe::version_string(),
        super::zlib::version()
    )
}

/// A sink comparing chunks of output with `expected`, for the encoders'
/// `sink`; [`Matcher::whole`] says whether all of it matched.
pub(super) struct Matcher<'a> {
    expected: &'a [u8],
    at: usize,
}

impl<'a> Matcher<'a> {
    pub(super) fn new(expected: &'a [u8]) -> Self {
        Matcher { expected, at: 0 }
    }

    /// Whether `chunk` is the next bytes expected.
    pub(super) fn next(&mut self, chunk: &[u8]) -> bool {
        let same = self.expected.get(self.at..self.at + chunk.len()) == Some(chunk);
        self.at += chunk.len();
        same
    }

    /// Whether the encoder, having `finished`, made exactly the bytes expected.
    pub(super) fn whole(&self, finished: io::Result<bool>) -> bool {
        matches!(finished, Ok(true)) && self.at == self.expected.len()
    }
}

#[cfg(test)]
mod tests;
