#!/usr/bin/env bash
# `npm test`: set up what is missing, type-check, lint, then run every mocha test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.json --noEmit
npx biome ci . --colors=off
npx mocha "$@"
