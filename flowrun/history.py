"""Run history from the run store: the list ``flowrun runs`` prints and the detail
``flowrun show`` prints (as text or JSON). Everything shown was masked when written."""

from __future__ import annotations

import time
from typing import Any

from .rundb import INTERRUPTED, RunDB, effective_status, loads

TEXT_PREVIEW = 200


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _duration(start: float | None, end: float | None) -> float | None:
    return round(end - start, 3) if start and end else None


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    return f"{minutes}m{sec:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


# --------------------------------------------------------------------------- runs


def runs_view(db: RunDB, flow: str | None, status: str | None, limit: int) -> list[dict[str, Any]]:
    """Recent runs, newest first, as ``flowrun runs --json`` prints them."""
    out = []
    for r in db.list_runs(flow=flow, status=status, limit=limit):
        out.append({
            "run_id": r["id"], "flow": r["flow_name"], "status": r["status"],
            "attempt": r["attempt"], "started_at": r["started"],
            "duration_s": round(r["duration"], 3) if r["duration"] is not None else None,
            "steps_ok": r["steps_ok"], "steps_failed": r["steps_failed"], "tokens": r["tokens"],
            "run_dir": r["run_dir"],
        })
    return out


def runs_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no runs"
    head = ("RUN", "FLOW", "STATUS", "STARTED", "DURATION", "STEPS", "TOKENS")
    lines = [head]
    for r in rows:
        steps = f"{r['steps_ok']} ok" + (f", {r['steps_failed']} failed" if r["steps_failed"] else "")
        lines.append((r["run_id"], r["flow"], r["status"], _when(r["started_at"]),
                      _fmt_duration(r["duration_s"]), steps, str(r["tokens"])))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


# --------------------------------------------------------------------------- one run


def _step_view(row: dict[str, Any], run_status: str) -> dict[str, Any]:
    status = row["status"]
    if status == "running" and run_status != "running":
        status = INTERRUPTED
    view: dict[str, Any] = {"status": status, "attempt": row["attempt"]}
    if row["cached"]:
        view["cached"] = True
    for key in ("response_id", "error", "digest"):
        if row[key]:
            view[key if key != "digest" else "request_digest"] = row[key]
    usage = loads(row["usage"])
    if usage:
        view["usage"] = usage
    duration = _duration(row["started"], row["ended"])
    if duration is not None:
        view["duration_s"] = duration
    return view


def run_view(db: RunDB, row: dict[str, Any]) -> dict[str, Any]:
    """A run and its steps, as ``flowrun show RUN --json`` prints it."""
    status = effective_status(row)
    steps: dict[str, Any] = {}
    items: dict[str, list[dict[str, Any]]] = {}
    for s in db.steps(row["id"]):
        if s["idx"] is None:
            steps[s["step_id"]] = _step_view(s, status)
        else:
            items.setdefault(s["step_id"], []).append(s)
    for sid, rows in items.items():
        entry = steps.setdefault(sid, {"status": "running" if status == "running" else INTERRUPTED})
        entry["items"] = {
            "total": len(rows),
            "succeeded": sum(1 for r in rows if r["status"] == "succeeded"),
            "failed": sum(1 for r in rows if r["status"] == "failed"),
        }
    view = {
        "run_id": row["id"], "flow": row["flow_name"], "flow_file": row["flow_path"],
        "status": status, "attempt": row["attempt"], "started_at": row["started"],
        "finished_at": row["ended"],
        "duration_s": round(row["duration"], 3) if row["duration"] is not None else None,
        "inputs": loads(row["inputs"]), "provider": loads(row["provider"]),
        "outputs": loads(row["outputs"]) or {}, "error": row["error"], "run_dir": row["run_dir"],
        "attempts": db.attempts(row["id"]), "steps": steps,
        "tokens": row["tokens"],
    }
    from .batch.state import jobs

    batches = [{k: j[k] for k in ("batch_id", "wave", "layer", "round", "part", "status", "lines", "counts",
                                   "input_file_id", "output_file_id", "error_file_id", "error")}
               for j in ({**j, "input_file_id": j["file_id"]} for j in jobs(db, row["id"]))]
    if batches:
        view["batches"] = batches
    return view


