#!/usr/bin/env bash
# Generate the seed corpus of every fuzz target, from sysup's fixtures, into
# fuzz/seeds/<target>/ (or OUT_DIR/<target>/). Nothing is downloaded and
# nothing is committed: run it again after a format change.
#   fuzz/seed.sh [OUT_DIR]
# What it makes: fuzz/examples/seed-corpus.rs. It builds the `sysup` binary
# (dev profile, as `cargo test` does) and drives its command line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/seeds}
cd "$here/.."
cargo build --locked --bin sysup --quiet
sysup_bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/sysup"
rm -rf "$out.tmp"
SYSUP=$sysup_bin cargo run --locked --quiet --manifest-path fuzz/Cargo.toml \
    --example seed-corpus -- "$out.tmp"
rm -rf "$out"
mv "$out.tmp" "$out"
for d in "$out"/*/; do
    printf '%-16s %3d seeds, %8d bytes\n' "$(basename "$d")" \
        "$(find "$d" -type f | wc -l)" "$(du -sb "$d" | cut -f1)"
done
