#!/usr/bin/env bash
# bench/peers.sh — measure peer tools (and sysup, when SYSUP is set) on a corpus pair.
#
# Usage:
#   bench/peers.sh [small|big|all]        (default: small)
# Environment:
#   SYSUP=/path/to/sysup   also run the sysup rows and print sysup/peer ratios;
#                          unset = peer rows only ("SYSUP not set" is printed)
#   BSDIFF_BIG=auto|yes|no C bsdiff on the big pair: auto = only when MemAvailable
#                          is above 18x the old tar (bsdiff 4.3 needs ~17x); default auto
#   ONLY="qbsdiff xdelta3 ..."  run only these peer groups (qbsdiff xdelta3 xdelta3B
#                          zstd bsdiff build extract classic sysup); default all
#   RUNS=N                 repeat each timed command N times, keep the fastest (default 1)
#   TIMEOUT=SECONDS        per command (default 14400)
#   KEEP=1                 keep decoded outputs in bench/work/scratch (default: deleted
#                          once verified)
# Inputs: bench/work/corpus/{tree,small}-{A,B}{,.tar,.tar.gz} from bench/make-corpus.sh.
# Outputs (bench/work/results/):
#   <pair>-<UTC stamp>.tsv   tool operation input bytes wall_s max_rss_kb cpu_s status
#   <pair>-<UTC stamp>.txt   machine + tool versions, the table, ratios
#   latest-<pair>.tsv/.txt   copies of the last run
#   latest-<pair>-peers.tsv  the last run that measured peer rows; a sysup-only run
#                          (ONLY=sysup) takes its ratios against it (or PEERS_TSV=file)
# Every timed command runs under /usr/bin/time -v; wall_s is measured around it with
# date +%s.%N, max_rss_kb is time's "Maximum resident set size" — for a pipeline run
# as sh -c '...' that is the largest single process of the pipeline, not the sum —
# and cpu_s is time's user + system seconds (all processes; less sensitive than
# wall_s to other load on the machine).
# Every decoded output is compared with cmp against the real new tar (status ok or
# MISMATCH). The page cache is warm (the corpus fits in RAM; caches are not dropped).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${WORK:-$HERE/work}
CORPUS=$WORK/corpus
TOOLS=$WORK/tools
RESULTS=$WORK/results
SCRATCH_ROOT=$WORK/scratch
RUNS=${RUNS:-1}
TIMEOUT=${TIMEOUT:-14400}
BSDIFF_BIG=${BSDIFF_BIG:-auto}
QBSDIFF_VERSION=1.4.4
export LC_ALL=C PATH="$TOOLS/bin:$PATH"

