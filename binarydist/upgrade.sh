#!/bin/sh
# The world's own cleanup step: run last by `sysup apply` on the host, after
# every file is in place, with SYSUP_ROOT set to the target root.
# It must be idempotent (an apply may be re-run) and must only touch SYSUP_ROOT.
set -eu
root="${SYSUP_ROOT:?}"
# Refresh the dynamic linker cache when the root is this system.
if [ "$root" = "/" ] && command -v ldconfig >/dev/null 2>&1; then
    ldconfig
fi
exit 0
