#!/usr/bin/env bash
# Run cargo-fuzz targets, each for a bounded time, and report what happened.
#   fuzz/run.sh TARGET|all SECONDS [libFuzzer options...]
# e.g. `fuzz/run.sh all 600` (10 minutes each) or `fuzz/run.sh patch_apply 3600`.
#
# Per target: the corpus grows in fuzz/corpus/<target>/ (seeded from
# fuzz/seeds/<target>/, made by fuzz/seed.sh when missing), crashes land in
# fuzz/artifacts/<target>/ and the libFuzzer log in
# fuzz/artifacts/<target>/run.log. One summary line per target:
#   <target>: <executions> execs in <s> s (<rate>/s), corpus <n>, peak RSS <m> MB, crashes <k>
# Exit status 1 when any target crashed (or failed to build).
#
# Works on the stable toolchain: with `--sanitizer none` cargo-fuzz passes
# only stable rustc flags. RUSTC_BOOTSTRAP=1 is for FUZZ_SANITIZER=address
# (-Zsanitizer; with FUZZ_TOOLCHAIN=+nightly for instance), untried here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
all=(patch_apply manifest_parse index_verify dist_stage)
[ $# -ge 2 ] || { echo "usage: $0 TARGET|all SECONDS [libFuzzer options...]" >&2; exit 2; }
which=$1 secs=$2
shift 2
if [ "$which" = all ]; then targets=("${all[@]}"); else targets=("$which"); fi
sanitizer=${FUZZ_SANITIZER:-none}
toolchain=${FUZZ_TOOLCHAIN:-}
export RUSTC_BOOTSTRAP=1
cd "$here/.."
[ -d fuzz/seeds ] || bash fuzz/seed.sh
status=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" "fuzz/seeds/$t"
    log="fuzz/artifacts/$t/run.log"
    # libFuzzer's failure artifacts; `slow-unit-*` files only mark slow inputs.
    failures() { find "fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' \
        -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l; }
    before=$(failures)
    rc=0
    # shellcheck disable=SC2086
    cargo $toolchain fuzz run --sanitizer "$sanitizer" "$t" \
        "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 \
        -print_final_stats=1 "$@" >"$log" 2>&1 || rc=$?
    after=$(failures)
    # The harnesses' scratch directories (fuzz/src/lib.rs), once their
    # process is gone: libFuzzer exits without running destructors.
    for d in /dev/shm/fuzz-"$t"-* "${TMPDIR:-/tmp}"/fuzz-"$t"-*; do
        [ -d "$d" ] && ! kill -0 "${d##*-}" 2>/dev/null && rm -rf "$d"
    done
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
    crashes=$((after - before))
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes="? (exit $rc, see $log)"; fi
    printf '%s: %s execs in %s s (%s/s), corpus %s, peak RSS %s MB, crashes %s\n' \
        "$t" "${execs:-?}" "${took:-$secs}" \
        "$([ -n "${execs:-}" ] && [ "${took:-0}" -gt 0 ] && echo $((execs / took)) || echo ?)" \
        "$corpus" "${rss:-?}" "$crashes"
    if [ "$rc" -ne 0 ]; then
        status=1
        grep -E 'panicked|ERROR|SUMMARY|Test unit written|out-of-memory|timeout' "$log" | head -20 >&2 || true
    fi
done
exit $status
