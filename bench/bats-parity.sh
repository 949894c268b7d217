#!/usr/bin/env bash
# bats-core's own test suite, run under the real bash and through maestro-sh, compared byte for
# byte: the acceptance check "bats-core's suite stays identical to bash", reproducible.
#
#   bench/bats-parity.sh BATS_CORE_DIR [options] [TEST_FILE...]
#
#   BATS_CORE_DIR      a checkout of bats-core (nothing is fetched; the suite is `bin/bats test`)
#   --modes "M ..."    which runs, of: bash pass governed observe (default: all four; `bash` is
#                      always run, as the reference)
#   --tty              run as bats-core's CI does: under `script` (a terminal), pretty formatter
#   --bin DIR          take maestro-sh and maestro-platform-dev from DIR (default: build them
#                      with scripts/build-release.sh, into target/dist)
#   --keep             keep the work directory (outputs, Platform log)
#   TEST_FILE...       files or directories relative to BATS_CORE_DIR (default: test)
#
# The modes, as README "Enable it" configures maestro-sh (shims first on PATH, SHELL set to it):
#   bash      the real bash, nothing of maestro-sh on PATH
#   pass      maestro-sh in pass-through (no flags, no mode): every bash is maestro-sh's execve
#   governed  MAESTRO_SH_MODE=governed against an allow-all maestro-platform-dev on loopback: the
#             outermost bash (bin/bats) is governed and supervised, nested shells hold its grant
#   observe   MAESTRO_SH_MODE=observe: every bash, nested ones too, runs supervised as
#             maestro-sh's child and is recorded (the Platform token comes from a credentials
#             file under a private HOME, since no token variable reaches a command)
# All runs share one environment otherwise (the same private HOME, TMPDIR, locale), so the only
# difference is maestro-sh. GNU parallel, when installed, enables bats' --jobs tests.
#
# Prints per mode the ok / not ok / skip counts and every test whose line differs from bash's,
# and exits 1 if any output (stdout or stderr, pids in bash's job reports masked) or exit status
# differs from the real bash's.
set -euo pipefail

usage() { sed -n '2,27s/^# \{0,1\}//p' "$0"; exit 2; }

[ $# -ge 1 ] || usage
case $1 in -h | --help) usage ;; esac
bats_dir=$(cd "$1" && pwd)
shift
[ -x "$bats_dir/bin/bats" ] || { echo "bats-parity: $bats_dir/bin/bats not found: give a bats-core checkout" >&2; exit 2; }
modes="bash pass governed observe"
tty=
bin=
keep=
files=()
while [ $# -gt 0 ]; do
    case $1 in
    --modes) modes="bash $2"; shift 2 ;;
    --tty) tty=1; shift ;;
    --bin) bin=$(cd "$2" && pwd); shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) usage ;;
    -*) echo "bats-parity: unknown option $1" >&2; exit 2 ;;
    *) files+=("$1"); shift ;;
    esac
