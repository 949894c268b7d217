#!/usr/bin/env bash
# CPU-side cost of a governed allow, robust to other load on the machine (unlike wall-clock):
#
#   bench/profile.sh [MAESTRO_SH_BINARY]     default: the release build in target/dist
#
# - `perf stat -r $RUNS` (task-clock, context switches, migrations, page faults; every process
#   of the run counted: maestro-sh, its helpers and bash) of the governed run, of the observed
#   run, and of `bash -c true`;
# - one governed run under `strace -f`: processes and threads created (fork/clone/clone3/vfork),
#   system calls by maestro-sh's own processes (bash's excluded), rt_sigaction calls, and the
#   time from maestro-sh's execve to bash's execve.
# Needs perf and strace; starts its own maestro-platform-dev on a free loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."
sh_bin=${1:-}
if [ -z "$sh_bin" ]; then
    sh_bin="$(scripts/build-release.sh)/maestro-sh"
fi
plat_bin="$(dirname "$sh_bin")/maestro-platform-dev"
[ -x "$plat_bin" ] || plat_bin=target/dist/maestro-platform-dev
runs=${RUNS:-200}
work=$(mktemp -d)
trap 'kill "${plat_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

"$plat_bin" serve --addr 127.0.0.1:0 >"$work/url" 2>"$work/platform.log" &
plat_pid=$!
for _ in $(seq 100); do [ -s "$work/url" ] && break; sleep 0.05; done
export TOOL_EXECUTION_SERVICE_URL=$(head -1 "$work/url") EVALOPS_TOKEN=dev-token
export EVALOPS_ORGANIZATION_ID=org-dev EVALOPS_WORKSPACE_ID=ws-bench
export MAESTRO_SH_DATA_DIR=$work/data MAESTRO_SESSION_ID=bench

stat() {
    local name=$1
    shift
    perf stat -r "$runs" -x, -e task-clock,context-switches,cpu-migrations,page-faults "$@" \
        2>"$work/stat" >/dev/null
    awk -F, -v name="$name" '
        $3 == "task-clock" { tc = $1 } $3 == "context-switches" { cs = $1 }
        $3 == "cpu-migrations" { mg = $1 } $3 == "page-faults" { pf = $1 }
        END { printf "%-12s task-clock %.3f ms  context-switches %.1f  migrations %.1f  page-faults %.0f\n", name, tc, cs, mg, pf }
    ' "$work/stat"
}

echo "== perf stat, $runs runs each (all processes of a run counted)"
# Warm up the Platform and the page cache.
for _ in 1 2 3; do MAESTRO_SH_MODE=governed "$sh_bin" -c true; done
stat bash bash -c true
stat governed env MAESTRO_SH_MODE=governed "$sh_bin" -c true
stat observe env MAESTRO_SH_MODE=observe "$sh_bin" -c true
stat env+bash env bash -c true

echo
echo "== one governed run under strace -f"
MAESTRO_SH_MODE=governed strace -f -ttt -o "$work/trace" "$sh_bin" -c true
python3 - "$work/trace" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
bash_pids, ours, creates, sigactions, t0, tbash = set(), 0, {}, 0, None, None
for line in lines:
    m = re.match(r"(\d+)\s+([\d.]+)\s+(?:<\.\.\. )?(\w+)", line)
    if not m:
        continue
    pid, t, call = m.group(1), float(m.group(2)), m.group(3)
    if call == "execve" and t0 is None:
        t0 = t
    if call == "execve" and re.search(r'execve\("[^"]*/bash"', line):
        # The call's start (under strace -f the line may end "<unfinished ...>").
        bash_pids.add(pid)
        tbash = tbash or t
        continue
    if pid in bash_pids or "resumed>" in line or line.split()[2].startswith("+++") or line.split()[2].startswith("---"):
        continue
    ours += 1
    if call in ("fork", "vfork", "clone", "clone3"):
        kind = "thread" if "CLONE_THREAD" in line else ("vm-shared process" if "CLONE_VM" in line else "process (fork)")
        creates[kind] = creates.get(kind, 0) + 1
    if call == "rt_sigaction":
        sigactions += 1
print("created:", ", ".join(f"{n} {k}" for k, n in sorted(creates.items())) or "nothing")
print(f"system calls by maestro-sh's processes (bash's excluded): {ours}; rt_sigaction: {sigactions}")
if t0 is not None and tbash is not None:
    print(f"maestro-sh execve -> bash execve under strace: {(tbash - t0) * 1000:.2f} ms")
PY
