#!/usr/bin/env bash
# Alternated diff and patch timing on the big pair (figures: BENCHMARKS.md "Diff"; the runs: bench/log/session-07.md, session-08.md):
#   bench/diff-ab.sh ROUNDS SYSUP_BINARY...
# Each round times `xdelta3 -e -9 -S djw` on the two GNU tars, then each binary's
# `sysup diff` of the two sysup dists; then `xdelta3 -d` and each binary's
# `sysup patch` with the old tar read from tmpfs. Every line gives wall, user+system
# seconds, peak RSS and the steal ticks (/proc/stat) the step saw, and each sysup
# time as a ratio to xdelta3's in the same round: on this VM, whose speed drifts by
# 20% within minutes, only same-round ratios compare. At the end: each binary's patch
# size and MD5 (two builds that should agree, must), and every `sysup patch` output
# compared with the real new tar.
# Needs bench/peers.sh big to have made the sysup dists (scratch/big/sysup-dists).
# SCRATCH (default /dev/shm/sysup-diff-ab) holds the old tar and outputs (~2 GB).
# ONLY=patch: make the patches once, untimed, then time only the patch steps (a
# round takes seconds instead of a minute, so many more rounds fit).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
C=$here/work/corpus D=$here/work/scratch/big/sysup-dists
dir=${SCRATCH:-/dev/shm/sysup-diff-ab}
rounds=$1; shift
old=$D/world-1-20260101.tar.gz new=$D/world-2-20260101.tar.gz
name=world-1-20260101_2-20260101.patch
[ -f "$old" ] && [ -f "$new" ] || { echo "no dists in $D: run bench/peers.sh big first" >&2; exit 1; }
steal() { awk '/^cpu /{print $9}' /proc/stat; }
# timed CMD: "wall cpu rssMiB steal"; a failing command stops the run.
timed() {
    local s0 out
    s0=$(steal)
    /usr/bin/time -o "$dir/time" -f "%e %U %S %M" bash -c "$1" >/dev/null 2>"$dir/err" ||
        { echo "FAILED: $1" >&2; cat "$dir/err" >&2; exit 1; }
    read -r w u s m <"$dir/time"
    echo "$w $(echo "$u + $s" | bc) $((m / 1024)) $(($(steal) - s0))"
}
ratio() { echo "scale=3; $1 / $2" | bc; }
mkdir -p "$dir"
gzip -dc "$old" >"$dir/old.tar"
# diff round: xdelta3 -9, then each binary's diff (timed lines, or untimed with ONLY=patch)
diffs() {
    read -r xw xc xm xs <<<"$(timed "xdelta3 -f -e -9 -S djw -s $C/tree-A.tar $C/tree-B.tar $dir/x.patch")"
    line="r$1 $(date +%H:%M:%S) diff: xdelta3 ${xw}s cpu $xc ${xm}M st $xs"
    i=0
    for S in "${bins[@]}"; do
        i=$((i + 1))
        rm -rf "$dir/p$i" && mkdir -p "$dir/p$i"
        read -r w c m s <<<"$(timed "$S diff $old $new --out $dir/p$i")"
        line="$line | #$i ${w}s cpu $c ${m}M st $s = $(ratio "$w" "$xw")"
    done
    echo "$line"
}
bins=("$@")
[ "${ONLY:-}" = patch ] && diffs 0 >/dev/null
for r in $(seq 1 "$rounds"); do
    [ "${ONLY:-}" = patch ] || diffs "$r"
    read -r xw xc xm xs <<<"$(timed "xdelta3 -f -d -s $C/tree-A.tar $dir/x.patch $dir/x.out")"
    line="r$r $(date +%H:%M:%S) patch: xdelta3 -d ${xw}s cpu $xc ${xm}M st $xs"
    i=0
    for S in "$@"; do
        i=$((i + 1))
        read -r w c m s <<<"$(timed "$S patch $dir/p$i/$name < $dir/old.tar > $dir/s$i.out")"
        line="$line | #$i ${w}s cpu $c ${m}M st $s = $(ratio "$w" "$xw")"
    done
    echo "$line"
done
i=0
for S in "$@"; do
    i=$((i + 1))
    echo "#$i $S: patch $(stat -c %s "$dir/p$i/$name") bytes, md5 $(md5sum <"$dir/p$i/$name" | cut -c1-32)"
    cmp "$dir/s$i.out" <(gzip -dc "$new") && echo "#$i patch output = the new tar"
done
cmp "$dir/x.out" "$C/tree-B.tar" && echo "xdelta3 output = tree-B.tar"
rm -rf "$dir"
