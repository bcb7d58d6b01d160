#!/usr/bin/env bash
# Clones the repo into an empty directory with nothing beside it (as a person cloning from a forge has),
# then runs exactly the README's two commands, `npm run demo` and `npm test`, timing each.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/render-farm-fresh-XXXXXX")
git clone --quiet "$repo" "$work/main"
cd "$work/main"

start=$SECONDS
npm run demo
demo_seconds=$((SECONDS - start))
frames=$(ls renders/demo/frame_*.png | wc -l)
[ "$frames" -eq 24 ] || { echo "fresh-clone-check: expected 24 frames, found $frames" >&2; exit 1; }
[ -s renders/demo/contact_sheet.png ] && [ -s renders/demo/demo.mp4 ] || { echo "fresh-clone-check: contact sheet or MP4 missing" >&2; exit 1; }

start=$SECONDS
npm test
test_seconds=$((SECONDS - start))

echo "fresh-clone-check: in $work/main: npm run demo ${demo_seconds} s (24 frames, contact sheet, MP4), npm test ${test_seconds} s"
