#!/usr/bin/env bash
# A newer Debian's Blender (trixie: 4.x, sid: 5.x) in a cached root file system, run through a `blender`
# wrapper on this host's paths, without upgrading the host.
#
#   scripts/debian-blender.sh SUITE check   says what building or running it needs; exits 1 when something is missing
#   scripts/debian-blender.sh SUITE build   builds the root once (cached by recipe), prints the wrapper's path
#   scripts/debian-blender.sh SUITE path    prints the wrapper's path when the root is built, else exits 1
#
# The wrapper, <build>/bin/blender, is scripts/debian-blender-run.sh: it takes Blender's arguments and runs
# the root's Blender on this host's /tmp, $TMPDIR, working directory and $DEBIAN_BLENDER_SHARE, as the very
# process its caller started, leaving nothing mounted and the cached root unchanged. Needs root.
# Cache: $DEBIAN_BLENDER_CACHE (default /var/cache/render-farm/debian-blender), one folder per suite and recipe.
set -euo pipefail

# The Debian mirror this host's apt uses (its first .../debian source), else mmdebstrap's default.
host_mirror() {
  { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } |
    awk '$1 == "deb" || $1 == "URIs:" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\/[^ ]*\/debian\/?$/) { print $i; exit } }'
}
MIRROR=${DEBIAN_BLENDER_MIRROR:-$(host_mirror)}
# EEVEE and Workbench render headless through EGL: Mesa's EGL vendor, its llvmpipe (software) driver, and
# libOpenGL (libepoxy aborts Blender without it; sid's Blender 5 does not pull in libGL). Blender 5's
# extensions add-on imports cattrs and requests at startup (official builds bundle them; Debian's package
# does not depend on them, and the ImportError's traceback would fail every frame).
PACKAGES=(blender libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0 python3-cattr python3-requests)
# Docs, man pages and translations of the system are never read by a headless Blender.
DPKG_OPTIONS=(path-exclude=/usr/share/doc/* path-exclude=/usr/share/man/* path-exclude=/usr/share/locale/* path-exclude=/usr/share/info/*)
# Testing and unstable Release files expire within days; the mirror may serve one that is past that date
# (signatures are still checked).
APT_OPTIONS=('Acquire::Check-Valid-Until "false"')
# Blender lists mounted file systems from /etc/mtab, which only an init system would create.
CUSTOMIZE_HOOKS=('ln -sf ../proc/self/mounts "$1/etc/mtab"')
# Bump when the build changes in a way the lists above do not show (the wrapper is refreshed by itself).
RECIPE_REVISION=1

say() { echo "debian-blender: $*" >&2; }

usage() {
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

SUITE=${1:-}
ACTION=${2:-}
case "$SUITE" in
  ""|-*|*/*) usage ;;
esac
CACHE=${DEBIAN_BLENDER_CACHE:-/var/cache/render-farm/debian-blender}
KEY=$(printf '%s\n' "$RECIPE_REVISION" "$SUITE" "$MIRROR" "${PACKAGES[@]}" "${DPKG_OPTIONS[@]}" "${APT_OPTIONS[@]}" "${CUSTOMIZE_HOOKS[@]}" | sha256sum | cut -c1-12)
BUILD_DIR=$CACHE/$SUITE-$KEY
ROOT=$BUILD_DIR/root
WRAPPER=$BUILD_DIR/bin/blender
# Written last, once the root is complete.
PACKAGE_FILE=$BUILD_DIR/blender-package

