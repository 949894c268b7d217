#!/bin/bash
# Drive Maestro's real bash tool (driver.mjs + your local bundle of it) with /bin/bash and with
# maestro-sh as $SHELL, against a local maestro-platform-dev, and report what differs.
#
#   scripts/maestro-bash-tool/compare.sh BUNDLE [MAESTRO_SH] [MAESTRO_PLATFORM_DEV]
#
# BUNDLE: an ES module exporting Maestro's `bashTool` (README.md). The binaries default to
# target/debug. Prints "same"/"DIFF" per command and mode (pass-through, observe, governed),
# then the Platform scenarios. Exit status: the number of unexpected results (0 = as documented).
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bundle=$(realpath "${1:?usage: compare.sh BUNDLE [MAESTRO_SH] [MAESTRO_PLATFORM_DEV]}")
msh=$(realpath "${2:-$repo/target/debug/maestro-sh}")
dev=$(realpath "${3:-$repo/target/debug/maestro-platform-dev}")
S=$(mktemp -d /tmp/maestro-bash-tool.XXXXXX)
mkdir -p "$S/home" "$S/work" "$S/data"
cat > "$S/policy.json" <<'JSON'
{"default":"allow","approval_ttl_ms":60000,"rules":[
 {"action":"deny","command_prefixes":["rm -f denied"],"reason":"no removing that"},
 {"action":"require_approval","command_prefixes":["touch approved"],"reason":"a human must look"}]}
JSON
printf 'agent-tok' > "$S/cred" && chmod 600 "$S/cred"
# The production setup: Maestro's bridge flag in the snapshot (mutating commands governed,
# read-only ones observed, Maestro's own execution looked up first).
echo '{"schema_version":1,"flags":[{"key":"maestro.platform_runtime.tool_execution_bridge","enabled":true}]}' > "$S/flags.json"
"$dev" serve --addr 127.0.0.1:0 --token agent-tok --reviewer-token rev-tok --org org-dev \
  --policy "$S/policy.json" > "$S/url" 2>/dev/null &
plat=$!
trap 'kill $plat 2>/dev/null; rm -rf "$S"' EXIT
for _ in $(seq 100); do [ -s "$S/url" ] && break; sleep 0.1; done
url=$(head -1 "$S/url")
export MAESTRO_PLATFORM_DEV_URL=$url MAESTRO_PLATFORM_DEV_TOKEN=agent-tok \
  MAESTRO_PLATFORM_DEV_REVIEWER_TOKEN=rev-tok MAESTRO_PLATFORM_DEV_ORG=org-dev
bad=0

# tool MODE [driver options] -- COMMAND: the tool's result text. XENV adds variables.
tool() {
  local mode=$1 sh; shift
  case $mode in
    bash) sh=(SHELL=/bin/bash) ;;
    pass) sh=(SHELL=$msh) ;;
    observe) sh=(SHELL=$msh MAESTRO_SH_MODE=observe) ;;
    governed) sh=(SHELL=$msh MAESTRO_SH_MODE=governed) ;;
    bridge) sh=(SHELL=$msh EVALOPS_FEATURE_FLAGS_PATH=$S/flags.json) ;;
  esac
  # The same variables under every shell (the *TOKEN* one is stripped by Maestro anyway).
  (cd "$S/work" && env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$S/home" LC_ALL=C USER="$(id -un)" \
    TOOL_EXECUTION_SERVICE_URL="$url" TOOL_EXECUTION_SERVICE_ORGANIZATION_ID=org-dev \
    TOOL_EXECUTION_SERVICE_WORKSPACE_ID=ws-dev TOOL_EXECUTION_SERVICE_TOKEN=agent-tok \
    MAESTRO_SH_CREDENTIALS_FILE="$S/cred" MAESTRO_SH_DATA_DIR="$S/data" \
    MAESTRO_SH_EVENTS_FILE="$S/events.jsonl" MAESTRO_SESSION_ID=sess-1 MAESTRO_AGENT_RUN_ID=run-1 \
    "${sh[@]}" ${XENV:-} node "$here/driver.mjs" --bundle "$bundle" "$@")
}
state() { # the newest execution's state for a command
  curl -s -H 'Authorization: Bearer agent-tok' -H 'X-Organization-ID: org-dev' \
    -H 'Content-Type: application/json' -d '{"limit":500}' \
    "$url/toolexecution.v1.ToolExecutionService/ListToolExecutions" |
    jq -r --arg c "$1" '[.executions[] | select(.arguments.command == $c)] | last | .state // "none"'
}
pending_id() { "$dev" pending | grep -F -- "$1" | head -1 | cut -d' ' -f1; }
check() { # check WHAT GOT WANT
  if [ "$2" == "$3" ]; then echo "same  $1"; else echo "DIFF  $1"; echo "      want: ${3//$'\n'/⏎}"; echo "      got:  ${2//$'\n'/⏎}"; bad=$((bad+1)); fi
}