log() { printf '[peers %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }

# ---------------------------------------------------------------- tools
ensure_tools() {
  local missing=() t
  for t in xdelta3 zstd bsdiff bspatch gzip tar; do command -v "$t" >/dev/null || missing+=("$t"); done
  [ -x /usr/bin/time ] || missing+=(time)
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install: ${missing[*]}"
    apt-get install -y -q "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
  fi
  if ! [ -x "$TOOLS/bin/qbsdiff" ] || ! [ -x "$TOOLS/bin/qbspatch" ]; then
    # qbsdiff ships its CLIs behind the "cmd" feature. --locked cannot be used with
    # 1.4.4: its packaged Cargo.lock pins a dev-dependency that requires qbsdiff 1.4.3.
    log "cargo install qbsdiff $QBSDIFF_VERSION --features cmd -> $TOOLS/bin"
    cargo install -q qbsdiff --version "$QBSDIFF_VERSION" --features cmd --root "$TOOLS" \
      > "$WORK/qbsdiff-install.log" 2>&1 || { tail "$WORK/qbsdiff-install.log"; die "cargo install qbsdiff failed"; }
  fi
}

# ---------------------------------------------------------------- measuring
# measure TOOL OP INPUT OUTFILE CMD  — run CMD (a sh -c string) RUNS times; append a
# TSV row. bytes = size of OUTFILE after the run ("-" when OUTFILE is "-"), or the
# number given as OUTFILE when it starts with "=".
LAST_WALL="" LAST_RSS="" LAST_RC=0
measure() {
  local tool=$1 op=$2 input=$3 outfile=$4 cmd=$5 i t0 t1 wall rss cpu rc best="" bestrss=0 bestcpu=0 tf
  tf=$(mktemp)
  log "$tool $op ($input): $cmd"
  for ((i = 0; i < RUNS; i++)); do
    # Write back what earlier steps left dirty: a command timed with a final
    # `sync` must not pay for another tool's output.
    sync
    t0=$(date +%s.%N)
    timeout "$TIMEOUT" /usr/bin/time -v -o "$tf" sh -c "$cmd"
    rc=$?
    t1=$(date +%s.%N)
    wall=$(echo "$t1 - $t0" | bc -l)
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tf")
    cpu=$(awk -F': ' '/User time \(seconds\)|System time \(seconds\)/ {c+=$2} END {printf "%.2f", c}' "$tf")
    [ -n "$rss" ] || rss=0
    [ "$rc" = 0 ] || break
    if [ -z "$best" ] || [ "$(echo "$wall < $best" | bc -l)" = 1 ]; then best=$wall bestcpu=$cpu; fi
    [ "$rss" -gt "$bestrss" ] && bestrss=$rss
  done
  rm -f "$tf"
  local bytes=- status=ok
  if [ "$rc" != 0 ]; then
    status="FAIL(rc=$rc)"; [ "$rc" = 124 ] && status="TIMEOUT(${TIMEOUT}s)"
    best=$wall; bestrss=$rss; bestcpu=${cpu:-0}
  fi
  case $outfile in
    -) ;;
    =*) bytes=${outfile#=} ;;
    *) [ -e "$outfile" ] && bytes=$(stat -c %s "$outfile") ;;
  esac
  LAST_WALL=$(printf '%.2f' "$best") LAST_RSS=$bestrss LAST_RC=$rc
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$op" "$input" "$bytes" "$LAST_WALL" "$LAST_RSS" "$bestcpu" "$status" >> "$TSV"
  log "  -> bytes=$bytes wall=${LAST_WALL}s cpu=${bestcpu}s rss=${LAST_RSS}kB $status"
  return "$rc"
}
# note TOOL OP INPUT STATUS — a row for something that was not run
note() { printf '%s\t%s\t%s\t-\t-\t-\t-\t%s\n' "$1" "$2" "$3" "$4" >> "$TSV"; log "$1 $2: $4"; }
# verify OUT: cmp OUT with the new tar, rewrite the status of the last row on mismatch
verify() {
  if ! cmp -s "$1" "$NEW"; then
    log "  !! $1 differs from $NEW"
    sed -i '$ s/\tok$/\tMISMATCH/' "$TSV"
  fi
  [ -n "${KEEP:-}" ] || rm -f "$1"
}
# sum_rows TOOL OP INPUT OUT STEP_OPS... — a total row for a multi-step pipeline
sum_rows() {
  local tool=$1 op=$2 input=$3 bytes=$4; shift 4
  awk -F'\t' -v t="$tool" -v op="$op" -v in_="$input" -v b="$bytes" -v steps=" $* " '
    $1==t && index(steps, " " $2 " ") { w+=$5; if ($6>r) r=$6; c+=$7; if ($8!="ok") s=$8; n++ }
    END { if (s=="") s="ok"; printf "%s\t%s\t%s\t%s\t%.2f\t%d\t%.2f\t%s\n", t, op, in_, b, w, r, c, s }' \
    "$TSV" >> "$TSV"
}

pow2_at_least() { local n=$1 p=67108864; while [ "$p" -lt "$n" ]; do p=$((p * 2)); done; echo "$p"; }

