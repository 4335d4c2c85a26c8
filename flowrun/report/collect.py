"""Collect what the report shows of one run, from the run store (``flowrun.db``: steps,
turns, tool calls, approvals, events, dataset rows) and the run directory
(``record.json``, ``responses/``, ``artifacts/``), into plain data the template renders.

Everything passes through the :class:`~flowrun.secrets.Redactor` again (the store was
masked when written; a report made later also masks the secrets set now), and large
payloads are noted instead of copied (:mod:`.items`, :mod:`.embed`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..run_outline import Outline
from ..rundb import INTERRUPTED, RunDB, effective_status, loads
from ..secrets import Redactor
from ..store import response_name
from .embed import Embedder
from .items import input_parts, item_view, strip_payloads
from .prices import cost

NOT_RUN = "not run"
MAX_RESPONSE_FILES = 1000


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class Collector:
    """Builds the report data of one run."""

    def __init__(self, db: RunDB, row: dict[str, Any], redactor: Redactor, embed: Embedder,
                 prices: dict[str, dict[str, float]] | None = None, outline: Outline | None = None):
        self.db, self.row, self.redactor, self.embed = db, row, redactor, embed
        self.prices = prices or {}
        self.plan = outline
        self.run_id = row["id"]
        self.run_dir = embed.run_dir
        self.status = effective_status(row)
        self.unpriced: set[str] = set()

    # -- the run -------------------------------------------------------------------------
    def run_info(self) -> dict[str, Any]:
        r = self.row
        return {
            "id": r["id"], "flow": r["flow_name"], "flow_file": r["flow_path"],
            "status": self.status, "attempt": r["attempt"], "started": r["started"],
            "ended": r["ended"], "duration": r["duration"],
            "inputs": strip_payloads(loads(r["inputs"]) or {}, self.redactor),
            "outputs": strip_payloads(loads(r["outputs"]) or {}, self.redactor),
            "error": self.redactor.text(r["error"]) if r["error"] else None,
            "provider": strip_payloads(loads(r["provider"]) or {}, self.redactor),
            "attempts": self.db.attempts(self.run_id), "run_dir": r["run_dir"],
            "description": self.plan.description if self.plan else None,
        }

    # -- steps ---------------------------------------------------------------------------
    def steps(self) -> list[dict[str, Any]]:
        rows = self.db.steps(self.run_id)
        by_key = {r["key"]: r for r in rows}
        items: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            if r["idx"] is not None:
                items.setdefault(r["step_id"], []).append(r)
        self.turns: dict[str, list[dict[str, Any]]] = {}
        for t in self.db.turns(self.run_id):
            self.turns.setdefault(t["key"], []).append(t)
        self.calls: dict[str, dict[str, Any]] = {}
        for c in self.db.tool_calls(self.run_id):
            c = dict(c)
            c["record"] = loads(c["record"])
            self.calls.setdefault(c["key"], {})[c["call_id"]] = c
        self.approvals: dict[str, dict[str, Any]] = {}
        for a in self.db.approvals(self.run_id):
            entry = loads(a["entry"]) or {}
            self.approvals.setdefault(a["key"], {})[a["request_id"]] = entry
        self.events: dict[str, list[dict[str, Any]]] = {}
        for e in self.db.events(self.run_id):
            self.events.setdefault(e["key"], []).append(e)
        record = _read_json(self.run_dir / "record.json") or {}
        rec_steps = record.get("steps") if isinstance(record.get("steps"), dict) else {}

        if self.plan is not None:
            order = list(self.plan.order)
        else:
            tops = sorted((r for r in rows if r["idx"] is None), key=lambda r: r["started"] or 0)
            order = [r["key"] for r in tops] + [s for s in rec_steps if s not in by_key]
        out = []
        for sid in order:
            rec = rec_steps.get(sid) or {}
            view = self.key_view(sid, sid, by_key.get(sid), rec)
            view["needs"] = sorted(self.plan.needs.get(sid, ())) if self.plan else []
            view["kind"] = self._kind(sid)
            kids = sorted(items.get(sid, []), key=lambda r: r["idx"])
            rec_items = rec.get("items") or []
            view["items"] = [
                self.key_view(r["key"], sid, r, rec_items[r["idx"]] if r["idx"] < len(rec_items) else {})
                for r in kids
            ]
            if view["items"]:
                for name in ("usage",):
                    if not view.get(name):
                        view[name] = _sum_usage(i.get("usage") for i in view["items"])
                priced = [i["cost"] for i in view["items"] if i.get("cost") is not None]
                if priced and view.get("cost") is None:
                    view["cost"] = sum(priced)
                view["item_counts"] = _counts(i["status"] for i in view["items"])
            out.append(view)
        return out

    def _kind(self, sid: str) -> str:
        return self.plan.kinds.get(sid, "step") if self.plan is not None else "step"

    def _status(self, row: dict[str, Any] | None, rec: dict[str, Any]) -> str:
        status = (row or {}).get("status") or rec.get("status") or NOT_RUN
        if status in ("running", "waiting") and self.status != "running":
            status = INTERRUPTED if row is not None else NOT_RUN
        return status

    def key_view(self, key: str, step_id: str, row: dict[str, Any] | None, rec: dict[str, Any]) -> dict[str, Any]:
        """One step (``ID``) or ``for_each`` item (``ID.N``)."""
        red = self.redactor
        result = (loads(row["result"]) if row and row.get("result") else None) or {}
        extra = {**rec, **(result.get("extra") or {})}
        view: dict[str, Any] = {
            "key": key, "id": step_id, "anchor": "step-" + _anchor(key),
            "status": self._status(row, rec),
            "started": (row or {}).get("started") or rec.get("started_at"),
            "ended": (row or {}).get("ended") or rec.get("finished_at"),
            "attempt": (row or {}).get("attempt") or rec.get("run_attempt"),
            "cached": bool((row or {}).get("cached") or rec.get("cached")),
            "usage": loads(row["usage"]) if row and row.get("usage") else rec.get("usage") or {},
            "error": red.text((row or {}).get("error") or rec.get("error") or "") or None,
            "text": red.text(row["text"]) if row and row.get("text") is not None else (
                red.text(rec["text"]) if isinstance(rec.get("text"), str) else None),
            "output": strip_payloads(loads(row["output"]) if row and row.get("output") else rec.get("output"), red),
            "index": (row or {}).get("idx", rec.get("index")),
            "events": [dict(e, detail=red.text(e["detail"]) if e["detail"] else None)
                       for e in self.events.get(key, [])],
            "reasoning": red.text(result.get("reasoning_summary") or rec.get("reasoning_summary") or "") or None,
        }
        if view["started"] and view["ended"]:
            view["duration"] = view["ended"] - view["started"]
        calls = self.calls.get(key, {})
        approvals = self.approvals.get(key, {})
        saved_images = {e.get("id"): e for e in extra.get("image_generation") or [] if isinstance(e, dict)}
        ctx = {"calls": calls, "approvals": approvals, "images": saved_images}
        turns, costs = self._turns(key, ctx)
        view["turns"] = turns
        if turns and turns[0].get("request"):
            view["request"] = turns[0].pop("request")
        if costs:
            view["cost"] = sum(costs)
        elif self.prices and view["usage"]:
            model = self._model(step_id)
            view["cost"] = cost(self.prices, model, view["usage"])
            if view["cost"] is None and model:
                self.unpriced.add(model)
        shown = {t.get("image", {}).get("name") for turn in turns for t in turn["items"] if t.get("image")}
        computer = extra.get("computer_use")
        if isinstance(computer, dict):
            view["computer"] = self._computer(computer)
            shown |= {Path(s).name for s in _screens(computer)}
        images = [*(result.get("images") or rec.get("images") or [])]
        view["images"] = [self.embed.image(p) for p in images if Path(p).name not in shown]
        partials = extra.get("partial_images") or []
        view["partials"] = [self.embed.image(p, "partial image") for p in partials]
        files = [p for p in (result.get("files") or rec.get("files") or []) if p not in images]
        view["files"] = [self.embed.file(p) for p in files]
        view["tool_calls"] = [self._call_view(c) for c in calls.values()
                              if not any(c["call_id"] == i.get("call_id") for t in turns for i in t["raw_items"])]
        view["approvals"] = [red.deep(a) for a in approvals.values()]
        for t in turns:
            t.pop("raw_items", None)
        return view

    def _model(self, step_id: str) -> str | None:
        return self.plan.models.get(step_id) if self.plan is not None else None

    def _call_view(self, c: dict[str, Any]) -> dict[str, Any]:
        record = c.get("record") or {}
        return {"name": c["name"], "call_id": c["call_id"], "status": c["status"],
                "args": strip_payloads(record.get("arguments"), self.redactor),
                "output": strip_payloads(record.get("output", c.get("output")), self.redactor),
                "error": self.redactor.text(record["error"]) if record.get("error") else None}

    def _turns(self, key: str, ctx: dict[str, Any]) -> tuple[list[dict[str, Any]], list[float]]:
        red = self.redactor
        out: list[dict[str, Any]] = []
        costs: list[float] = []
        rows = self.turns.get(key)
        if rows:
            sources = [(t["turn"], loads(t["request"]), loads(t["response"]), loads(t["follow_up"]),
                        t["time"], t["status"]) for t in rows]
        else:  # steps that keep no turns (computer use, sub-flows): the saved responses
            sources = []
            for n in range(MAX_RESPONSE_FILES):
                resp = _read_json(self.run_dir / "responses" / response_name(key, n))
                if resp is None:
                    break
                sources.append((n, None, resp, None, None, "done"))
        for n, request, response, follow_up, at, status in sources:
            response = response or {}
            raw_items = [i for i in response.get("output") or [] if isinstance(i, dict)]
            turn: dict[str, Any] = {
                "turn": n, "status": status, "time": at, "response_id": response.get("id"),
                "model": response.get("model") or (request or {}).get("model"),
                "usage": response.get("usage") or {},
                "items": [item_view(i, ctx, self.embed, red) for i in raw_items],
                "raw_items": raw_items,
                "sent_back": [strip_payloads(i, red) for i in follow_up or []],
            }
            if response.get("error"):
                turn["error"] = strip_payloads(response["error"], red)
            if self.prices and turn["usage"]:
                c = cost(self.prices, turn["model"], turn["usage"])
                if c is None:
                    self.unpriced.add(str(turn["model"]))
                else:
                    turn["cost"] = c
                    costs.append(c)
            if request is not None and n == 0:
                turn["request"] = {
                    "instructions": red.text(request.get("instructions") or "") or None,
                    "input": input_parts(request.get("input"), self.embed, red),
                    "model": request.get("model"),
                    "tools": [t.get("name") or t.get("server_label") or t.get("type")
                              for t in request.get("tools") or [] if isinstance(t, dict)],
                    "params": strip_payloads({k: v for k, v in request.items()
                                              if k not in ("input", "instructions")}, red),
                }
            out.append(turn)
        return out, costs

    def _computer(self, rec: dict[str, Any]) -> dict[str, Any]:
        """The screenshot timeline: each screenshot with the action the model took on it
        (the next entry's action) drawn over it."""
        entries = [e for e in rec.get("timeline") or [] if isinstance(e, dict)]
        display = rec.get("display") or {}
        shots = []
        for i, e in enumerate(entries):
            nxt = entries[i + 1] if i + 1 < len(entries) else None
            image = self.embed.image(e.get("screenshot"), e.get("description"))
            width = image.get("width") or display.get("width") or 1024
            height = image.get("height") or display.get("height") or 768
            shot = {"turn": e.get("turn"), "url": self.redactor.text(e.get("url") or ""),
                    "after": self.redactor.text(e.get("description") or ""), "image": image,
                    "width": width, "height": height, "marks": [], "next": None,
                    "events": strip_payloads(e.get("events") or [], self.redactor)}
            if nxt is not None:
                shot["next"] = self.redactor.text(nxt.get("description") or "")
                shot["reasoning"] = self.redactor.text(nxt.get("reasoning") or "") or None
                actions = nxt.get("action")
                for action in actions if isinstance(actions, list) else [actions]:
                    if isinstance(action, dict):
                        shot["marks"].extend(_marks(action, width, height, self.redactor))
            shots.append(shot)
        return {"shots": shots, "start_url": rec.get("start_url"), "final_url": rec.get("final_url"),
                "blocked": strip_payloads(rec.get("blocked") or [], self.redactor),
                "safety_checks": strip_payloads(rec.get("safety_checks") or [], self.redactor)}

    # -- totals --------------------------------------------------------------------------
    @staticmethod
    def totals(steps: list[dict[str, Any]]) -> dict[str, Any]:
        usage = _sum_usage(s.get("usage") for s in steps)
        priced = [s["cost"] for s in steps if s.get("cost") is not None]
        return {"usage": usage, "cost": sum(priced) if priced else None,
                "counts": _counts(s["status"] for s in steps),
                "count": len(steps), "items": sum(len(s["items"]) for s in steps)}


def _screens(rec: dict[str, Any]) -> list[str]:
    return [e["screenshot"] for e in rec.get("timeline") or [] if isinstance(e, dict) and e.get("screenshot")]


def _num(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _marks(action: dict[str, Any], width: int, height: int, redactor: Redactor) -> list[dict[str, Any]]:
    """What to draw for one action: a click point, a drag path, a scroll arrow, typed text
    (masked, then cut)."""
    kind = action.get("type")
    x, y = _num(action.get("x")), _num(action.get("y"))
    out: list[dict[str, Any]] = []
    if kind in ("click", "double_click", "move") and x is not None and y is not None:
        out.append({"kind": kind, "x": x, "y": y, "label": kind.replace("_", " ")})
    elif kind == "drag":
        points = [(_num(p.get("x")), _num(p.get("y"))) for p in action.get("path") or [] if isinstance(p, dict)]
        points = [(px, py) for px, py in points if px is not None and py is not None]
        if points:
            out.append({"kind": "drag", "points": " ".join(f"{px:g},{py:g}" for px, py in points),
                        "x": points[0][0], "y": points[0][1], "x2": points[-1][0], "y2": points[-1][1],
                        "label": "drag"})
    elif kind == "scroll" and x is not None and y is not None:
        dx, dy = _num(action.get("scroll_x")) or 0.0, _num(action.get("scroll_y")) or 0.0
        length = max(abs(dx), abs(dy), 1.0)
        scale = min(80.0, length) / length
        out.append({"kind": "scroll", "x": x, "y": y, "x2": x + dx * scale, "y2": y + dy * scale,
                    "label": f"scroll {dx:g},{dy:g}"})
    elif kind in ("type", "keypress"):
        text = action.get("text") if kind == "type" else "+".join(map(str, action.get("keys") or []))
        out.append({"kind": kind, "x": 12, "y": height - 16, "label": redactor.truncate(f"{kind}: {text}", 80)})
    elif kind in ("wait", "screenshot"):
        out.append({"kind": kind, "x": 12, "y": height - 16, "label": kind})
    return out


def _sum_usage(usages: Any) -> dict[str, int]:
    from ..results import add_usage

    total: dict[str, Any] = {}
    for u in usages:
        if u:
            add_usage(total, u)
    return total


def _counts(statuses: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in statuses:
        out[s] = out.get(s, 0) + 1
    return out


def _anchor(key: str) -> str:
    from ..store import unique_name

    return unique_name(key, "step")
