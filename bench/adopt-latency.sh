#!/usr/bin/env bash
# Time from a reviewer's approval to the adopting retry running the command, after the first
# run was SIGKILLed while it waited (its guardian holds the resume token and resumes; the retry
# only waits for RUNNING). Against maestro-platform-dev on loopback, debug build.
#
#   bench/adopt-latency.sh [N] [WAIT_S]    N rounds (default 5); WAIT_S: the retry waits this
#                                          long before the approval (default 8: long-poll
#                                          windows have grown by then)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -q --workspace
bin=$PWD/target/debug
rounds=${1:-5}
wait_s=${2:-8}
work=$(mktemp -d)
trap 'kill "${plat_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
cat >"$work/policy.json" <<'JSON'
{"default":"allow","approval_ttl_ms":60000,"rules":[{"action":"require_approval","command_prefixes":["echo approve-me"],"reason":"needs a human"}]}
JSON
for round in $(seq 1 "$rounds"); do
  rm -rf "$work/data" "$work/runs" "$work/ev.jsonl"
  "$bin/maestro-platform-dev" serve --policy "$work/policy.json" >"$work/url" 2>/dev/null &
  plat_pid=$!
  for _ in $(seq 1 100); do [ -s "$work/url" ] && break; sleep 0.05; done
  url=$(head -1 "$work/url")
  export TOOL_EXECUTION_SERVICE_URL=$url TOOL_EXECUTION_SERVICE_TOKEN=dev-token \
    TOOL_EXECUTION_SERVICE_ORGANIZATION_ID=org-dev TOOL_EXECUTION_SERVICE_WORKSPACE_ID=ws \
    MAESTRO_SH_MODE=governed MAESTRO_SH_DATA_DIR=$work/data MAESTRO_SESSION_ID=bench \
    MAESTRO_SH_EVENTS_FILE=$work/ev.jsonl MAESTRO_SH_ADOPT_WINDOW_MS=3000
  cmd="echo approve-me; date +%s.%N >> $work/runs"
  MAESTRO_TOOL_CALL_ID=first setsid "$bin/maestro-sh" -c "$cmd" </dev/null >/dev/null 2>&1 &
  first=$!
  sleep 1
  kill -9 -- "-$first"
  wait "$first" 2>/dev/null || true
  for _ in $(seq 1 100); do ls "$work/data/adopt/"[0-9a-f]* >/dev/null 2>&1 && break; sleep 0.05; done
  MAESTRO_TOOL_CALL_ID=retry setsid "$bin/maestro-sh" -c "$cmd" </dev/null >/dev/null 2>&1 &
  retry=$!
  sleep "$wait_s"
  apr=$(grep -o '"approval_request_id":"apr_[0-9a-f]*"' "$work/ev.jsonl" | head -1 | cut -d'"' -f4)
  t0=$(date +%s.%N)
  "$bin/maestro-platform-dev" approve "$apr" --url "$url" --reviewer-token dev-reviewer-token \
    --org org-dev --by bench >/dev/null
  wait "$retry" || true
  t1=$(cat "$work/runs")
  awk -v r="$round" -v a="$t0" -v b="$t1" 'BEGIN { printf "round %d: approve -> run %d ms\n", r, (b - a) * 1000 }'
  kill "$plat_pid"; wait "$plat_pid" 2>/dev/null || true
done
