#!/bin/bash
# How `sysup patch` and `hpatchz` use the cores (bench/log/issue-26.md, "Cores"):
# each run alternated on one core (`taskset -c 0`) and on every core, the old
# tar from a file on stdin, the output to a file; then one `perf sched` run of
# each tool on every core for its CPU by thread. Prints: cores, tool, wall s,
# user s, sys s, peak RSS KiB. Needs the files issue-26-ab.sh leaves in AB
# (w1.tar, w2.tar, hd-zstd.hdiff, TAG/world-1-20260101_2-20260101.patch).
# usage: [ROUNDS=n] [AB=dir] bench/patch-cores.sh SYSUP_BINARY TAG
set -eu
S=$(realpath "$1"); TAG=$2
HERE=$(cd "$(dirname "$0")" && pwd)
H=$(/work/shared/peers/build-hdiffpatch.sh "$HERE/work/peers-build")
cd "${AB:-$HERE/work/ab}"
P=$TAG/world-1-20260101_2-20260101.patch
OUT=${OUT:-/dev/shm/patch-cores.out}
t() { # cores name cmd
  local c=$1 n=$2; shift 2
  local pin=()
  [ "$c" = 1 ] && pin=(taskset -c 0)
  /usr/bin/time -f "%e %U %S %M" -o time.tmp "${pin[@]}" sh -c "$*" > /dev/null
  echo "$c $n $(cat time.tmp)"
  cmp "$OUT" w2.tar
  rm -f "$OUT"
}
for r in $(seq 1 "${ROUNDS:-3}"); do
  for c in 1 2; do
    t "$c" hpatchz "$H/hpatchz -f w1.tar hd-zstd.hdiff $OUT"
    t "$c" sysup-patch "$S patch $P < w1.tar > $OUT"
  done
done
# CPU by thread (ms): perf's per-task run time, summed by thread name.
for n in hpatchz sysup-patch; do
  case $n in
    hpatchz) cmd="$H/hpatchz -f w1.tar hd-zstd.hdiff $OUT" ;;
    *) cmd="$S patch $P < w1.tar > $OUT" ;;
  esac
  perf sched record -q -o sched.data -- sh -c "$cmd" > /dev/null 2>&1
  echo "$n threads:"
  perf sched timehist -i sched.data -s 2>/dev/null |
    awk '/Runtime summary/{on=1} on && ($1 ~ /^(sysup|hpatchz)/){name=$1; sub(/\[.*/,"",name); ms[name]+=$4}
         END{for (k in ms) printf "  %s %.0f ms\n", k, ms[k]}' | sort -k2 -rn
  rm -f sched.data "$OUT"
done
