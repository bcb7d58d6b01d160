#!/usr/bin/env bash
# `npm test`: set up what is missing, type-check, lint, then run every mocha test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The renderer image's packages for the tests that run it as Lambda does: built once (aws-lambda-ric compiles a
# native addon, a minute or more), cached outside the project; the build's time is printed when it happens.
npx ts-node --transpile-only -e 'require("./local/imagePackages").imagePackages(process.cwd()).catch((error) => { console.error(`test: ${error.message}`); process.exit(1); })'
npx tsc -p tsconfig.json --noEmit
npx biome ci . --colors=off
# Every test file unless some are named: mocha would add a config file's spec to the files named on its command line.
named=false
for arg in "$@"; do case "$arg" in *.ts | *.js) named=true ;; esac; done
$named || set -- "$@" 'tests/**/*.test.ts'
npx mocha "$@"
