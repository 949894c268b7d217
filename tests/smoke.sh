#!/usr/bin/env bash
# CI smoke of the end-to-end demo: runs demo/run.sh non-interactively and fails on any outcome,
# exit status or id mismatch between the sidecar and Platform's timeline. The full narration is
# printed only when something is wrong.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if demo/run.sh >"$log" 2>&1; then
    tail -1 "$log"
else
    status=$?
    cat "$log"
    echo "smoke: demo/run.sh failed (exit $status)" >&2
    exit "$status"
fi