def step_view(db: RunDB, row: dict[str, Any], key: str) -> dict[str, Any] | None:
    """One step (``ID``) or item (``ID.N``): request, output, turns, tool calls, errors."""
    status = effective_status(row)
    rows = {s["key"]: s for s in db.steps(row["id"])}
    s = rows.get(key)
    if s is None:
        return None
    view = {"step": key, **_step_view(s, status)}
    if s["text"] is not None:
        view["text"] = s["text"]
    output = loads(s["output"])
    if output is not None:
        view["output"] = output
    result = loads(s["result"]) or {}
    for name in ("response_ids", "images", "files", "reasoning_summary", "extra"):
        if result.get(name):
            view[name] = result[name]
    turns = []
    for t in db.turns(row["id"], key):
        turn: dict[str, Any] = {"turn": t["turn"], "status": t["status"], "attempt": t["attempt"],
                                "response_id": t["response_id"]}
        request = loads(t["request"])
        if request is not None:
            turn["request"] = request
        follow_up = loads(t["follow_up"])
        if follow_up:
            turn["sent_back"] = follow_up
        turns.append(turn)
    if turns:
        view["turns"] = turns
    calls = [{"call_id": c["call_id"], "name": c["name"], "turn": c["turn"], "status": c["status"],
              "attempt": c["attempt"], **({"record": loads(c["record"])} if c["record"] else {})}
             for c in db.tool_calls(row["id"], key)]
    if calls:
        view["tool_calls"] = calls
    approvals = [loads(a["entry"]) for a in db.approvals(row["id"], key)]
    if approvals:
        view["approvals"] = approvals
    item_rows = sorted((r for r in rows.values() if r["step_id"] == key and r["idx"] is not None),
                       key=lambda r: r["idx"])
    if item_rows:
        view["items"] = [{"index": r["idx"], **_step_view(r, status),
                          **({"text": _preview(r["text"])} if r["text"] else {})} for r in item_rows]
    return view


def _preview(text: str | None) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= TEXT_PREVIEW else text[:TEXT_PREVIEW] + "..."


def run_text(view: dict[str, Any]) -> str:
    lines = [
        f"run      {view['run_id']}",
        f"flow     {view['flow']} ({view['flow_file']})",
        f"status   {view['status']}" + (f" (attempt {view['attempt']})" if view["attempt"] > 1 else ""),
        f"started  {_when(view['started_at'])}   duration {_fmt_duration(view['duration_s'])}"
        f"   tokens {view['tokens']}",
        f"dir      {view['run_dir']}",
    ]
    if view["error"]:
        lines.append(f"error    {view['error']}")
    if len(view["attempts"]) > 1:
        lines.append("attempts")
        for a in view["attempts"]:
            lines.append(f"  {a['n']}. {a['status']}, {_when(a['started'])}" + (f" - {a['note']}" if a["note"] else ""))
    lines.append("steps")
    width = max((len(s) for s in view["steps"]), default=4)
    for sid, s in view["steps"].items():
        bits = [s["status"]]
        if "items" in s:
            i = s["items"]
            bits.append(f"{i['succeeded']}/{i['total']} items ok" + (f", {i['failed']} failed" if i["failed"] else ""))
        if s.get("cached"):
            bits.append("cached")
        if s.get("attempt"):
            bits.append(f"attempt {s['attempt']}")
        if s.get("usage", {}).get("total_tokens"):
            bits.append(f"{s['usage']['total_tokens']} tokens")
        if s.get("error"):
            bits.append(s["error"])
        lines.append(f"  {sid.ljust(width)}  " + "  ".join(bits))
    if view.get("batches"):
        lines.append("batches")
        for b in view["batches"]:
            counts = b["counts"] or {}
            lines.append(f"  {'wave %s ' % b['wave'] if (b['wave'] or 1) > 1 else ''}layer {b['layer']} round {b['round']}"
                         + (f" part {b['part']}" if b["part"] else "")
                         + f"  {b['batch_id'] or '(not created)'}  {b['status']}  "
                         f"{counts.get('completed', 0)}/{b['lines']} lines"
                         + (f", {counts['failed']} failed" if counts.get("failed") else ""))
    if view["outputs"]:
        lines.append("outputs")
        for name, value in view["outputs"].items():
            lines.append(f"  {name}: {_preview(value if isinstance(value, str) else str(value))}")
    return "\n".join(lines)


def step_text(view: dict[str, Any]) -> str:
    lines = [f"step     {view['step']}", f"status   {view['status']} (attempt {view['attempt']})"]
    if view.get("response_id"):
        lines.append(f"response {view['response_id']}")
    if view.get("error"):
        lines.append(f"error    {view['error']}")
    for t in view.get("turns", []):
        lines.append(f"turn {t['turn']}: {t['status']}, response {t['response_id']} (attempt {t['attempt']})")
        req = t.get("request") or {}
        sent = req.get("input")
        if isinstance(sent, str):
            lines.append(f"  input: {_preview(sent)}")
        for item in t.get("sent_back") or []:
            lines.append(f"  sent back: {item.get('type')} {_preview(str(item.get('output', item.get('approve', ''))))}")
    for c in view.get("tool_calls", []):
        rec = c.get("record") or {}
        result = rec.get("error") or rec.get("output") or ""
        lines.append(f"call {c['name']} ({c['call_id']}, turn {c['turn']}): {c['status']} {_preview(str(result))}")
    for a in view.get("approvals", []):
        lines.append(f"approval {a.get('server')}.{a.get('tool')}: {a.get('decision')} by {a.get('decided_by')}")
    for item in view.get("items", []):
        lines.append(f"item {item['index']}: {item['status']} {item.get('text', '')}".rstrip())
    if view.get("text") is not None:
        lines.append("text")
        lines.append(view["text"])
    return "\n".join(lines)
