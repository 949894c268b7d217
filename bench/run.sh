#!/usr/bin/env bash
# Side-by-side timing of maestro-sh against the real bash, in one run (hyperfine).
#
#   bench/run.sh            pass-through, observe and governed-allow against maestro-platform-dev
#
# Figures to compare are ratios and differences against `bash -c true` measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; } >/dev/null
dist=$(scripts/build-release.sh)
sh_bin="$dist/maestro-sh"
work=$(mktemp -d)
trap 'kill "${plat_pid:-}" "${plat2_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
ln -s "$sh_bin" "$work/bash"
runs=${RUNS:-300}

echo "== binary"
ls -l "$sh_bin" | awk '{print "size (stripped, static): " $5 " bytes"}'
/usr/bin/time -f "peak RSS, pass-through: %M KiB" "$sh_bin" -c true
# The floor: a static C program that does nothing but exec the same bash ("one extra execve").
gcc -O2 -static -o "$work/exec-floor" bench/exec-floor.c 2>/dev/null ||
    gcc -O2 -o "$work/exec-floor" bench/exec-floor.c
echo
echo "== pass-through (governance off)"
hyperfine -N --warmup 30 --runs "$runs" --export-json "$work/pass.json" \
    -n bash 'bash -c true' -n maestro-sh "$sh_bin -c true" -n shim "$work/bash -c true" \
    -n exec-floor "$work/exec-floor -c true"

# The local Platform on a free port.
"$dist/maestro-platform-dev" serve --addr 127.0.0.1:0 >"$work/url" 2>"$work/platform.log" &
plat_pid=$!
for _ in $(seq 100); do [ -s "$work/url" ] && break; sleep 0.05; done
url=$(head -1 "$work/url")
export TOOL_EXECUTION_SERVICE_URL=$url EVALOPS_TOKEN=dev-token EVALOPS_ORGANIZATION_ID=org-dev EVALOPS_WORKSPACE_ID=ws-bench
export MAESTRO_SH_DATA_DIR=$work/data MAESTRO_SESSION_ID=bench

echo
echo "== governed allow and observe against maestro-platform-dev on loopback (each run a new step)"
hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/gov.json" \
    -n bash 'bash -c true' \
    -n governed "env MAESTRO_SH_MODE=governed $sh_bin -c true" \
    -n observe "env MAESTRO_SH_MODE=observe $sh_bin -c true" \
    -n 'env+bash (baseline for the env wrapper)' 'env bash -c true'

# Observe exit latency: once `true` has finished, how long until maestro-sh exits, with a
# healthy Platform and with one that stalls every ExecuteTool for 5 s (the record goes to the
# outbox and a detached sender after the 40 ms record wait). A second Platform, stalled.
"$dist/maestro-platform-dev" serve --addr 127.0.0.1:0 >"$work/url2" 2>"$work/platform2.log" &
plat2_pid=$!
for _ in $(seq 100); do [ -s "$work/url2" ] && break; sleep 0.05; done
url2=$(head -1 "$work/url2")
# Fault injection is an operator's act: the reviewer credential (the agent's gets 403). `-f`: a
# refused SetFaults fails the benchmark instead of timing a healthy Platform as "stalled".
curl -sf -X POST -H 'Content-Type: application/json' -H 'Authorization: Bearer dev-reviewer-token' \
    -H 'X-Organization-ID: org-dev' "$url2/maestro.dev.v1.DevService/SetFaults" \
    -d '{"faults":[{"method":"ExecuteTool","kind":"delay","delayMs":5000}]}' >/dev/null
echo
echo "== observe exit latency: healthy vs stalled Platform (record wait 40 ms, then spool + detached sender)"
hyperfine -N --warmup 5 --runs "${OBS_RUNS:-100}" --export-json "$work/obs.json" \
    -n bash 'bash -c true' \
    -n 'observe, healthy' "env MAESTRO_SH_MODE=observe $sh_bin -c true" \
    -n 'observe, stalled' "env MAESTRO_SH_MODE=observe TOOL_EXECUTION_SERVICE_URL=$url2 MAESTRO_SH_DATA_DIR=$work/data2 $sh_bin -c true" \
    -n 'env+bash (baseline for the env wrapper)' 'env bash -c true'
kill "$plat2_pid" 2>/dev/null || true

echo
echo "== peak RSS, governed run"
MAESTRO_SH_MODE=governed /usr/bin/time -f "peak RSS, governed: %M KiB" "$sh_bin" -c true

echo
echo "== medians, side by side (same run)"
python3 - "$work/pass.json" "$work/gov.json" "$work/obs.json" <<'PY'
import json, sys
def medians(path):
    return {r["command"]: r["median"] * 1000 for r in json.load(open(path))["results"]}
p, g = medians(sys.argv[1]), medians(sys.argv[2])
b = p["bash"]
print(f"pass-through: bash {b:.2f} ms, maestro-sh {p['maestro-sh']:.2f} ms ({p['maestro-sh'] / b:.2f}x), "
      f"bash link {p['shim']:.2f} ms ({p['shim'] / b:.2f}x), "
      f"static C exec-only floor {p['exec-floor']:.2f} ms ({p['exec-floor'] / b:.2f}x)")
base = g["env+bash (baseline for the env wrapper)"]
for name in ("governed", "observe"):
    print(f"{name}: {g[name]:.2f} ms = env+bash {base:.2f} ms + {g[name] - base:.2f} ms")
o = medians(sys.argv[3])
ob = o["env+bash (baseline for the env wrapper)"]
for name in ("observe, healthy", "observe, stalled"):
    r = [x for x in json.load(open(sys.argv[3]))["results"] if x["command"] == name][0]
    print(f"{name}: median {o[name]:.2f} ms = env+bash {ob:.2f} ms + {o[name] - ob:.2f} ms; "
          f"max {r['max'] * 1000:.2f} ms")
PY