# Prints one line per missing requirement; returns 1 when there is any.
missing_requirements() {
  local missing=0
  if [ "$(id -u)" != 0 ]; then
    echo "root (mmdebstrap's root mode, unshare --mount, mount --bind and chroot need it): run as root"
    missing=1
  fi
  for tool in unshare setpriv mount chroot; do
    command -v "$tool" >/dev/null 2>&1 || { echo "$tool (util-linux / coreutils)"; missing=1; }
  done
  grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || { echo "overlay file system support in the kernel"; missing=1; }
  if [ ! -f "$PACKAGE_FILE" ]; then
    command -v mmdebstrap >/dev/null 2>&1 || { echo "mmdebstrap, to build the root once: apt-get install mmdebstrap"; missing=1; }
    local host=${MIRROR#*://} port=80
    host=${host%%/*}
    case "$MIRROR" in https://*) port=443 ;; esac
    case "$host" in *:*) port=${host##*:} host=${host%:*} ;; esac
    if [ -n "$MIRROR" ] && ! timeout 20 bash -c "exec 3<>/dev/tcp/${host}/${port}" 2>/dev/null; then
      echo "network access to the Debian mirror ${MIRROR} (suite ${SUITE}), to build the root once"
      missing=1
    fi
  fi
  return "$missing"
}

# Copies the wrapper into the build whenever scripts/debian-blender-run.sh changed (no rebuild of the root).
install_wrapper() {
  local template
  template=$(dirname "$(readlink -f "$0")")/debian-blender-run.sh
  mkdir -p "$1/bin" "$1/layers"
  if ! cmp -s "$template" "$1/bin/blender"; then
    # Renamed into place: a test run may be starting it right now.
    cp "$template" "$1/bin/blender.new"
    chmod 755 "$1/bin/blender.new"
    mv "$1/bin/blender.new" "$1/bin/blender"
  fi
}

build() {
  if [ -f "$PACKAGE_FILE" ]; then
    install_wrapper "$BUILD_DIR"
    say "cached: $BUILD_DIR ($(cat "$PACKAGE_FILE"))"
    echo "$WRAPPER"
    return
  fi
  local problems
  if ! problems=$(missing_requirements); then
    say "cannot build Debian ${SUITE}'s Blender; missing:"
    printf '%s\n' "$problems" | sed 's/^/  - /' >&2
    exit 1
  fi
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9
  # Another run may have built it while this one waited for the lock.
  if [ -f "$PACKAGE_FILE" ]; then
    install_wrapper "$BUILD_DIR"
    echo "$WRAPPER"
    return
  fi
  local building=$BUILD_DIR.building
  rm -rf "$building"
  mkdir -p "$building"
  say "building a Debian ${SUITE} root with ${PACKAGES[*]} into $BUILD_DIR (once; one to three minutes)"
  local started=$SECONDS
  local options=(--variant=apt --include="$(IFS=,; echo "${PACKAGES[*]}")")
  for option in "${DPKG_OPTIONS[@]}"; do options+=(--dpkgopt="$option"); done
  for option in "${APT_OPTIONS[@]}"; do options+=(--aptopt="$option"); done
  for hook in "${CUSTOMIZE_HOOKS[@]}"; do options+=(--customize-hook="$hook"); done
  if ! mmdebstrap "${options[@]}" "$SUITE" "$building/root" ${MIRROR:+"$MIRROR"} >"$building/mmdebstrap.log" 2>&1; then
    # Only the log is worth keeping of a root that did not finish.
    mv "$building/mmdebstrap.log" "$BUILD_DIR.failed.log"
    rm -rf "$building"
    tail -n 30 "$BUILD_DIR.failed.log" >&2
    say "mmdebstrap failed; its log: $BUILD_DIR.failed.log"
    exit 1
  fi
  install_wrapper "$building"
  chroot "$building/root" dpkg-query -W -f '${Package} ${Version}' blender >"$building/blender-package"
  rm -rf "$BUILD_DIR" "$BUILD_DIR.failed.log"
  mv "$building" "$BUILD_DIR"
  say "built in $((SECONDS - started)) s: $(cat "$PACKAGE_FILE"), $(du -sh "$ROOT" | cut -f1) on disk"
  echo "$WRAPPER"
}

case "$ACTION" in
  check)
    if problems=$(missing_requirements); then
      say "ready for Debian ${SUITE}'s Blender (root: $ROOT$([ -f "$PACKAGE_FILE" ] && echo ", built" || echo ", not built yet"))"
    else
      say "Debian ${SUITE}'s Blender needs:"
      printf '%s\n' "$problems" | sed 's/^/  - /' >&2
      exit 1
    fi
    ;;
  build) build ;;
  path)
    [ -f "$PACKAGE_FILE" ] || { say "Debian ${SUITE}'s Blender is not built yet: run scripts/debian-blender.sh ${SUITE} build"; exit 1; }
    echo "$WRAPPER"
    ;;
  *) usage ;;
esac