echo "== tool results, bash vs maestro-sh (its path shown as /bin/bash)"
while IFS= read -r cmd; do
  [ -z "$cmd" ] && continue
  ref=$(tool bash --timeout 5 -- "$cmd"; echo x); ref=${ref%x}
  for m in pass observe governed bridge; do
    got=$(tool $m --timeout 5 -- "$cmd"; echo x); got=${got%x}
    check "$m: $cmd" "${got//$msh//bin/bash}" "$ref"
  done
done < "$here/commands.txt"

echo "== governed, Platform decides"
t=$(tool governed -- 'rm -f denied-file')
check "deny is one stderr line" "$(printf '%s' "$t" | grep -c '^maestro-sh: denied: ')|${t##*$'\n'}" "1|Exit code: 126"
c='touch approved-1 && echo made; echo e >&2; exit 4'
tool governed --timeout 60 -- "$c" > "$S/approved.out" &
for _ in $(seq 100); do id=$(pending_id approved-1); [ -n "$id" ] && break; sleep 0.2; done
"$dev" approve "$id" > /dev/null; wait $!
check "approved by a reviewer reads as bash" "$(cat "$S/approved.out")" "$(tool bash -- "$c")"

for m in governed bridge; do
  echo "== $m: Maestro's timeout kills an approval wait; the retry adopts"
  c="touch approved-$m && echo made-$m"
  n0=$(ls "$S/data/adopt" 2>/dev/null | wc -l)
  check "killed wait reads as a timeout" "$(tool $m --timeout 3 -- "$c")" "⏱️ Command timed out after 3s"
  check "left open for the retry (README: adoption window)" "$(state "$c")" TOOL_EXECUTION_STATE_WAITING_APPROVAL
  for _ in $(seq 100); do [ "$(ls "$S/data/adopt" 2>/dev/null | wc -l)" -gt "$n0" ] && break; sleep 0.2; done
  tool $m --timeout 60 -- "$c" > "$S/retry.out" &
  sleep 1; "$dev" approve "$(pending_id "approved-$m")" > /dev/null; wait $!
  check "the retry runs once and reads as bash" "$(cat "$S/retry.out")" "made-$m"
  check "one execution, succeeded" "$(state "$c")" TOOL_EXECUTION_STATE_SUCCEEDED
  check "nothing pending" "$("$dev" pending)" "no pending approval requests"
done

echo "== Maestro's timeout kills a running command"
for m in governed observe bridge; do
  c="echo $m-start; touch $m-file; sleep 30"
  check "$m: reads as a timeout" "$(tool $m --timeout 2 -- "$c")" "$m-start"$'\n\n\n'"⏱️ Command timed out after 2s"
  for _ in $(seq 100); do [ "$(state "$c")" == TOOL_EXECUTION_STATE_FAILED ] && break; sleep 0.2; done
  check "$m: the kill is recorded" "$(state "$c")" TOOL_EXECUTION_STATE_FAILED
done
exit $bad
