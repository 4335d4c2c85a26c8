"""A dataset run's rows for the report: one compact JSON array per row, read from the run
store in chunks (:func:`flowrun.dataset.state.row_lines`), so 10,000 rows are a few MB of
data the page's script shows a page at a time, not 10,000 blocks of markup."""

from __future__ import annotations

import json
from typing import Any

from ..dataset import state
from ..secrets import Redactor
from .prices import cost

ROW_TEXT = 400
"""Characters of a row's inputs / outputs / error kept in the page (masked, then cut)."""
STATUSES = ("succeeded", "failed")
FIELDS = ("row", "status", "tokens", "cost", "inputs", "outputs", "error", "steps")
"""The order of a row's array in the page (``rows`` JSON)."""


def _short(value: Any, redactor: Redactor) -> str:
    if value in (None, {}, ""):
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return redactor.truncate(text, ROW_TEXT, marker=" ...")


def dataset_rows(db: Any, run_id: str, redactor: Redactor, prices: dict[str, Any],
                 model: str | None) -> tuple[list[list[Any]], dict[str, dict[str, int]]]:
    """``(rows, steps)``: each finished row as ``[row, status, tokens, cost, inputs,
    outputs, error, [[step, status], ...]]``, and per step the rows' statuses counted
    (for the DAG's colours)."""
    rows: list[list[Any]] = []
    per_step: dict[str, dict[str, int]] = {}
    for _, line in state.row_lines(db, run_id, STATUSES):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        usage = data.get("usage") or {}
        steps = []
        for sid, s in (data.get("steps") or {}).items():
            st = s.get("status", "?") if isinstance(s, dict) else str(s)
            steps.append([sid, st])
            counts = per_step.setdefault(sid, {})
            counts[st] = counts.get(st, 0) + 1
        c = cost(prices, model, usage) if prices else None
        rows.append([data.get("row"), data.get("status"), int(usage.get("total_tokens") or 0),
                     round(c, 6) if c is not None else None,
                     _short(data.get("inputs"), redactor), _short(data.get("outputs"), redactor),
                     _short(data.get("error"), redactor), steps])
    return rows, per_step


def page_json(value: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``<``, ``>``, ``&``)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
