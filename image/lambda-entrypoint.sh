#!/bin/sh
# The renderer image's ENTRYPOINT. Lambda starts an image function as ENTRYPOINT + CMD, so the handler
# ("renderer/handler.handler") arrives here as $1. aws-lambda-ric 4.x ignores its arguments and reads the
# handler only from _HANDLER, which Lambda does not set for image functions (or sets to ""): export it
# from the CMD, as AWS's own base images do, then replace this shell with the runtime client.
set -eu
if [ "$#" -lt 1 ] || [ -z "$1" ]; then
    echo "lambda-entrypoint.sh: the handler (e.g. renderer/handler.handler) must be the first argument (the image's CMD)" >&2
    exit 142
fi
export _HANDLER="$1"
task_root="${LAMBDA_TASK_ROOT:-/var/task}"
exec node "$task_root/node_modules/aws-lambda-ric/index.mjs"
