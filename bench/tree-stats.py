#!/usr/bin/env python3
"""bench/tree-stats.py OLD_TREE NEW_TREE — what an upgrade changed, by path.

Prints counts and bytes of regular files that are identical, changed (same path,
different content), added and removed, plus added/removed files whose content
exists in the other tree under another path (moves/renames), and the largest
changed files. Symlinks, directories and special files are counted by type.
Used by make-corpus.sh to describe the pair in bench/work/corpus/<pair>.stats.
"""
import hashlib
import os
import stat
import sys


def scan(root):
    out = {}
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for n in dirs + sorted(files):
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for b in iter(lambda: f.read(1 << 20), b""):
                        h.update(b)
                out[rel] = ("f", st.st_size, h.hexdigest())
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", 0, os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", 0, "")
            else:
                out[rel] = ("s", 0, "")
    return out


def mb(n):
    return f"{n / 1048576:9.1f} MB"


def main():
    a, b = scan(sys.argv[1]), scan(sys.argv[2])
    fa = {p: v for p, v in a.items() if v[0] == "f"}
    fb = {p: v for p, v in b.items() if v[0] == "f"}
    same = [p for p in fa if p in fb and fa[p][2] == fb[p][2]]
    changed = [p for p in fa if p in fb and fa[p][2] != fb[p][2]]
    removed = [p for p in fa if p not in fb]
    added = [p for p in fb if p not in fa]
    hashes_a = {v[2] for v in fa.values()}
    moved = [p for p in added if fb[p][2] in hashes_a]
    print(f"files in old: {len(fa):6d} {mb(sum(v[1] for v in fa.values()))}")
    print(f"files in new: {len(fb):6d} {mb(sum(v[1] for v in fb.values()))}")
    print(f"identical:    {len(same):6d} {mb(sum(fb[p][1] for p in same))}")
    print(f"changed:      {len(changed):6d} {mb(sum(fb[p][1] for p in changed))} (new size)")
    print(f"added:        {len(added):6d} {mb(sum(fb[p][1] for p in added))}"
          f"  (of which {len(moved)} with content found in old under another path)")
    print(f"removed:      {len(removed):6d} {mb(sum(fa[p][1] for p in removed))}")
    for t, name in (("l", "symlinks"), ("d", "dirs"), ("s", "special")):
        na = sum(1 for v in a.values() if v[0] == t)
        nb = sum(1 for v in b.values() if v[0] == t)
        print(f"{name:13s} old {na:6d} new {nb:6d}")
    print("largest changed files (new size):")
    for p in sorted(changed, key=lambda p: -fb[p][1])[:15]:
        print(f"  {mb(fb[p][1])}  {p}")
    print("largest added files:")
    for p in sorted(added, key=lambda p: -fb[p][1])[:10]:
        print(f"  {mb(fb[p][1])}  {p}")


if __name__ == "__main__":
    main()
