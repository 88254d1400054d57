#!/usr/bin/env bash
# bench/make-corpus.sh — build the sysup benchmark corpus (no sysup code involved).
#
# What it makes, under bench/work/corpus/ (gitignored):
#   tree-A/  tree-B/     a staged Debian 12 "world" before and after an upgrade,
#                        ~650 MB each uncompressed:
#                          debootstrap --variant=minbase bookworm
#                          + python3, perl, openssl, ca-certificates, git, curl,
#                            nodejs, xz-utils, less                   (apt, in a chroot)
#                          + PyPI wheels numpy, scipy, pandas, grpcio, pillow
#                            unzipped into usr/lib/python3/dist-packages
#                          + npm tarballs typescript, @esbuild/linux-x64
#                            unpacked into usr/local/lib/node_modules
#                        tree-A holds the OLD version of every package that has two
#                        versions in bookworm / bookworm-updates / bookworm-security,
#                        tree-B = copy of tree-A, then: those packages upgraded to the
#                        NEW version (libc6, perl, python3.11, openssl, nodejs, git,
#                        util-linux, systemd libs, tzdata, ...), jq/strace/rsync and
#                        the PyYAML wheel added, curl purged (+ autoremove), every
#                        wheel and npm package moved to the next patch/minor release
#                        (pillow 10.2 -> 10.3 renames its hashed pillow.libs/*.so).
#   small-A/ small-B/    a ~80 MB subset of the same trees (etc, usr/bin, usr/sbin,
#                        var/lib/dpkg, libc/libssl/libcrypto, pillow, esbuild) for
#                        tools that need ~17x the input size in RAM (C bsdiff).
#   <tree>.tar           plain POSIX tar of each tree, made with GNU tar:
#                          tar --sort=name --format=posix --numeric-owner \
#                              --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
#                              -C <tree> -cf <tree>.tar .
#                        (the pax-option drops atime/ctime records, which otherwise
#                        differ for every member between A and B and add noise).
#   <tree>.tar.gz        gzip -6 -n of the tar (header mtime 0).
#   <tree>.dpkg          "package version" list of the tree (dpkg-query), for checking.
#   <tree>.du            apparent size in bytes.
#   big.stats small.stats  what changed between A and B (bench/tree-stats.py).
#
# Reproducibility: every version added on top of debootstrap is pinned below (APT
# pins, wheels, npm). debootstrap itself takes whatever "bookworm" is on the mirror
# today; the expected package lists are committed as bench/corpus-lock/*.dpkg and
# the script warns (or fails with STRICT=1) when the built trees differ. deb.debian.org
# only carries the current versions: when a pinned .deb disappears (next point
# release / DSA), apt fails loudly and the pins below must be moved forward.
#
# Usage (root; needs network to deb.debian.org, PyPI, npm):
#   bench/make-corpus.sh            # builds what is missing; ~10 min the first time
#   FORCE=1 bench/make-corpus.sh    # rebuild everything
#   STRICT=1 bench/make-corpus.sh   # fail when package versions drift from corpus-lock
# Idempotent: each stage leaves a stamp in bench/work/corpus/.stamp-*; a stage
# whose stamp exists is skipped. Downloads are cached in bench/work/dl/.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${WORK:-$HERE/work}
CORPUS=$WORK/corpus
DL=$WORK/dl
LOCK=$HERE/corpus-lock
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECMIRROR=${SECMIRROR:-http://deb.debian.org/debian-security}
SUITE=bookworm
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

# ---------------------------------------------------------------- pins
# Extra Debian packages in tree-A (dependencies follow, --no-install-recommends).
APT_EXTRAS_A="python3 perl openssl ca-certificates git curl nodejs xz-utils less"
# Packages added in tree-B, and removed from it (purge + autoremove).
APT_ADD_B="jq strace rsync"
APT_DEL_B="curl"
# "package old-version new-version": every installed package that has two versions
# across bookworm (point release 12.x), bookworm-updates and bookworm-security.
# tree-A gets the old one, tree-B the new one.
APT_PINS="
apt                 2.6.1                         2.6.2
libapt-pkg6.0       2.6.1                         2.6.2
bsdutils            1:2.38.1-5+deb12u1            1:2.38.1-5+deb12u3
libblkid1           2.38.1-5+deb12u1              2.38.1-5+deb12u3
libmount1           2.38.1-5+deb12u1              2.38.1-5+deb12u3
libsmartcols1       2.38.1-5+deb12u1              2.38.1-5+deb12u3
libuuid1            2.38.1-5+deb12u1              2.38.1-5+deb12u3
mount               2.38.1-5+deb12u1              2.38.1-5+deb12u3
util-linux          2.38.1-5+deb12u1              2.38.1-5+deb12u3
util-linux-extra    2.38.1-5+deb12u1              2.38.1-5+deb12u3
ca-certificates     20230311+deb12u1              20250419~deb12u2
curl                7.88.1-10+deb12u5             -
libcurl4            7.88.1-10+deb12u5             -
libcurl3-gnutls     7.88.1-10+deb12u5             7.88.1-10+deb12u15
git                 1:2.39.5-0+deb12u2            1:2.39.5-0+deb12u3
git-man             1:2.39.5-0+deb12u2            1:2.39.5-0+deb12u3
libbrotli1          1.0.9-2+b6                    1.0.9-2+deb12u1
libc-bin            2.36-9+deb12u7                2.36-9+deb12u14
libc6               2.36-9+deb12u7                2.36-9+deb12u14
libexpat1           2.5.0-1+deb12u2               2.5.0-1+deb12u5
liblzma5            5.4.1-1+deb12u1               5.4.1-1+deb12u2
xz-utils            5.4.1-1+deb12u1               5.4.1-1+deb12u2
libnode108          18.20.4+dfsg-1~deb12u2        18.20.4+dfsg-1~deb12u3
nodejs              18.20.4+dfsg-1~deb12u2        18.20.4+dfsg-1~deb12u3
node-undici         5.15.0+dfsg1+~cs20.10.9.3-1+deb12u3 5.15.0+dfsg1+~cs20.10.9.3-1+deb12u4
libpcre2-8-0        10.42-1                       10.42-1+deb12u2
perl                5.36.0-7+deb12u3              5.36.0-7+deb12u4
perl-base           5.36.0-7+deb12u3              5.36.0-7+deb12u4
perl-modules-5.36   5.36.0-7+deb12u3              5.36.0-7+deb12u4
libperl5.36         5.36.0-7+deb12u3              5.36.0-7+deb12u4
python3.11          3.11.2-6+deb12u8              3.11.2-6+deb12u9
python3.11-minimal  3.11.2-6+deb12u8              3.11.2-6+deb12u9
libpython3.11-minimal 3.11.2-6+deb12u8            3.11.2-6+deb12u9
libpython3.11-stdlib 3.11.2-6+deb12u8             3.11.2-6+deb12u9
libsasl2-2          2.1.28+dfsg-10                2.1.28+dfsg-10+deb12u1
libsasl2-modules-db 2.1.28+dfsg-10                2.1.28+dfsg-10+deb12u1
libssh2-1           1.10.0-3+b1                   1.10.0-3+deb12u1
libssl3             3.0.20-1~deb12u2              3.0.22-1~deb12u2
openssl             3.0.20-1~deb12u2              3.0.22-1~deb12u2
libsystemd0         252.38-1~deb12u1              252.39-1~deb12u2
libudev1            252.38-1~deb12u1              252.39-1~deb12u2
tzdata              2026b-0+deb12u1               2026f-0+deb12u1
jq                  -                             1.6-2.1+deb12u3
libjq1              -                             1.6-2.1+deb12u3
rsync               -                             3.5.0+ds1-0+deb12u1
"
# PyPI wheels (cp311, manylinux x86_64, matching bookworm's python3.11): "name old new"
# ("-" = absent on that side).
WHEELS="
numpy   1.26.3  1.26.4
scipy   1.11.3  1.11.4
pandas  2.1.3   2.1.4
grpcio  1.60.0  1.60.1
pillow  10.2.0  10.3.0
PyYAML  -       6.0.1
"
# npm packages: "name old new", unpacked to usr/local/lib/node_modules/<name>.
NPMS="
typescript          5.3.2   5.3.3
@esbuild/linux-x64  0.19.10 0.19.11
"
# The small pair: these paths (globs, relative to the tree root) of each big tree.
SMALL_PATHS="etc usr/bin usr/sbin var/lib/dpkg usr/lib64
 usr/lib/x86_64-linux-gnu/libc.so.6 usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
 usr/lib/x86_64-linux-gnu/libssl.so.3 usr/lib/x86_64-linux-gnu/libcrypto.so.3
 usr/lib/python3/dist-packages/PIL usr/lib/python3/dist-packages/pillow*
 usr/local/lib/node_modules/@esbuild"

# ---------------------------------------------------------------- helpers
log() { printf '[make-corpus %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
stamp() { [ -z "${FORCE:-}" ] && [ -e "$CORPUS/.stamp-$1" ]; }
mark() { date -u +%FT%TZ > "$CORPUS/.stamp-$1"; }
unmark() { rm -f "$CORPUS/.stamp-$1"; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, device nodes)"
for t in debootstrap chroot tar gzip unzip pip npm python3; do
  command -v "$t" >/dev/null || die "missing tool: $t"
done
mkdir -p "$CORPUS" "$DL/debs" "$DL/pypi" "$DL/npm"

MOUNTED=()
cleanup_mounts() {
  local m
  for m in "${MOUNTED[@]:-}"; do [ -n "$m" ] && umount "$m" 2>/dev/null || true; done
  MOUNTED=()
}
trap cleanup_mounts EXIT

rm_tree() { # T: remove a tree, never following a /proc left mounted by a killed run
  mountpoint -q "$1/proc" 2>/dev/null && umount "$1/proc"
  rm -rf --one-file-system "$1"
}

pin_names() { # old|new: names of the pinned packages present on that side
  local col=2; [ "$1" = new ] && col=3
  awk -v c=$col 'NF==3 && $c!="-" {print $1}' <<<"$APT_PINS" | tr '\n' ' '
}
pins() { # old|new: "pkg=ver ..." for the chosen side
  local col=2; [ "$1" = new ] && col=3
  awk -v c=$col 'NF==3 && $c!="-" {print $1"="$c}' <<<"$APT_PINS" | tr '\n' ' '
}

chroot_begin() { # T: make the chroot usable for apt/dpkg
  local T=$1
  cat > "$T/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECMIRROR $SUITE-security main
EOF
  printf '#!/bin/sh\nexit 101\n' > "$T/usr/sbin/policy-rc.d"; chmod 755 "$T/usr/sbin/policy-rc.d"
  mountpoint -q "$T/proc" || { mount -t proc proc "$T/proc"; MOUNTED+=("$T/proc"); }
  chroot "$T" apt-get -q update >/dev/null
}

chroot_end() { # T: leave no build-host residue in the staged tree
  local T=$1
  chroot "$T" apt-get -q clean
  cleanup_mounts
  rm -f "$T/usr/sbin/policy-rc.d"
  rm -rf "$T"/var/lib/apt/lists/* "$T"/var/cache/apt/*.bin
  mkdir -p "$T/var/lib/apt/lists/partial"
  chroot "$T" dpkg-query -W -f '${Package} ${Version}\n' | sort > "$CORPUS/$(basename "$T").dpkg"
}

wheel_file() { # name version -> path of the cached wheel (downloads it once)
  local n=$1 v=$2 f
  f=$(find "$DL/pypi" -maxdepth 1 -iname "$(tr '-' '_' <<<"$n")-$v-*.whl" | head -1)
  if [ -z "$f" ]; then
    pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
      --implementation cp --abi cp311 --platform manylinux2014_x86_64 \
      --platform manylinux_2_17_x86_64 -d "$DL/pypi" "$n==$v" >&2
    f=$(find "$DL/pypi" -maxdepth 1 -iname "$(tr '-' '_' <<<"$n")-$v-*.whl" | head -1)
  fi
  [ -n "$f" ] || die "wheel $n==$v not found after download"
  echo "$f"
}

SITE=usr/lib/python3/dist-packages
wheel_remove() { # T wheelfile: what pip uninstall would remove (top-level entries)
  local T=$1 w=$2 top
  for top in $(unzip -Z1 "$w" | cut -d/ -f1 | sort -u); do rm -rf "${T:?}/$SITE/$top"; done
}
wheel_install() { # T wheelfile
  local T=$1 w=$2
  mkdir -p "$T/$SITE"
  unzip -q -o "$w" -d "$T/$SITE"
}

npm_file() { # name version -> cached tarball
  local n=$1 v=$2 f
  f="$DL/npm/$(sed 's|^@||; s|/|-|' <<<"$n")-$v.tgz"
  if [ ! -s "$f" ]; then (cd "$DL/npm" && npm pack --silent "$n@$v" >/dev/null); fi
  [ -s "$f" ] || die "npm pack $n@$v did not produce $f"
  echo "$f"
}
npm_install() { # T name tgz
  local d="$1/usr/local/lib/node_modules/$2"
  rm -rf "$d"; mkdir -p "$d"
  tar -xzf "$3" -C "$d" --strip-components=1 --no-same-owner
  chmod -R u+rwX,go+rX,go-w "$d"
}
npm_links() { # T: the bin symlinks a global "npm install -g" would create
  local T=$1
  mkdir -p "$T/usr/local/bin"
  if [ -d "$T/usr/local/lib/node_modules/typescript" ]; then
    ln -sfn ../lib/node_modules/typescript/bin/tsc "$T/usr/local/bin/tsc"
    ln -sfn ../lib/node_modules/typescript/bin/tsserver "$T/usr/local/bin/tsserver"
  fi
  [ -d "$T/usr/local/lib/node_modules/@esbuild/linux-x64" ] &&
    ln -sfn ../lib/node_modules/@esbuild/linux-x64/bin/esbuild "$T/usr/local/bin/esbuild"
  return 0
}

check_lock() { # name: compare the tree's package list with the committed one
  local n=$1
  if [ ! -e "$LOCK/$n.dpkg" ]; then log "no $LOCK/$n.dpkg to compare with (first build?)"; return 0; fi
  if ! diff -u "$LOCK/$n.dpkg" "$CORPUS/$n.dpkg" > "$CORPUS/$n.dpkg.drift"; then
    log "WARNING: $n package versions differ from bench/corpus-lock/$n.dpkg (see $CORPUS/$n.dpkg.drift)"
    [ -n "${STRICT:-}" ] && die "STRICT=1 and the corpus drifted"
  else
    rm -f "$CORPUS/$n.dpkg.drift"
  fi
}

# ---------------------------------------------------------------- tree-A
A=$CORPUS/tree-A B=$CORPUS/tree-B
if ! stamp tree-A; then
  unmark tree-A; unmark tree-B; unmark small; unmark tars; unmark stats
  rm_tree "$A"
  log "debootstrap minbase $SUITE -> tree-A"
  debootstrap --variant=minbase --cache-dir="$DL/debs" "$SUITE" "$A" "$MIRROR" \
    > "$CORPUS/debootstrap.log" 2>&1 || { tail -20 "$CORPUS/debootstrap.log"; die "debootstrap failed"; }
  chroot_begin "$A"
  log "apt: extras + old pins into tree-A"
  base=" $(chroot "$A" dpkg-query -W -f '${Package} ') "
  # shellcheck disable=SC2046
  chroot "$A" apt-get -y -q --no-install-recommends --allow-downgrades install \
    $APT_EXTRAS_A $(pins old) > "$CORPUS/apt-A.log" 2>&1 ||
    { tail -30 "$CORPUS/apt-A.log"; die "apt install into tree-A failed"; }
  # naming a pinned dependency on the command line marked it "manual": give it back
  # its "auto" mark, as a plain "apt-get install $APT_EXTRAS_A" would have left it
  auto=""
  for p in $(pin_names old); do
    case "$base $APT_EXTRAS_A " in *" $p "*) ;; *) auto="$auto $p" ;; esac
  done
  [ -z "$auto" ] || chroot "$A" apt-mark auto $auto >> "$CORPUS/apt-A.log"
  chroot_end "$A"
  log "wheels + npm (old versions) into tree-A"
  while read -r n old new; do
    [ -n "$n" ] && [ "$old" != - ] && wheel_install "$A" "$(wheel_file "$n" "$old")"
  done <<<"$WHEELS"
  while read -r n old new; do
    [ -n "$n" ] && [ "$old" != - ] && npm_install "$A" "$n" "$(npm_file "$n" "$old")"
  done <<<"$NPMS"
  npm_links "$A"
  check_lock tree-A
  mark tree-A
fi

# ---------------------------------------------------------------- tree-B
if ! stamp tree-B; then
  unmark small; unmark tars; unmark stats
  rm_tree "$B"
  log "copy tree-A -> tree-B"
  cp -a "$A" "$B"
  chroot_begin "$B"
  log "apt: upgrade to new pins, add [$APT_ADD_B], purge [$APT_DEL_B] in tree-B"
  wasauto=$(chroot "$B" apt-mark showauto | tr '\n' ' ')
  before=" $(chroot "$B" dpkg-query -W -f '${Package} ') "
  for p in $(pin_names new); do
    case "$before $APT_ADD_B " in *" $p "*) ;; *) wasauto="$wasauto $p" ;; esac
  done
  # shellcheck disable=SC2046
  { chroot "$B" apt-get -y -q --no-install-recommends install $APT_ADD_B $(pins new) &&
    { [ -z "$wasauto" ] || chroot "$B" apt-mark auto $wasauto; } &&
    chroot "$B" apt-get -y -q purge $APT_DEL_B &&
    chroot "$B" apt-get -y -q --purge autoremove; } > "$CORPUS/apt-B.log" 2>&1 ||
    { tail -30 "$CORPUS/apt-B.log"; die "apt in tree-B failed"; }
  chroot_end "$B"
  log "wheels + npm (new versions) into tree-B"
  while read -r n old new; do
    [ -n "$n" ] || continue
    [ "$old" != - ] && wheel_remove "$B" "$(wheel_file "$n" "$old")"
    [ "$new" != - ] && wheel_install "$B" "$(wheel_file "$n" "$new")"
  done <<<"$WHEELS"
  while read -r n old new; do
    [ -n "$n" ] || continue
    if [ "$new" = - ]; then rm -rf "$B/usr/local/lib/node_modules/$n"
    else npm_install "$B" "$n" "$(npm_file "$n" "$new")"; fi
  done <<<"$NPMS"
  npm_links "$B"
  check_lock tree-B
  mark tree-B
fi

# ---------------------------------------------------------------- small pair
if ! stamp small; then
  unmark tars; unmark stats
  for s in A B; do
    log "small-$s (subset of tree-$s)"
    rm -rf "$CORPUS/small-$s"; mkdir -p "$CORPUS/small-$s"
    # globs expand inside each tree (pillow.libs hashed names differ between A and B)
    # shellcheck disable=SC2086
    (cd "$CORPUS/tree-$s" && tar --numeric-owner -cf - $SMALL_PATHS) |
      tar -xpf - -C "$CORPUS/small-$s" --numeric-owner
  done
  mark small
fi

# ---------------------------------------------------------------- tars
if ! stamp tars; then
  for t in tree-A tree-B small-A small-B; do
    log "tar + gzip $t"
    tar --sort=name --format=posix --numeric-owner \
      --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
      -C "$CORPUS/$t" -cf "$CORPUS/$t.tar.tmp" .
    mv "$CORPUS/$t.tar.tmp" "$CORPUS/$t.tar"
    gzip -6 -n -c "$CORPUS/$t.tar" > "$CORPUS/$t.tar.gz.tmp"
    mv "$CORPUS/$t.tar.gz.tmp" "$CORPUS/$t.tar.gz"
    du -sx --apparent-size --block-size=1 "$CORPUS/$t" | cut -f1 > "$CORPUS/$t.du"
  done
  mark tars
fi

# ---------------------------------------------------------------- pair stats
if ! stamp stats; then
  log "pair statistics (bench/tree-stats.py)"
  python3 "$HERE/tree-stats.py" "$CORPUS/tree-A" "$CORPUS/tree-B" > "$CORPUS/big.stats"
  python3 "$HERE/tree-stats.py" "$CORPUS/small-A" "$CORPUS/small-B" > "$CORPUS/small.stats"
  mark stats
fi

log "corpus ready in $CORPUS:"
for t in tree-A tree-B small-A small-B; do
  printf '  %-8s tree %6d MB  tar %6d MB  tar.gz %6d MB  files %d\n' "$t" \
    $(( $(cat "$CORPUS/$t.du") / 1048576 )) \
    $(( $(stat -c %s "$CORPUS/$t.tar") / 1048576 )) \
    $(( $(stat -c %s "$CORPUS/$t.tar.gz") / 1048576 )) \
    "$(find "$CORPUS/$t" -xdev | wc -l)" >&2
done
