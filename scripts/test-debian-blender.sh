#!/usr/bin/env bash
# `npm run test:blender4` / `test:blender5`: the tests that render through the farm's Blender runner, with a
# newer Debian's Blender (scripts/debian-blender.sh) instead of the host's. Test scenes are made by that Blender
# too, so every file it opens is one it saved. Root only.
#
#   scripts/test-debian-blender.sh SUITE MAJOR [mocha arguments]   e.g. trixie 4, sid 5
set -euo pipefail
cd "$(dirname "$0")/.."

TESTS=(tests/debianBlender/wrapper.ts tests/blender.test.ts tests/renderPath.test.ts tests/hostileScenes.test.ts tests/tileStitch.test.ts)
SUITE=${1:?usage: scripts/test-debian-blender.sh SUITE MAJOR [mocha arguments]}
MAJOR=${2:?usage: scripts/test-debian-blender.sh SUITE MAJOR [mocha arguments]}
shift 2

if ! bash scripts/debian-blender.sh "$SUITE" check; then
  echo "test:blender${MAJOR}: cannot run: it needs what is listed above" >&2
  exit 1
fi
bash scripts/setup.sh
wrapper=$(bash scripts/debian-blender.sh "$SUITE" build)
version=$("$wrapper" --version | head -n 1)
case "$version" in
  "Blender ${MAJOR}."*) ;;
  *) echo "test:blender${MAJOR}: Debian ${SUITE}'s Blender reports '${version}', not Blender ${MAJOR}.x" >&2; exit 1 ;;
esac
echo "test:blender${MAJOR}: ${version} (Debian ${SUITE}, ${wrapper})"

# PATH too, so anything that runs plain `blender` gets the same Blender.
export BLENDER_PATH=$wrapper DEBIAN_BLENDER_SHARE=$PWD PATH="$(dirname "$wrapper"):$PATH"
npx mocha --no-config -r ts-node/register/transpile-only --extension ts --timeout 300000 \
  --reporter tests/support/summaryReporter.js "${TESTS[@]}" "$@"