done
[ ${#files[@]} -gt 0 ] || files=(test)
if [ -n "$tty" ] && ! command -v script >/dev/null; then
    echo "bats-parity: --tty needs script(1) (util-linux)" >&2
    exit 2
fi

# bats' CTRL-C tests send SIGINT; a shell started in the background without job control (`cmd &`
# in a script, nohup) ignores it for good, and then those 8 tests fail under every shell alike.
if (( 0x$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/self/status 2>/dev/null || echo 0) & 2 )); then
    echo "bats-parity: warning: SIGINT is ignored here (started in the background?): bats' CTRL-C tests will fail under bash too" >&2
fi

root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$bin" ]; then
    bin=$("$root/scripts/build-release.sh")
fi
sh_bin="$bin/maestro-sh"
platform_bin="$bin/maestro-platform-dev"
[ -x "$sh_bin" ] && [ -x "$platform_bin" ] || { echo "bats-parity: no maestro-sh / maestro-platform-dev in $bin" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/bats-parity.XXXXXX")
platform_pid=
cleanup() {
    [ -z "$platform_pid" ] || kill "$platform_pid" 2>/dev/null || true
    if [ -n "$keep" ]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The shims, as installed: `bash` and `sh` links to maestro-sh, first on PATH.
mkdir -p "$work/shims" "$work/home/.config/maestro-sh" "$work/tmp" "$work/data"
ln -s "$sh_bin" "$work/shims/bash"
ln -s "$sh_bin" "$work/shims/sh"
chmod 700 "$work/data"

# The reference must be the real bash: nothing on the caller's PATH may lead to maestro-sh.
real_bash=$(command -v bash)
if [ "$(readlink -f "$real_bash")" = "$(readlink -f "$sh_bin")" ]; then
    echo "bats-parity: bash on PATH ($real_bash) is maestro-sh; remove its shims from PATH" >&2
    exit 2
fi

# An allow-all local Platform.
token="bats-parity-token"
org="org-bats-parity"
printf '{"default": "allow", "rules": []}\n' >"$work/allow.json"
printf '%s\n' "$token" >"$work/home/.config/maestro-sh/credentials"
chmod 600 "$work/home/.config/maestro-sh/credentials"
"$platform_bin" serve --addr 127.0.0.1:0 --token "$token" --reviewer-token "$token-reviewer" \
    --org "$org" --policy "$work/allow.json" >"$work/platform.url" 2>"$work/platform.log" &
platform_pid=$!
for _ in $(seq 200); do
    [ -s "$work/platform.url" ] && break
    sleep 0.05
done
url=$(head -1 "$work/platform.url")
[ -n "$url" ] || { echo "bats-parity: the local Platform did not start; see $work/platform.log" >&2; exit 1; }

# How many ExecuteTool requests the Platform has received (its request log, a dev RPC): under
# observe every nested bash asks once, under governed only the outermost.
executions() {
    python3 - "$url" "$token" "$org" <<'PY'
import json, sys, urllib.request
url, token, org = sys.argv[1:]
req = urllib.request.Request(url + "/maestro.dev.v1.DevService/GetRequests", data=b"{}", headers={
    "Authorization": "Bearer " + token, "X-Organization-ID": org, "Content-Type": "application/json"})
reqs = json.load(urllib.request.urlopen(req)).get("requests", [])
print(sum(1 for r in reqs if r.get("method") == "ExecuteTool"))
PY
}

# One run of the suite in `mode`; stdout to $work/MODE.out, stderr to $work/MODE.err.
run_mode() {
    local mode=$1
    # A clean environment: nothing of the caller's maestro-sh or Platform settings leaks in.
    local -a env=(HOME="$work/home" TMPDIR="$work/tmp" LC_ALL=C.UTF-8 TERM="${TERM:-dumb}"
        USER="${USER:-$(id -un)}" LOGNAME="${LOGNAME:-$(id -un)}")
    case $mode in
    bash) env+=(PATH="$PATH" SHELL="$real_bash") ;;
    *) env+=(PATH="$work/shims:$PATH" SHELL="$work/shims/bash") ;;
    esac
    case $mode in
    governed | observe)
        env+=(MAESTRO_SH_MODE="$mode" MAESTRO_SH_DATA_DIR="$work/data"
            TOOL_EXECUTION_SERVICE_URL="$url"
            TOOL_EXECUTION_SERVICE_ORGANIZATION_ID="$org"
            TOOL_EXECUTION_SERVICE_WORKSPACE_ID=ws-bats-parity
            MAESTRO_SESSION_ID="bats-parity-$mode")
        ;;
    esac
    local -a cmd
    if [ -n "$tty" ]; then
        # bats-core's CI: `script -q -e -c "bash {0}"`, TERM=linux, the pretty formatter.
        local line="bin/bats --print-output-on-failure"
        local f
        for f in "${files[@]}"; do line+=" $(printf '%q' "$f")"; done
        cmd=(script -q -e -c "$line" /dev/null)
        env+=(TERM=linux)
    else
        cmd=(bin/bats --tap --print-output-on-failure "${files[@]}")
    fi
    local before
    before=$(executions)
    local start=$SECONDS status=0
    (cd "$bats_dir" && env -i "${env[@]}" "${cmd[@]}" \
        >"$work/$mode.out" 2>"$work/$mode.err" </dev/null) || status=$?
    local ran=$((SECONDS - start)) recorded=$(($(executions) - before))
    local ok notok skip
    ok=$(grep -c '^ok ' "$work/$mode.out" || true)
    notok=$(grep -c '^not ok ' "$work/$mode.out" || true)
    skip=$(grep -c '^ok .* # skip' "$work/$mode.out" || true)
    if [ -n "$tty" ]; then
        local summary
        summary=$(grep -a -E '^[0-9]+ tests?, ' "$work/$mode.out" | tail -1 | tr -d '\r' || true)
        printf '%-9s exit %-3s %4ss  %s  (ExecuteTool calls: %s)\n' "$mode" "$status" "$ran" \
            "${summary:-no summary line}" "$recorded"
    else
        printf '%-9s exit %-3s %4ss  ok %s (skip %s), not ok %s  (ExecuteTool calls: %s)\n' \
            "$mode" "$status" "$ran" "$((ok - skip))" "$skip" "$notok" "$recorded"
    fi
    echo "$status" >"$work/$mode.status"
}

# The one thing two runs of the same shell never share: pids, which bash prints in its job
# reports ("line 639:  4856 Killed   bats ..."); they are masked before comparing.
normalise() {
    sed -E 's/(line [0-9]+:) +[0-9]+ /\1 PID /g' "$1"
}

differs=0
for mode in $modes; do
    run_mode "$mode"
    for stream in out err; do
        normalise "$work/$mode.$stream" >"$work/$mode.$stream.cmp"
    done
    [ "$mode" = bash ] && continue
    for stream in status out.cmp err.cmp; do
        if ! cmp -s "$work/bash.$stream" "$work/$mode.$stream"; then
            differs=1
            echo "  $mode: $stream differs from bash's:"
            if [ "$stream" = out.cmp ] && [ -z "$tty" ]; then
                # Per test: the lines of tests whose result differs.
                diff <(grep -E '^(not )?ok ' "$work/bash.out") <(grep -E '^(not )?ok ' "$work/$mode.out") |
                    sed 's/^/    /' | head -40 || true
            fi
            diff "$work/bash.$stream" "$work/$mode.$stream" | sed 's/^/    /' | head -60 || true
        fi
    done
done
if [ "$differs" = 0 ]; then echo "identical to bash: $modes"; else keep=1; fi
exit "$differs"
