//! [`Resolver`]: the directories of one phase of an apply, opened once
//! and cached.
//!
//! Invariants: a directory the dist describes, or one below a directory
//! staged under another name, is opened from its parent without following
//! a symlink; any other is resolved inside the root, and only after every
//! dist directory on its way was found a real directory;
//! at most [`CACHE_MAX`] descriptors are held, besides pinned ones.

use std::io;
use std::rc::Rc;

use super::{Dir, Root};

/// Opens the directories of one phase of an apply, caching them.
///
/// A directory the dist describes (`dist_dirs`) is opened from its parent
/// without following a symlink; any other directory (the root's own layout)
/// is resolved inside the root, after checking that every dist directory on
/// its way is a real directory. Staging can point a dist directory at its
/// staged stand-in with [`Resolver::insert`].
pub struct Resolver<'a> {
    root: &'a Root,
    dist_dirs: std::collections::HashSet<Vec<u8>>,
    /// Shared handles: handing one out is a reference count, not a dup(2)
    /// (an apply asks for a directory once per entry). At most
    /// [`CACHE_MAX`]: a world has more directories than a shell's default
    /// descriptor limit (1024) allows open at once.
    cache: std::collections::HashMap<Vec<u8>, Rc<Dir>>,
    /// Directories set with [`Resolver::insert`], which cannot be opened
    /// again by their path; never evicted.
    pinned: std::collections::HashMap<Vec<u8>, Rc<Dir>>,
}

/// Most directories a [`Resolver`] keeps open; past it the cache starts
/// over (tar order visits a directory's entries together, so it rarely has
/// to reopen one).
pub const CACHE_MAX: usize = 128;

impl<'a> Resolver<'a> {
    pub fn new(root: &'a Root, dist_dirs: impl IntoIterator<Item = Vec<u8>>) -> Self {
        Resolver {
            root,
            dist_dirs: dist_dirs.into_iter().collect(),
            cache: std::collections::HashMap::new(),
            pinned: std::collections::HashMap::new(),
        }
    }

    /// Whether the dist describes `rel` as a directory.
    pub fn is_dist_dir(&self, rel: &[u8]) -> bool {
        self.dist_dirs.contains(rel)
    }

    /// Use `dir` for `rel` from now on (a directory staged under another
    /// name; one created under its own name inside it needs no entry).
    pub fn insert(&mut self, rel: &[u8], dir: Dir) {
        self.cache.remove(rel);
        self.pinned.insert(rel.to_vec(), Rc::new(dir));
    }

    /// Forget every directory, inserted ones too (after renames changed
    /// what paths mean).
    pub fn clear(&mut self) {
        self.cache.clear();
        self.pinned.clear();
    }

    /// The directory at root-relative `rel`.
    pub fn dir(&mut self, rel: &[u8]) -> io::Result<&Dir> {
        self.shared_ref(rel).map(|d| &**d)
    }

    /// [`Resolver::dir`] as a handle the caller may keep while it uses the
    /// resolver again.
    pub fn shared(&mut self, rel: &[u8]) -> io::Result<Rc<Dir>> {
        self.shared_ref(rel).map(Rc::clone)
    }

    fn shared_ref(&mut self, rel: &[u8]) -> io::Result<&Rc<Dir>> {
        if !self.pinned.contains_key(rel) && !self.cache.contains_key(rel) {
            let d = self.open(rel)?;
            if self.cache.len() >= CACHE_MAX {
                self.cache.clear();
            }
            self.cache.insert(rel.to_vec(), Rc::new(d));
        }
        Ok(match self.pinned.get(rel) {
            Some(d) => d,
            None => &self.cache[rel],
        })
    }

    /// Whether a directory above `rel` was set with [`Resolver::insert`].
    fn below_pinned(&self, rel: &[u8]) -> bool {
        !self.pinned.is_empty()
            && rel
                .iter()
                .enumerate()
                .filter(|(_, &c)| c == b'/')
                .any(|(i, _)| self.pinned.contains_key(&rel[..i]))
    }

    fn open(&mut self, rel: &[u8]) -> io::Result<Dir> {
        if rel.is_empty() {
            return self.root.dir().try_clone();
        }
        let (parent, name) = match rel.iter().rposition(|&c| c == b'/') {
            Some(i) => (&rel[..i], &rel[i + 1..]),
            None => (&[][..], rel),
        };
        // A dist directory, and anything below a directory staged under
        // another name (where the path means the staged tree, not what the
        // live tree's links make of it): from its parent, no link followed.
        if self.dist_dirs.contains(rel) || self.below_pinned(rel) {
            let parent = parent.to_vec();
            return self.dir(&parent)?.open_subdir(name);
        }
        // Every dist directory on the way must be a real directory.
        let prefixes: Vec<Vec<u8>> = rel
            .iter()
            .enumerate()
            .filter(|(_, &c)| c == b'/')
            .map(|(i, _)| rel[..i].to_vec())
            .filter(|p| self.dist_dirs.contains(p))
            .collect();
        for p in prefixes {
            self.dir(&p)?;
        }
        self.root.resolve_dir(rel)
    }
}
