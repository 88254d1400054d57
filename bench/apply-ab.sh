#!/usr/bin/env bash
# Alternated apply timing on the big pair (figures: BENCHMARKS.md "Apply"; the runs: bench/log/session-05.md):
#   bench/apply-ab.sh ROUNDS SYSUP_BINARY...
# Each round times a fresh `gunzip -c tree-B.tar.gz | tar -xpf - && sync`, then, for
# each binary in turn, installs world-1 into a fresh root (untimed) and times
# `sysup apply` of the world-1 -> world-2 patch `&& sync`. Alternating cancels most of
# this VM's slow drifts, which single runs do not. Prints wall, user and system
# seconds, peak RSS, the steal ticks (/proc/stat) the step saw, and the base's size.
# A binary given as BIN@SETTING runs with `[apply] base-compression = "SETTING"` in
# the root's etc/sysup.conf (written before the install), e.g. /path/sysup@fast.
# Needs bench/peers.sh big to have made the sysup dists and patch. AB_DIR (default
# /var/tmp/sysup-ab) holds the roots: put it on tmpfs to leave the disk out. With
# CPUS=LIST (e.g. CPUS=0) every timed command runs under `taskset -c LIST`.
# Last, per build: apply / extract of each round and their median, the CPU
# (user + system) and peak RSS ranges.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=$here/work/scratch/big C=$here/work/corpus
dir=${AB_DIR:-/var/tmp/sysup-ab}
rounds=$1; shift
steal() { awk '/^cpu /{print $9}' /proc/stat; }
pin=()
[ -n "${CPUS:-}" ] && pin=(taskset -c "$CPUS")
timed() { /usr/bin/time -f "%e %U %S %MkB" "${pin[@]}" bash -c "$1" 2>&1 >/dev/null | tail -1; }
mkdir -p "$dir"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for r in $(seq 1 "$rounds"); do
    rm -rf "$dir/x" && mkdir -p "$dir/x" && sync
    s0=$(steal)
    t=$(timed "gunzip -c $C/tree-B.tar.gz | tar -xpf - -C $dir/x && sync")
    echo "r$r extract $t steal+$(($(steal) - s0))" | tee -a "$log"
    rm -rf "$dir/x"
    for arg in "$@"; do
        S=${arg%@*}
        rm -rf "$dir/r" && mkdir -p "$dir/r"
        if [[ $arg == *@* ]]; then
            mkdir -p "$dir/r/etc"
            printf '[apply]\nbase-compression = "%s"\n' "${arg##*@}" > "$dir/r/etc/sysup.conf"
        fi
        "$S" apply --root "$dir/r" "$B/sysup-dists/world-1-20260101.tar.gz" >/dev/null && sync
        s0=$(steal)
        t=$(timed "'$S' apply --root '$dir/r' '$B/sysup-patches/world-1-20260101_2-20260101.patch' && sync")
        echo "r$r $(basename "$arg") $t steal+$(($(steal) - s0)) base=$(stat -c %s "$dir"/r/var/db/sysup/bases/world-2-*.tar.gz)" | tee -a "$log"
    done
done
# The summary: each apply against its own round's extract.
awk '$2 == "extract" { ex[$1] = $3; next }
    { b = $2; n[b]++; r[b, n[b]] = $3 / ex[$1]; c = $4 + $5; m = $6 + 0
      if (n[b] == 1 || c < cmin[b]) cmin[b] = c; if (c > cmax[b]) cmax[b] = c
      if (n[b] == 1 || m < mmin[b]) mmin[b] = m; if (m > mmax[b]) mmax[b] = m }
    END { for (b in n) {
        k = n[b]; line = ""
        for (i = 1; i <= k; i++) { v[i] = r[b, i]; line = line sprintf(" %.3f", v[i]) }
        for (i = 2; i <= k; i++) for (j = i; j > 1 && v[j] < v[j-1]; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
        med = (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
        printf "%s: apply / extract%s, median %.3f; CPU %.2f-%.2f s; peak RSS %.1f-%.1f MiB\n", \
            b, line, med, cmin[b], cmax[b], mmin[b] / 1024, mmax[b] / 1024 } }' "$log"
