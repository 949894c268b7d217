#!/usr/bin/env python3
"""Reads the demo's sidecar events and Platform timeline (stdlib only).

    check.py pending-approval EVENTS STEP      print the approval id pending for STEP (exit 1: none)
    check.py show-events EVENTS                one line per sidecar event
    check.py verify EVENTS TIMELINE EXPECT     outcomes, statuses and the id join; exit 1 on mismatch
"""
import json
import sys


def events(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def short(kind):
    return kind.removeprefix("maestro.events.")


def pending_approval(path, step):
    for e in events(path):
        d = e.get("data", {})
        if e.get("type") == "maestro.events.approval_hit" and d.get("tool_call_id") == step:
            print(d["approval_request_id"])
            return 0
    return 1


def show_events(path):
    for e in events(path):
        d = e.get("data", {})
        cols = [
            f"{short(e.get('type', '?')):<22}",
            f"step={d.get('tool_call_id', '-')}",
            f"exec={d.get('tool_execution_id') or '-'}",
            f"approval={d.get('approval_request_id') or '-'}",
        ]
        if "governed_outcome" in d:
            cols.append(f"outcome={d['governed_outcome']}")
        if d.get("exit_status") is not None:
            cols.append(f"exit={d['exit_status']}")
        if e.get("type") == "maestro.events.tool_call.attempted":
            cols.append(f"mode={d.get('mode')} risk={d.get('risk_level')}")
        print("  " + "  ".join(cols))
    return 0


def verify(events_path, timeline_path, expect_path):
    evs = events(events_path)
    with open(timeline_path, encoding="utf-8") as f:
        timeline = {t["toolExecutionId"]: t for t in json.load(f)["executions"]}
    problems = []
    checked = 0
    with open(expect_path, encoding="utf-8") as f:
        rows = [line.split() for line in f if line.strip()]
    for step, outcome, want_status, status in rows:
        done = [
            e["data"]
            for e in evs
            if e.get("type") == "maestro.events.tool_call.completed"
            and e["data"].get("tool_call_id") == step
        ]
        if len(done) != 1:
            problems.append(f"{step}: {len(done)} completed events, expected 1")
            continue
        d = done[0]
        if d.get("governed_outcome") != outcome:
            problems.append(f"{step}: outcome {d.get('governed_outcome')}, expected {outcome}")
        if status != want_status:
            problems.append(f"{step}: exit status {status}, expected {want_status}")
        exec_id = d.get("tool_execution_id")
        corr = d.get("correlation", {})
        if outcome == "platform_unavailable":
            if exec_id or any(t["stepId"] == step for t in timeline.values()):
                problems.append(f"{step}: Platform was down, yet an execution exists")
            checked += 1
            continue
        t = timeline.get(exec_id)
        if t is None:
            problems.append(f"{step}: tool_execution_id {exec_id} is not in Platform's timeline")
            continue
        for name, ours, theirs in [
            ("step", step, t.get("stepId")),
            ("session", corr.get("session_id"), t.get("sessionId")),
            ("run", corr.get("agent_run_id"), t.get("runId")),
            ("approval", d.get("approval_request_id"), t.get("approvalRequestId")),
        ]:
            if ours != theirs:
                problems.append(f"{step}: {name} id {ours} on the sidecar, {theirs} on Platform")
        if outcome == "approved":
            resolved = [
                ev["data"]
                for ev in t.get("events", [])
                if ev.get("type", "").endswith(".approval_resolved")
            ]
            if [r.get("credential") for r in resolved] != ["reviewer"]:
                problems.append(f"{step}: approved, but not by one reviewer credential: {resolved}")
        checked += 1
    for e in evs:
        text = json.dumps(e).lower()
        if "resume_token" in text or "resumetoken" in text:
            problems.append(f"a sidecar event carries a resume token field: {e.get('type')}")
    for p in problems:
        print(f"MISMATCH {p}")
    if problems:
        print(f"demo: FAILED ({len(problems)} mismatches)")
        return 1
    print(f"demo: OK: {checked} tool calls, every outcome as expected, sidecar and timeline join on ids")
    return 0


def main(argv):
    cmds = {"pending-approval": (pending_approval, 2), "show-events": (show_events, 1), "verify": (verify, 3)}
    if len(argv) < 2 or argv[1] not in cmds or len(argv) - 2 != cmds[argv[1]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    fn, _ = cmds[argv[1]]
    return fn(*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
