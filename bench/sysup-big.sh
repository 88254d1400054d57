#!/usr/bin/env bash
# sysup on the big corpus pair (tree-A → tree-B), one row per step:
#   build B, diff A→B, patch (pipe), apply (full A, then the patch onto A),
# each with wall time and peak RSS from /usr/bin/time. Compare with the peer
# rows of bench/peers.sh (same corpus) in BENCHMARKS.md.
#   usage: bench/sysup-big.sh /path/to/sysup   (corpus: bench/make-corpus.sh)
set -euo pipefail
SYSUP=${1:?usage: $0 /path/to/sysup}
here=$(cd "$(dirname "$0")" && pwd)
c=$here/work/corpus
w=$here/work/scratch/sysup-big
rm -rf "$w"; mkdir -p "$w/out" "$w/root"
spec=$w/world.toml
printf 'name = "world"\narch = "x86_64"\nexclude = ["proc/**", "sys/**", "dev/pts/**", "tmp/**"]\nconfig = ["etc/**"]\n' > "$spec"
t() { local label=$1; shift; /usr/bin/time -f "$label\t%e\t%M" "$@" 2>>"$w/times.tsv" >/dev/null; }
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
t "build A" "$SYSUP" build "$spec" --tree "$c/tree-A" --rev A --date 20260101 --out "$w/out"
t "build B" "$SYSUP" build "$spec" --tree "$c/tree-B" --rev B --date 20260102 --out "$w/out"
A=$w/out/world-A-20260101.tar.gz B=$w/out/world-B-20260102.tar.gz P=$w/out/world-A-20260101_B-20260102.patch
t "diff A->B" "$SYSUP" diff "$A" "$B" --out "$w/out"
t "patch (pipe)" sh -c "gunzip -c '$A' | '$SYSUP' patch '$P' > '$w/B.tar'"
gunzip -c "$B" | cmp - "$w/B.tar"
t "apply full A" "$SYSUP" apply --root "$w/root" "$A"
sync
t "apply patch A->B" sh -c "'$SYSUP' apply --root '$w/root' '$P' && sync"
t "fresh extract B (gunzip|tar -x && sync)" sh -c "mkdir -p '$w/x' && gunzip -c '$B' | tar -xpf - -C '$w/x' && sync"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
ls -l "$A" "$B" "$P" | awk '{print $5"\t"$9}'
printf 'step\twall_s\tmax_rss_kb\n'; cat "$w/times.tsv"
