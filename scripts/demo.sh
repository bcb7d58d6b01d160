#!/usr/bin/env bash
# `npm run demo`: install what is missing, build a small animated scene with Blender, render its 24
# frames on the local farm, then make a contact sheet and an MP4 from them under renders/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

bash scripts/setup.sh

scene_dir=renders/demo-scene
out=renders/demo
mkdir -p "$scene_dir" "$out"
# Frames of an earlier run must not end up in this run's sheet and video.
rm -f "$out"/frame_*.png "$out"/contact_sheet.png "$out"/demo.mp4

echo "demo: building the scene with scripts/demo_scene.py"
blender -b --factory-startup -noaudio --python-exit-code 2 -P scripts/demo_scene.py -- --out "$PWD/$scene_dir/demo.blend" >"$scene_dir/build.log" 2>&1 \
  || { echo "demo: Blender could not build the scene; see $scene_dir/build.log" >&2; exit 1; }

echo "demo: rendering 24 frames at 320x180 on the local farm"
node cli/render-farm.js render "$scene_dir/demo.blend" --frames 1-24 --out "$out"

echo "demo: making the contact sheet and the video with ffmpeg"
ffmpeg -loglevel error -y -start_number 1 -i "$out/frame_%04d.png" -vf "scale=160:-1,tile=6x4:padding=4:margin=4:color=white" -frames:v 1 "$out/contact_sheet.png"
codec=(-c:v mpeg4 -q:v 3)
encoders=$(ffmpeg -hide_banner -encoders 2>/dev/null || true)
if [[ $encoders == *libx264* ]]; then codec=(-c:v libx264 -crf 18); fi
ffmpeg -loglevel error -y -framerate 24 -start_number 1 -i "$out/frame_%04d.png" "${codec[@]}" -pix_fmt yuv420p -movflags +faststart "$out/demo.mp4"

echo
echo "demo: done in $((SECONDS - started)) s"
echo "  frames:        $PWD/$out/frame_0001.png … frame_0024.png"
echo "  contact sheet: $PWD/$out/contact_sheet.png"
echo "  video:         $PWD/$out/demo.mp4"