# ---------------------------------------------------------------- one pair
run_pair() {
  local pair=$1 pa pb
  case $pair in
    small) pa=small-A pb=small-B ;;
    big) pa=tree-A pb=tree-B ;;
    *) die "unknown pair $pair (small|big|all)" ;;
  esac
  OLD=$CORPUS/$pa.tar NEW=$CORPUS/$pb.tar
  local OLDGZ=$CORPUS/$pa.tar.gz NEWGZ=$CORPUS/$pb.tar.gz TA=$CORPUS/$pa TB=$CORPUS/$pb
  for f in "$OLD" "$NEW" "$OLDGZ" "$NEWGZ" "$TA" "$TB"; do
    [ -e "$f" ] || die "$f missing: run bench/make-corpus.sh first"
  done
  local S=$SCRATCH_ROOT/$pair stamp
  rm -rf "$S"; mkdir -p "$S" "$RESULTS"
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  TSV=$RESULTS/$pair-$stamp.tsv TXT=$RESULTS/$pair-$stamp.txt
  printf 'tool\toperation\tinput\tbytes\twall_s\tmax_rss_kb\tcpu_s\tstatus\n' > "$TSV"
  LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
  local in="$pa.tar->$pb.tar" osz nsz
  osz=$(stat -c %s "$OLD") nsz=$(stat -c %s "$NEW")
  log "pair $pair: $OLD ($osz B) -> $NEW ($nsz B)"
  # warm the page cache: every tool starts from the same state
  cat "$OLD" "$NEW" "$OLDGZ" "$NEWGZ" > /dev/null

  # ---- whole-tar binary diff tools (uncompressed tars)
  if want qbsdiff; then
    measure qbsdiff diff "$in" "$S/qbsdiff.patch" "qbsdiff '$OLD' '$NEW' '$S/qbsdiff.patch'" &&
      measure qbspatch patch "$in" "$S/qbspatch.out" "qbspatch '$OLD' '$S/qbspatch.out' '$S/qbsdiff.patch'" &&
      verify "$S/qbspatch.out"
  fi
  if want xdelta3; then
    measure xdelta3 diff "$in" "$S/xdelta3.patch" "xdelta3 -f -e -9 -S djw -s '$OLD' '$NEW' '$S/xdelta3.patch'" &&
      measure xdelta3 patch "$in" "$S/xdelta3.out" "xdelta3 -f -d -s '$OLD' '$S/xdelta3.patch' '$S/xdelta3.out'" &&
      verify "$S/xdelta3.out"
  fi
  if want xdelta3B; then
    # not in the brief's list: xdelta3's default source window (-B 64 MiB) cannot see
    # matches further back than that; this variant gives it the whole old tar.
    local B; B=$(pow2_at_least "$osz")
    measure "xdelta3-B$((B >> 20))M" diff "$in" "$S/xdelta3B.patch" "xdelta3 -f -e -9 -S djw -B $B -s '$OLD' '$NEW' '$S/xdelta3B.patch'" &&
      measure "xdelta3-B$((B >> 20))M" patch "$in" "$S/xdelta3B.out" "xdelta3 -f -d -B $B -s '$OLD' '$S/xdelta3B.patch' '$S/xdelta3B.out'" &&
      verify "$S/xdelta3B.out"
  fi
  if want zstd; then
    measure zstd diff "$in" "$S/zstd.patch" "zstd -q -f -19 --long=31 --patch-from='$OLD' '$NEW' -o '$S/zstd.patch'" &&
      measure zstd patch "$in" "$S/zstd.out" "zstd -q -f -d --long=31 --patch-from='$OLD' '$S/zstd.patch' -o '$S/zstd.out'" &&
      verify "$S/zstd.out"
  fi
  local run_bsdiff=yes avail need
  avail=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)   # kB
  need=$(( osz / 1024 * 18 ))                             # kB, ~17x old + slack
  if [ "$pair" = big ]; then
    case $BSDIFF_BIG in
      yes) ;;
      no) run_bsdiff="no (BSDIFF_BIG=no)" ;;
      *) [ "$avail" -gt "$need" ] || run_bsdiff="no (needs ~$((need >> 20)) GiB, $((avail >> 20)) GiB available)" ;;
    esac
  fi
  if want bsdiff; then
    if [ "$run_bsdiff" = yes ]; then
      log "C bsdiff: ~$((need >> 20)) GiB needed, $((avail >> 20)) GiB available"
      measure bsdiff diff "$in" "$S/bsdiff.patch" "bsdiff '$OLD' '$NEW' '$S/bsdiff.patch'" &&
        measure bspatch patch "$in" "$S/bspatch.out" "bspatch '$OLD' '$S/bspatch.out' '$S/bsdiff.patch'" &&
        verify "$S/bspatch.out"
    else
      note bsdiff diff "$in" "skipped: $run_bsdiff"
    fi
  fi

  # ---- building a dist: plain GNU tar + gzip of the new tree
  if want build; then
    measure "tar-czf" build "$pb/" "$S/build.tar.gz" \
      "tar --sort=name --format=posix --numeric-owner --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C '$TB' -czf '$S/build.tar.gz' ."
    rm -f "$S/build.tar.gz"
  fi

  # ---- host side: fresh extract of the full new dist
  if want extract; then
    rm -rf "$S/extract"; mkdir -p "$S/extract"
    measure "gunzip|tar-x" "extract+sync" "$pb.tar.gz" "=$(stat -c %s "$NEWGZ")" \
      "gunzip -c '$NEWGZ' | tar -xpf - -C '$S/extract' && sync"
    rm -rf "$S/extract"
  fi

  # ---- host side: the classic pipeline (2007 proposal with stock tools)
  if want classic; then
    local P="" pin=""
    if [ -s "$S/bsdiff.patch" ]; then P=$S/bsdiff.patch pin="bsdiff.patch"
    elif [ -s "$S/qbsdiff.patch" ]; then P=$S/qbsdiff.patch pin="qbsdiff.patch (bsdiff 4.x format)"
    fi
    if [ -z "$P" ]; then
      note classic pipeline "$in" "skipped: no bsdiff-format patch (run the bsdiff or qbsdiff group)"
    else
      local psz; psz=$(stat -c %s "$P")
      log "classic pipeline with $pin"
      measure classic "1:gunzip>file" "$pa.tar.gz" "$S/c-old.tar" "gunzip -c '$OLDGZ' > '$S/c-old.tar'"
      measure classic "2:bspatch" "$pin" "$S/c-new.tar" "bspatch '$S/c-old.tar' '$S/c-new.tar' '$P'"
      cmp -s "$S/c-new.tar" "$NEW" || { log "  !! classic bspatch output differs"; sed -i '$ s/\tok$/\tMISMATCH/' "$TSV"; }
      rm -rf "$S/c-root"; mkdir -p "$S/c-root"
      measure classic "3:tar-x+sync" "$pb.tar" "-" "tar -xpf '$S/c-new.tar' -C '$S/c-root' && sync"
      measure classic "4:gzip-6" "$pb.tar" "$S/c-new.tar.gz" "gzip -6 -n -c '$S/c-new.tar' > '$S/c-new.tar.gz'"
      sum_rows classic "total" "$in via $pin" "$psz" 1:gunzip\>file 2:bspatch 3:tar-x+sync 4:gzip-6
      rm -rf "$S/c-root" "$S/c-old.tar" "$S/c-new.tar" "$S/c-new.tar.gz"
    fi
  fi

  # ---- sysup
  if want sysup; then run_sysup "$pair" "$pa" "$pb" "$S"; fi

  report "$pair"
  cp "$TSV" "$RESULTS/latest-$pair.tsv"; cp "$TXT" "$RESULTS/latest-$pair.txt"
  if awk -F'\t' 'FNR>1 && $1!="sysup" {f=1} END {exit !f}' "$TSV"; then
    cp "$TSV" "$RESULTS/latest-$pair-peers.tsv"
  fi
  log "results: $TSV"
  log "         $TXT"
}

