#!/usr/bin/env bash
# The end-to-end governed demo: build, start the local Platform (maestro-platform-dev) on a free
# port, run a scripted agent session through maestro-sh exactly as Maestro would
# (`$SHELL -c '<command>'`, one MAESTRO_TOOL_CALL_ID per tool call), then print Platform's run
# timeline and the sidecar events, and check that they join on the same ids.
#
#   demo/run.sh            narrated run; exits non-zero if any outcome or id does not match
#   DEMO_KEEP=1 demo/run.sh   keep the work dir (events file, Platform log) for a look
#
# Needs only what a fresh machine has: the Rust toolchain, python3, git.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bold() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
step() { echo; bold "== $*"; }

step "building the release binaries (scripts/build-release.sh)"
dist=$(scripts/build-release.sh)
SH="$dist/maestro-sh"
PLATFORM="$dist/maestro-platform-dev"
echo "maestro-sh:           $SH"
echo "maestro-platform-dev: $PLATFORM"

work=$(mktemp -d "${TMPDIR:-/tmp}/maestro-sh-demo.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "${DEMO_KEEP:-}" ]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Start a local Platform; sets $url. It prints its URL on stdout once it is listening.
start_platform() {
    local name=$1
    shift
    "$PLATFORM" serve --addr 127.0.0.1:0 --token demo-token --reviewer-token demo-reviewer-token \
        --org org-demo "$@" \
        >"$work/$name.url" 2>"$work/$name.log" &
    pids+=($!)
    for _ in $(seq 200); do
        [ -s "$work/$name.url" ] && break
        sleep 0.05
    done
    url=$(head -1 "$work/$name.url")
    [ -n "$url" ] || { echo "demo: $name did not start; see $work/$name.log" >&2; exit 1; }
}

step "starting the local Platform with demo/policy.json"
start_platform platform --policy "$root/demo/policy.json"
echo "Platform: $url  (policy: allow by default, CRITICAL needs a human, 'git push' is denied)"
platform_url=$url

# A second Platform, stopped at once: its address is a Platform that is down.
start_platform gone
down_url=$url
kill "${pids[-1]}"
wait "${pids[-1]}" 2>/dev/null || true

# The agent's world: a scratch repository, Maestro's context, the bridge flag on, a sidecar file.
repo="$work/repo"
mkdir -p "$repo/build"
git -C "$repo" init -q
printf 'draft\n' >"$repo/README.md"
events="$work/events.jsonl"
printf '{"schema_version":1,"flags":[{"key":"maestro.platform_runtime.tool_execution_bridge","enabled":true}]}\n' \
    >"$work/flags.json"
creds="$work/credentials"
printf 'demo-token\n' >"$creds"
chmod 600 "$creds"
export EVALOPS_FEATURE_FLAGS_PATH="$work/flags.json"
export TOOL_EXECUTION_SERVICE_URL="$platform_url"
export TOOL_EXECUTION_SERVICE_ORGANIZATION_ID=org-demo
export TOOL_EXECUTION_SERVICE_WORKSPACE_ID=ws-demo
# As under Maestro, no *TOKEN* variable reaches the shell: the token comes from a private file.
export MAESTRO_SH_CREDENTIALS_FILE="$creds"
export MAESTRO_SESSION_ID=sess-demo
export MAESTRO_AGENT_RUN_ID="run-demo-$$"
export MAESTRO_ACTOR_ID=agent-demo
export MAESTRO_SH_EVENTS_FILE="$events"
export MAESTRO_SH_DATA_DIR="$work/data"
export MAESTRO_PLATFORM_DEV_URL="$platform_url" MAESTRO_PLATFORM_DEV_TOKEN=demo-token MAESTRO_PLATFORM_DEV_ORG=org-demo
cd "$repo"

# One tool call, as Maestro makes it: `$SHELL -c CMD` with the call id in MAESTRO_TOOL_CALL_ID.
# Appends "step expected_outcome expected_status actual_status" to $work/expect.
call() {
    local id=$1 expect=$2 want_status=$3 cmd=$4
    echo
    bold "\$ $cmd"
    echo "  (tool call $id; expect: $expect)"
    set +e
    MAESTRO_TOOL_CALL_ID=$id "$SH" -c "$cmd" </dev/null 2>&1 | sed 's/^/  | /'
    local status=${PIPESTATUS[0]}
    set -e
    echo "  exit status $status"
    echo "$id $expect $want_status $status" >>"$work/expect"
}

step "1. a read-only command: observed (runs at once, recorded after)"
call call-demo-1 observed 0 'git status --short && ls'

step "2. a mutating command: governed, Platform allows it"
call call-demo-2 allowed 0 'printf "hello from the agent\n" > notes.txt && cat notes.txt'

step "3. a destructive command: Platform asks a human; a second process approves it"
# The reviewer: waits for the pending approval on the sidecar, then approves it, as a person
# would from Platform's UI or the CLI.
(
    for _ in $(seq 400); do
        id=$(python3 "$root/demo/check.py" pending-approval "$events" call-demo-3 2>/dev/null || true)
        if [ -n "$id" ]; then
            sleep 1
            # The agent's token cannot approve (403): only the reviewer credential resolves.
            if "$PLATFORM" approve "$id" --reviewer-token demo-token --by agent >/dev/null 2>&1; then
                echo "  [reviewer] the agent's credential approved: governance broken" >&2
                exit 1
            fi
            echo "  [reviewer] (the agent's credential was refused: 403)"
            echo "  [reviewer] maestro-platform-dev approve $id --by reviewer@example.com"
            MAESTRO_PLATFORM_DEV_REVIEWER_TOKEN=demo-reviewer-token \
                "$PLATFORM" approve "$id" --by reviewer@example.com --reason "build dir is disposable" |
                sed 's/^/  [reviewer] /'
            exit 0
        fi
        sleep 0.05
    done
    echo "  [reviewer] no pending approval appeared" >&2
) &
reviewer=$!
call call-demo-3 approved 0 'rm -rf build && echo "build/ removed"'
wait "$reviewer"

step "4. a command Platform's policy denies: not run"
call call-demo-4 denied 126 'git push origin HEAD:main && touch pushed'

step "5. Platform is down: governed mode fails closed"
TOOL_EXECUTION_SERVICE_URL=$down_url TOOL_EXECUTION_SERVICE_MAX_ATTEMPTS=1 \
    call call-demo-5 platform_unavailable 126 'touch should-not-exist'

cd "$root"
step "Platform's timeline for run $MAESTRO_AGENT_RUN_ID (maestro-platform-dev timeline --run …)"
"$PLATFORM" timeline --run "$MAESTRO_AGENT_RUN_ID"
"$PLATFORM" timeline --run "$MAESTRO_AGENT_RUN_ID" --json >"$work/timeline.json"

step "sidecar events ($events), as Maestro would attach them to its tool results"
python3 demo/check.py show-events "$events"

step "checking: outcomes, exit statuses, what ran, and ids joining sidecar and timeline"
[ ! -e "$repo/pushed" ] || { echo "demo: the denied command ran" >&2; exit 1; }
[ ! -e "$repo/should-not-exist" ] || { echo "demo: a command ran while Platform was down" >&2; exit 1; }
[ ! -e "$repo/build" ] || { echo "demo: the approved command did not run" >&2; exit 1; }
python3 demo/check.py verify "$events" "$work/timeline.json" "$work/expect"
