#!/usr/bin/env bash
# `npm run test:mutations [-- [--baseline] [tests/mutations/<name>.patch ...]]`: each patch is a deliberate bug that
# named tests must catch. For each one: a copy of the working tree (tracked and untracked files, not ignored ones;
# node_modules linked), the patch applied with `git apply`, then the test files its header names, which must FAIL.
# Prints one line per mutation, "killed" or "SURVIVED", and exits 1 if any survived or no longer applies.
# --baseline also runs the same tests on the unpatched copy first, which must pass (a copy that cannot run its
# tests would otherwise kill every mutation).
#
# Header of a patch (lines before the diff, which `git apply` ignores):
#   # mutation: <one line: what the bug is>
#   # kills: <space-separated test files that must fail>
#   # grep: <mocha -g pattern>            (optional: only the tests whose title matches)
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

baseline=false
patches=()
for arg in "$@"; do
    case "$arg" in
        --baseline) baseline=true ;;
        *) patches+=("$(realpath "$arg")") ;;
    esac
done
if [ "${#patches[@]}" -eq 0 ]; then
    for patch in "$root"/tests/mutations/*.patch; do [ -e "$patch" ] && patches+=("$patch"); done
fi
if [ "${#patches[@]}" -eq 0 ]; then
    echo "test-mutations: no tests/mutations/*.patch" >&2
    exit 1
fi

logs="$(mktemp -d "${TMPDIR:-/tmp}/render-farm-mutations-XXXXXX")"
header() { sed -n "s/^# $1: *//p" "$2" | head -n 1; }

# A copy of the working tree as it is now, with the project's node_modules linked in.
copy_tree() {
    local into="$1"
    mkdir -p "$into"
    git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' file; do [ -e "$file" ] && printf '%s\0' "$file"; done |
        tar --null -T - -cf - | tar -xf - -C "$into"
    ln -s "$root/node_modules" "$into/node_modules"
}

# Runs the tests in `dir`; returns mocha's exit code; the output goes to `log`.
run_tests() {
    local dir="$1" log="$2" grep="$3"
    shift 3
    local args=("$@")
    [ -n "$grep" ] && args+=(-g "$grep")
    (cd "$dir" && npx mocha "${args[@]}") >"$log" 2>&1
}

survivors=0
for patch in "${patches[@]}"; do
    name="$(basename "$patch" .patch)"
    mutation="$(header mutation "$patch")"
    read -r -a kills <<<"$(header kills "$patch")"
    grep="$(header grep "$patch")"
    if [ -z "$mutation" ] || [ "${#kills[@]}" -eq 0 ]; then
        echo "$name: BROKEN (the header needs '# mutation:' and '# kills:')"
        survivors=$((survivors + 1))
        continue
    fi
    dir="$logs/$name"
    copy_tree "$dir"
    if $baseline; then
        if ! run_tests "$dir" "$logs/$name.baseline.log" "$grep" "${kills[@]}"; then
            echo "$name: BASELINE FAILS (the tests fail without the mutation: $logs/$name.baseline.log)"
            survivors=$((survivors + 1))
            rm -rf "$dir"
            continue
        fi
    fi
    if ! (cd "$dir" && git apply "$patch") 2>"$logs/$name.apply.log"; then
        echo "$name: DOES NOT APPLY ($(head -n 1 "$logs/$name.apply.log"))"
        survivors=$((survivors + 1))
        rm -rf "$dir"
        continue
    fi
    run_tests "$dir" "$logs/$name.log" "$grep" "${kills[@]}"
    code=$?
    summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$logs/$name.log" | tail -n 1)"
    failed="$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$summary")"
    if [ "$code" -ne 0 ] && [ -n "$summary" ] && [ "$failed" -gt 0 ]; then
        echo "$name: killed ($mutation; $summary: $logs/$name.log)"
    elif [ "$code" -ne 0 ]; then
        # Mocha failed before any test did (a syntax error, a missing file): the mutation proves nothing.
        echo "$name: ERROR (mocha exited $code without a failing test: $logs/$name.log)"
        survivors=$((survivors + 1))
    else
        echo "$name: SURVIVED ($mutation; ${kills[*]} passed: $logs/$name.log)"
        survivors=$((survivors + 1))
    fi
    rm -rf "$dir"
done
exit $((survivors > 0 ? 1 : 0))