run_sysup() {
  local pair=$1 pa=$2 pb=$3 S=$4 in="$2->$3"
  if [ -z "${SYSUP:-}" ]; then
    log "SYSUP not set: skipping sysup rows (run with SYSUP=/path/to/sysup to add them)"
    note sysup all "$in" "skipped: SYSUP not set"
    return 0
  fi
  [ -x "$SYSUP" ] || { note sysup all "$in" "skipped: SYSUP=$SYSUP is not executable"; return 0; }
  local TA=$CORPUS/$pa TB=$CORPUS/$pb D=$S/sysup-dists P=$S/sysup-patches R=$S/sysup-root
  local date=20260101 ga gb pf
  mkdir -p "$D" "$P" "$S/spec"
  # a spec per docs/design.md §2 (all keys that matter for a world, defaults spelled out)
  cat > "$S/spec/world.toml" <<'EOF'
name = "world"
arch = "x86_64"
include = ["**"]
exclude = ["tmp/**", "var/tmp/**", "proc/**", "sys/**", "dev/pts/**"]
critical = ["usr/lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"]
config = ["etc/**"]
EOF
  ga=$D/world-1-$date.tar.gz gb=$D/world-2-$date.tar.gz pf=$P/world-1-${date}_2-$date.patch
  measure sysup "build(A)" "$pa/" "$ga" "'$SYSUP' build '$S/spec/world.toml' --tree '$TA' --rev 1 --date $date --out '$D'"
  measure sysup build "$pb/" "$gb" "'$SYSUP' build '$S/spec/world.toml' --tree '$TB' --rev 2 --date $date --out '$D'"
  if [ -s "$ga" ] && [ -s "$gb" ]; then
    measure sysup diff "$in (sysup dists)" "$pf" "'$SYSUP' diff '$ga' '$gb' --out '$P'"
    if [ -s "$pf" ]; then
      measure sysup patch "$in (sysup dists)" "$S/sysup.out" "gunzip -c '$ga' | '$SYSUP' patch '$pf' > '$S/sysup.out'"
      if gunzip -c "$gb" | cmp -s - "$S/sysup.out"; then :; else
        log "  !! sysup patch output differs from gunzip -c $gb"; sed -i '$ s/\tok$/\tMISMATCH/' "$TSV"
      fi
      rm -f "$S/sysup.out"
      # the same filter on the uncompressed old tar, as xdelta3 -d and qbspatch get it
      gunzip -c "$ga" > "$S/sysup-old.tar"
      measure sysup "patch(tar)" "$in (sysup dists)" "$S/sysup.out" "'$SYSUP' patch '$pf' < '$S/sysup-old.tar' > '$S/sysup.out'"
      if gunzip -c "$gb" | cmp -s - "$S/sysup.out"; then :; else
        log "  !! sysup patch output differs from gunzip -c $gb"; sed -i '$ s/\tok$/\tMISMATCH/' "$TSV"
      fi
      rm -f "$S/sysup.out" "$S/sysup-old.tar"
      # host side, beyond the brief: full install (vs fresh extract), then the patch
      # apply (vs the classic pipeline)
      rm -rf "$R"; mkdir -p "$R"
      measure sysup "apply(full)" "$(basename "$ga")" "=$(stat -c %s "$ga")" "'$SYSUP' apply --root '$R' '$ga' && sync" &&
        measure sysup "apply(patch)" "$(basename "$pf")" "=$(stat -c %s "$pf")" "'$SYSUP' apply --root '$R' '$pf' && sync"
      [ -n "${KEEP:-}" ] || rm -rf "$R"
    else
      note sysup patch "$in" "skipped: sysup diff produced no $pf"
    fi
  else
    note sysup diff "$in" "skipped: sysup build produced no $ga / $gb"
  fi
}

