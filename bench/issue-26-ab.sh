#!/bin/bash
# Issue 26's run on the bench world pair (bench/log/issue-26.md): sysup diff with and
# without reference prediction, with xz; then `sysup patch` alternated with `hpatchz`
# (ROUNDS rounds, default 3: the two take well under a second each). With HD=1 also
# HDiffPatch (lzma2, zstd), xdelta3 -9 and qbsdiff/qbspatch, one run each. Rows are
# appended to times.tsv: tag, name, wall s, peak RSS KiB, user s, sys s, exit status.
# usage: [HD=1] [ROUNDS=n] [AB=dir] [TOOLS=dir] bench/issue-26-ab.sh SYSUP_BINARY TAG
# Works in AB (default bench/work/ab), which must hold world-1-20260101.tar.gz and
# world-2-20260101.tar.gz (e.g. copied from bench/work/scratch/big/sysup-dists after
# `bench/peers.sh big`); HDiffPatch from /work/shared/peers/build-hdiffpatch.sh,
# qbsdiff/qbspatch from TOOLS/bin (default bench/work/tools, where bench/peers.sh
# installs them).
set -u
S=$1; TAG=$2
S=$(realpath "$S")
HERE=$(cd "$(dirname "$0")" && pwd)
TOOLS=${TOOLS:-$HERE/work/tools}
H=$(/work/shared/peers/build-hdiffpatch.sh "$HERE/work/peers-build")
cd "${AB:-$HERE/work/ab}" || exit 1
[ -f w1.tar ] || gunzip -c world-1-20260101.tar.gz > w1.tar
[ -f w2.tar ] || gunzip -c world-2-20260101.tar.gz > w2.tar
t() { # name cmd...
  local n=$1; shift
  local t0=$(date +%s.%N)
  /usr/bin/time -f "%M %U %S" -o time.tmp "$@" > /dev/null 2>err.tmp; local rc=$?
  local t1=$(date +%s.%N)
  printf '%s\t%s\t%.2f\t%s\t%s\n' "$TAG" "$n" "$(echo "$t1 - $t0" | bc)" "$(cat time.tmp | tr ' ' '\t')" "rc=$rc" >> times.tsv
}
mkdir -p $TAG
if [ "${HD:-0}" = 1 ]; then
  t hdiffz-lzma2 $H/hdiffz -m-6 -SD -c-lzma2-9-16m -p-2 -f w1.tar w2.tar hd-lzma2.hdiff
  t hdiffz-zstd $H/hdiffz -m-6 -SD -c-zstd-21-24 -p-2 -f w1.tar w2.tar hd-zstd.hdiff
  t xdelta3-e9 xdelta3 -e -9 -S djw -f -s w1.tar w2.tar xd.vcdiff
  if [ -x "$TOOLS/bin/qbsdiff" ]; then
    t qbsdiff "$TOOLS/bin/qbsdiff" w1.tar w2.tar qbs.patch
    t qbspatch "$TOOLS/bin/qbspatch" w1.tar qbs.out qbs.patch
    cmp qbs.out w2.tar && echo "qbspatch ok" >> times.tsv; rm -f qbs.out
  else
    echo "qbsdiff: not in $TOOLS/bin (bench/peers.sh installs it)" >> times.tsv
  fi
fi
t sysup-diff $S diff -q world-1-20260101.tar.gz world-2-20260101.tar.gz --out $TAG
t sysup-diff-noxref env SYSUP_DIFF_NO_XREF=1 $S diff -q world-1-20260101.tar.gz world-2-20260101.tar.gz --out $TAG/noxref
t sysup-diff-xz $S diff -q --compression xz world-1-20260101.tar.gz world-2-20260101.tar.gz --out $TAG/xz
P=$TAG/world-1-20260101_2-20260101.patch
for r in $(seq 1 "${ROUNDS:-3}"); do
  if [ -f hd-zstd.hdiff ]; then
    t hpatchz-zstd $H/hpatchz -f w1.tar hd-zstd.hdiff hd.out
    cmp hd.out w2.tar && echo "hpatchz ok" >> times.tsv; rm -f hd.out
  fi
  t sysup-patch sh -c "$S patch $P < w1.tar > sysup.out"
  cmp sysup.out w2.tar && echo "$TAG sysup patch ok" >> times.tsv; rm -f sysup.out
  t sysup-patch-noxref sh -c "$S patch $TAG/noxref/world-1-20260101_2-20260101.patch < w1.tar > sysup.out"
  cmp sysup.out w2.tar && echo "$TAG sysup patch noxref ok" >> times.tsv; rm -f sysup.out
  # The same patch as a pipeline's filter: the old tar from a pipe, so it is hashed as it streams.
  t sysup-patch-pipe sh -c "cat w1.tar | $S patch $P > sysup.out"
  cmp sysup.out w2.tar && echo "$TAG sysup patch pipe ok" >> times.tsv; rm -f sysup.out
done
ls -l $TAG/*.patch $TAG/*/*.patch *.hdiff *.vcdiff qbs.patch 2>/dev/null >> times.tsv
