#!/bin/bash
# Re-zipped members on real wheels (bench/log/issue-26.md): two one-file
# "worlds" holding an upstream wheel at the Debian path, its version 1 and
# version 2 (pyenv's bundled pip and setuptools wheels, made by the `wheel`
# tool through Python's zipfile), diffed by `sysup diff` with and without
# re-zipping (SYSUP_DIFF_NO_REZIP), each patch applied by `sysup patch` and
# compared with the new tar. (pip 23.2.1 → 24.2 is not paired at all: its
# version has another count of components, so pairing's version key differs,
# and the new wheel is literal either way.) Rows: pair, mode, patch bytes, diff user+sys s,
# diff peak RSS KiB, patch user+sys s, patch peak RSS KiB, result.
# usage: bench/zip-wheels.sh SYSUP_BINARY [WORKDIR]  (WORKDIR default /var/tmp/zip-wheels)
set -eu
S=$(realpath "$1")
W=${2:-/var/tmp/zip-wheels}
P=/root/.pyenv/versions
pairs=(
  "pip-22.0.4 $P/3.7.16/lib/python3.7/ensurepip/_bundled/pip-22.0.4-py3-none-any.whl $P/3.10.13/lib/python3.10/ensurepip/_bundled/pip-23.0.1-py3-none-any.whl"
  "pip-23.0.1 $P/3.10.13/lib/python3.10/ensurepip/_bundled/pip-23.0.1-py3-none-any.whl $P/3.12.1/lib/python3.12/ensurepip/_bundled/pip-23.2.1-py3-none-any.whl"
  "pip-23.2.1 $P/3.12.1/lib/python3.12/ensurepip/_bundled/pip-23.2.1-py3-none-any.whl $P/3.13.0/lib/python3.13/ensurepip/_bundled/pip-24.2-py3-none-any.whl"
  "setuptools-65.5.0 $P/3.11.7/lib/python3.11/ensurepip/_bundled/setuptools-65.5.0-py3-none-any.whl $P/3.13.0/lib/python3.13/test/wheeldata/setuptools-67.6.1-py3-none-any.whl"
)
rm -rf "$W"; mkdir -p "$W"; cd "$W"
dist() { # id wheel
  local t=tree-$1
  mkdir -p $t/usr/share/python-wheels
  cp "$2" $t/usr/share/python-wheels/
  tar --sort=name --format=posix --owner=0 --group=0 --numeric-owner \
    --pax-option=delete=atime,delete=ctime \
    --mtime=2026-01-01 -cf $1.tar -C $t .
  gzip -1 -c $1.tar > $1.tar.gz
}
measure() { # out-file cmd...: user+sys s, peak RSS KiB
  /usr/bin/time -f "%U %S %M" -o t.tmp "$@" > /dev/null
  awk '{printf "%.2f\t%s", $1 + $2, $3}' t.tmp
}
for p in "${pairs[@]}"; do
  set -- $p
  rm -rf tree-* *.tar *.tar.gz out-*
  dist world-1-20260101 "$2"
  dist world-2-20260102 "$3"
  for mode in rezip plain; do
    env=(); [ $mode = plain ] && env=(SYSUP_DIFF_NO_REZIP=1)
    d=$(measure env "${env[@]}" "$S" diff -q world-1-20260101.tar.gz world-2-20260102.tar.gz --out out-$mode)
    f=out-$mode/world-1-20260101_2-20260102.patch
    a=$(measure sh -c "'$S' patch $f < world-1-20260101.tar > new.tar")
    cmp -s new.tar world-2-20260102.tar && ok=identical || ok=DIFFERS
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1→$(basename "$3" -py3-none-any.whl)" $mode "$(stat -c %s $f)" "$d" "$a" $ok
  done
done
cd /; rm -rf "$W"
