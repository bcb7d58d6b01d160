#!/usr/bin/env bash
# Installs what the farm needs on this machine: npm packages, Blender, ffmpeg and oiiotool (and curl and Chromium for the tests). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v blender >/dev/null 2>&1 || missing+=(blender)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
# oiiotool stitches a frame rendered as tiles (functions/renderer/tileStitch.ts).
command -v oiiotool >/dev/null 2>&1 || missing+=(openimageio-tools)
# tests/localFarm.test.ts sends oversized bodies with curl, as users do.
command -v curl >/dev/null 2>&1 || missing+=(curl)
# tests/jobReport.test.ts opens the report `render-farm report` writes in headless Chromium (driven by playwright-core).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]} with apt-get (about a minute)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: please install ${missing[*]} (e.g. 'sudo apt-get install ${missing[*]}'), then run this again" >&2
    exit 1
  fi
fi

# npm ci when node_modules is missing or older than the lock file.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi
