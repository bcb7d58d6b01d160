#!/bin/sh
# `blender` from a Debian root that scripts/debian-blender.sh built (it copies this file to <build>/bin/blender),
# run as if it were installed on this host. In a private mount namespace, which takes every mount in it along
# when Blender exits: the root under an overlay whose upper layer is a tmpfs (the cached root never changes),
# the host's /dev, /proc and /sys, and the host's /tmp, $TMPDIR, working directory and $DEBIAN_BLENDER_SHARE
# (colon-separated) at their own paths. Each step execs the next, so the process the caller started becomes
# Blender: its pid, exit status, output and signals are Blender's. It also gets SIGKILL when its parent dies.
set -eu
if [ "$(id -u)" != 0 ]; then
  echo "debian-blender: $0 needs root (unshare --mount, mount, chroot)" >&2
  exit 126
fi
build=$(dirname "$(dirname "$(readlink -f "$0")")")
shares="/tmp:${TMPDIR:-}:$(pwd -P):${DEBIAN_BLENDER_SHARE:-}"
# The host's loader and Python settings would point the root's programs at the host's libraries.
exec env -u LD_LIBRARY_PATH -u LD_PRELOAD -u PYTHONPATH -u PYTHONHOME -u PYTHONSTARTUP \
  setpriv --pdeathsig KILL \
  unshare --mount --propagation private \
  /bin/sh -ec '
    build=$1 shares=$2
    shift 2
    root=$build/root layers=$build/layers
    merged=$layers/merged
    mount -t tmpfs -o mode=755 debian-blender "$layers"
    mkdir "$layers/upper" "$layers/work" "$merged"
    mount -t overlay debian-blender -o "lowerdir=$root,upperdir=$layers/upper,workdir=$layers/work" "$merged"
    for system in dev proc sys; do mount --rbind "/$system" "$merged/$system"; done
    # Sorted, a directory comes before the ones inside it, which are then bound on top of it.
    printf "%s\n" "$shares" | tr : "\n" | while read -r share; do
      if [ -n "$share" ] && [ -d "$share" ]; then realpath "$share"; fi
    done | LC_ALL=C sort -u | while read -r share; do
      case "$share" in
        / | /dev | /dev/* | /proc | /proc/* | /sys | /sys/*) continue ;;
        /tmp | /tmp/* | /var/tmp | /var/tmp/* | /home | /home/* | /root | /root/* | /mnt | /mnt/* | /media | /media/* | /srv | /srv/* | /opt | /opt/*) ;;
        *)
          # Anything else under a top-level directory of the Debian root (/usr, /etc, /var, ...) stays as it is there.
          top=/$(printf "%s" "$share" | cut -d/ -f2)
          if [ -e "$root$top" ]; then
            echo "debian-blender: not sharing $share: $top belongs to the Debian root" >&2
            continue
          fi
          ;;
      esac
      mkdir -p "$merged$share"
      mount --rbind "$share" "$merged$share"
    done
    wd=$(pwd -P)
    [ -d "$merged$wd" ] || wd=/
    exec unshare --root="$merged" --wd="$wd" /usr/bin/blender "$@"
  ' debian-blender "$build" "$shares" "$@"
