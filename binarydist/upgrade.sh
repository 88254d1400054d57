#!/bin/sh
# The world's own cleanup step: run last by `sysup apply` on the host, after
# every file is in place, on the system it upgrades: under `--root R`,
# chrooted into R with R's own /bin/sh and a clean environment, so "/" is
# always the upgraded root (SYSUP_ROOT=/). It must be idempotent (an apply
# may be re-run, and a repair runs it with SYSUP_FROM = SYSUP_TO).
set -eu
root="${SYSUP_ROOT:?}"
# Refresh the root's dynamic linker cache, with the root's own ldconfig.
if [ "$root" = "/" ] && command -v ldconfig >/dev/null 2>&1; then
    ldconfig
fi
exit 0