# ---------------------------------------------------------------- report
report() {
  local pair=$1
  {
    echo "# sysup bench — peers.sh — pair $pair — $(date -u +%FT%TZ)"
    echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr), $(. /etc/os-release; echo "$PRETTY_NAME")"
    echo "cpu: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "load average at start: $LOAD0   at end: $(cut -d' ' -f1-3 /proc/loadavg)   (other work on the machine skews wall times)"
    echo "old: $OLD ($(stat -c %s "$OLD") B)   new: $NEW ($(stat -c %s "$NEW") B)"
    echo "tools: qbsdiff $($TOOLS/bin/qbsdiff -V 2>/dev/null | awk '{print $2}'), $(xdelta3 -V 2>&1 | head -1 | awk '{print $1, $3}' | tr -d ,), zstd $(zstd -V | grep -o 'v[0-9.]*'), bsdiff $(dpkg-query -W -f '${Version}' bsdiff 2>/dev/null) (Debian), $(tar --version | head -1), gzip $(gzip --version | head -1 | awk '{print $2}')"
    echo
    column -t -s $'\t' "$TSV"
    echo
    ratios "$pair"
  } > "$TXT"
  cat "$TXT"
}

# ratios PAIR: sysup rows of this run against the peer rows of this run, or, for peer
# groups this run did not measure, of PEERS_TSV (default: the last run of the pair
# that measured peers, results/latest-<pair>-peers.tsv). Columns are found by name.
ratios() {
  local fb=${PEERS_TSV:-$RESULTS/latest-$1-peers.tsv}
  [ -e "$fb" ] && [ "$fb" != "$TSV" ] || fb=/dev/null
  [ "$fb" = /dev/null ] || ! awk -F'\t' 'FNR>1 && $1!="sysup" {f=1} END {exit !f}' "$TSV" ||
    fb=/dev/null
  [ "$fb" = /dev/null ] || echo "(peer rows from $fb)"
  awk -F'\t' '
    FNR==1 { for (i=1; i<=NF; i++) c[$i]=i; next }
    { key=$1"|"$2; bytes[key]=$c["bytes"]; wall[key]=$c["wall_s"]; rss[key]=$c["max_rss_kb"]
      cpu[key]=("cpu_s" in c) ? $c["cpu_s"] : "-"; st[key]=$c["status"] }
    $1=="sysup" && $c["status"] !~ /^skipped/ { have=1 }
    function r(a, b) { return (a+0>0 && b+0>0 && a!="-" && b!="-") ? sprintf("%.3f", a/b) : "-" }
    # bytes compares what travels or is stored (patch, dist); for "patch" rows the
    # output is the new tar itself, so no bytes ratio is shown
    function row(sk, pk, label,   b) {
      if (!(sk in st) || !(pk in st) || st[sk]!="ok" || st[pk]!="ok") return
      b = (sk ~ /\|patch(\(tar\))?$/) ? "-" : r(bytes[sk], bytes[pk])
      printf "%-44s %10s %10s %10s %10s\n", label, b, r(wall[sk], wall[pk]), r(cpu[sk], cpu[pk]), r(rss[sk], rss[pk])
    }
    END {
      if (!have) { print "ratios sysup/peer: SYSUP not set (no sysup rows)"; exit }
      printf "%-44s %10s %10s %10s %10s\n", "ratio sysup/peer", "bytes", "wall", "cpu", "max_rss"
      n = split("qbsdiff|diff xdelta3|diff zstd|diff bsdiff|diff", D, " ")
      for (i=1; i<=n; i++) row("sysup|diff", D[i], "sysup diff  / " D[i])
      for (k in st) if (k ~ /^xdelta3-B.*\|diff$/) row("sysup|diff", k, "sysup diff  / " k)
      n = split("qbspatch|patch xdelta3|patch zstd|patch bspatch|patch", P, " ")
      for (i=1; i<=n; i++) row("sysup|patch", P[i], "sysup patch / " P[i])
      for (k in st) if (k ~ /^xdelta3-B.*\|patch$/) row("sysup|patch", k, "sysup patch / " k)
      for (i=1; i<=n; i++) row("sysup|patch(tar)", P[i], "sysup patch(tar) / " P[i])
      row("sysup|build", "tar-czf|build", "sysup build / tar czf")
      row("sysup|apply(full)", "gunzip|tar-x|extract+sync", "sysup apply(full) / gunzip|tar -x")
      row("sysup|apply(patch)", "classic|total", "sysup apply(patch) / classic pipeline")
      row("sysup|apply(patch)", "gunzip|tar-x|extract+sync", "sysup apply(patch) / gunzip|tar -x")
    }' "$fb" "$TSV"
}

# ---------------------------------------------------------------- main
case ${1:-small} in
  -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
esac
command -v bc >/dev/null || { apt-get install -y -q bc >/dev/null || die "bc missing"; }
ensure_tools
case ${1:-small} in
  all) run_pair small; run_pair big ;;
  *) run_pair "${1:-small}" ;;
esac
