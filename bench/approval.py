#!/usr/bin/env python3
"""Approval-path benchmark against maestro-platform-dev on loopback (stdlib only).

    bench/approval.py [--rounds N] [--idle-seconds S]

1. Latency from the moment a person resolves the approval (ResolveApproval returns) to the
   moment the command starts (it writes a timestamp), over N rounds with the approval landing at
   a random point of maestro-sh's wait (0.2-4 s in). Prints p50/p95/max.
2. Cost of waiting: one shim waits S seconds (default 60) for a decision; prints the Platform
   requests it made per second.
Uses the release binaries from scripts/build-release.sh.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN, ORG = "bench-token", "org-bench"
# Approvals are resolved with the reviewer credential (the agent's token gets 403).
REVIEWER_TOKEN = "bench-reviewer-token"


def call(url, path, body, token=TOKEN):
    req = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "X-Organization-ID": ORG,
                 "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def pending_approval(events_path):
    try:
        with open(events_path) as f:
            for line in f:
                e = json.loads(line)
                if e["type"] == "maestro.events.approval_hit":
                    return e["data"]["approval_request_id"]
    except FileNotFoundError:
        pass
    return None


def wait_pending(events_path, proc):
    deadline = time.time() + 20
    while time.time() < deadline:
        a = pending_approval(events_path)
        if a:
            return a
        if proc.poll() is not None:
            sys.exit(f"maestro-sh exited early: {proc.stderr.read()}")
        time.sleep(0.005)
    sys.exit("no pending approval within 20 s")


def shim(dist, url, work, step, command):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": work,
        "MAESTRO_SH_MODE": "governed",
        "TOOL_EXECUTION_SERVICE_URL": url,
        "TOOL_EXECUTION_SERVICE_TOKEN": TOKEN,
        "TOOL_EXECUTION_SERVICE_ORGANIZATION_ID": ORG,
        "TOOL_EXECUTION_SERVICE_WORKSPACE_ID": "ws-bench",
        "MAESTRO_TOOL_CALL_ID": step,
        "MAESTRO_SH_DATA_DIR": os.path.join(work, "data"),
        "MAESTRO_SH_EVENTS_FILE": os.path.join(work, f"{step}.events"),
    }
    return subprocess.Popen([os.path.join(dist, "maestro-sh"), "-c", command], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--idle-seconds", type=float, default=60)
    args = ap.parse_args()

    dist = subprocess.check_output([os.path.join(ROOT, "scripts/build-release.sh")], text=True).strip()
    work = tempfile.mkdtemp(prefix="maestro-sh-bench-")
    policy = os.path.join(work, "policy.json")
    with open(policy, "w") as f:
        json.dump({"default": "require_approval", "rules": []}, f)
    plat = subprocess.Popen([os.path.join(dist, "maestro-platform-dev"), "serve", "--addr", "127.0.0.1:0",
                             "--token", TOKEN, "--reviewer-token", REVIEWER_TOKEN, "--org", ORG,
                             "--policy", policy],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = plat.stdout.readline().strip()
        latencies = []
        for i in range(args.rounds):
            stamp = os.path.join(work, f"started-{i}")
            proc = shim(dist, url, work, f"call-bench-{i}", f"date +%s%N > {stamp}")
            approval = wait_pending(os.path.join(work, f"call-bench-{i}.events"), proc)
            time.sleep(random.uniform(0.2, 4.0))
            call(url, "/approvals.v1.ApprovalService/ResolveApproval",
                 {"approvalRequestId": approval, "decision": "DECISION_TYPE_APPROVED",
                  "decidedBy": "bench", "reason": ""}, token=REVIEWER_TOKEN)
            resolved = time.time_ns()
            proc.wait(timeout=30)
            with open(stamp) as f:
                started = int(f.read().strip())
            latencies.append((started - resolved) / 1e6)
        latencies.sort()
        p95 = latencies[min(len(latencies) - 1, int(round(0.95 * len(latencies))) - 1)]
        print(f"approval resolved -> command started, {len(latencies)} rounds: "
              f"p50 {statistics.median(latencies):.1f} ms, p95 {p95:.1f} ms, max {latencies[-1]:.1f} ms")

        before = len(call(url, "/maestro.dev.v1.DevService/GetRequests", {})["requests"])
        proc = shim(dist, url, work, "call-bench-idle", "true")
        approval = wait_pending(os.path.join(work, "call-bench-idle.events"), proc)
        time.sleep(args.idle_seconds)
        reqs = call(url, "/maestro.dev.v1.DevService/GetRequests", {})["requests"][before:]
        waiting = [r for r in reqs if r["method"] in ("GetApproval", "GetToolExecution")]
        call(url, "/approvals.v1.ApprovalService/ResolveApproval",
             {"approvalRequestId": approval, "decision": "DECISION_TYPE_DENIED", "decidedBy": "bench",
              "reason": "benchmark over"}, token=REVIEWER_TOKEN)
        proc.wait(timeout=30)
        print(f"waiting {args.idle_seconds:.0f} s for a decision: {len(waiting)} Platform requests "
              f"({len(waiting) / args.idle_seconds:.2f} per second)")
    finally:
        plat.kill()


if __name__ == "__main__":
    main()
