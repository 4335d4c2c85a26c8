"""The HTML run report: one self-contained page per run (``flowrun report RUN``,
``flowrun run --report``).

Data flow: run store + run directory -> :mod:`.collect` (steps, turns, tool calls,
approvals, waits; :mod:`.items` per output item, :mod:`.embed` for images and files,
:mod:`.dataset` for a dataset run's rows, :mod:`.prices` for cost) -> :mod:`.dag` and
:mod:`.timeline` (SVG) -> :mod:`.render` (the Jinja template, autoescaped; :mod:`.tree`
for JSON values) -> one file. What a run keeps of its plan for this is
:mod:`flowrun.run_outline`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ..rundb import RunDB
from ..secrets import Redactor
from ..store import write_atomic
from ..run_outline import Outline, outline_for
from .collect import Collector
from .dag import dag_svg
from .dataset import dataset_rows, page_json
from .embed import MAX_IMAGE_BYTES, Embedder
from .render import render_page
from .timeline import rows_timeline_svg, timeline_svg

__all__ = ["MAX_IMAGE_BYTES", "REPORT_NAME", "build_report", "report_data", "report_redactor",
           "write_report"]

REPORT_NAME = "report.html"
"""The report's file name inside the run directory (``--report`` without a file)."""
ROWS_PAGE = 100
LAZY_OVER = 100
"""Steps and items above which a step's body stays unparsed markup until it is opened
(the page of a 1,000-step run loads in a fraction of the time)."""


def report_redactor(outline: Outline | None, environ: Any = None) -> Redactor:
    """The masks a report made after the run applies again: the flow's secrets and the
    credential-looking ``OPENAI_*`` / ``AZURE_*`` variables set now (the store was masked
    when written)."""
    from ..secrets import looks_like_credential, too_short

    env = os.environ if environ is None else environ
    redactor = Redactor()
    for name in outline.secrets if outline is not None else []:
        value = env.get(name)
        if value and not too_short(value):
            redactor.add(value, name)
    for name, value in env.items():
        if name.startswith(("OPENAI_", "AZURE_")) and looks_like_credential(name) and not too_short(value):
            redactor.add(value)
    return redactor


def build_report(db: RunDB, row: dict[str, Any], *, redactor: Redactor | None = None,
                 prices: dict[str, dict[str, float]] | None = None,
                 max_image_bytes: int = MAX_IMAGE_BYTES) -> str:
    """The HTML of run ``row``'s report."""
    return render_page(report_data(db, row, redactor=redactor, prices=prices,
                                   max_image_bytes=max_image_bytes))


def report_data(db: RunDB, row: dict[str, Any], *, redactor: Redactor | None = None,
                prices: dict[str, dict[str, float]] | None = None,
                max_image_bytes: int = MAX_IMAGE_BYTES) -> dict[str, Any]:
    """What the page of run ``row`` shows, as plain data (``run``, ``steps``, ``totals``,
    ``dataset``, ``dag``, ``timeline``, ``notes``)."""
    from .._version import __version__
    from ..dataset.state import dataset_of

    plan = outline_for(db, row)
    redactor = redactor if redactor is not None else report_redactor(plan)
    run_dir = run_dir_of(db, row)
    embed = Embedder(run_dir, redactor, max_image_bytes)
    collector = Collector(db, row, redactor, embed, prices, plan)  # plan: the run's Outline
    run = collector.run_info()
    dataset = dataset_of(db, row["id"])
    notes: list[str] = []
    if plan is None:
        notes.append("The flow could not be planned again (its file or tools are gone): the graph "
                     "shows the steps without their dependencies.")
    data: dict[str, Any] = {"version": __version__, "generated": time.time(), "run": run,
                            "dataset": None, "rows_json": None, "rows_meta": None}
    if dataset is None:
        steps = collector.steps()
        totals = collector.totals(steps)
    else:
        steps, totals = _dataset(collector, dataset, plan, data, prices or {})
    anchors = {s["id"]: s["anchor"] for s in steps}
    needs = {s["id"]: s.get("needs") or [] for s in steps}
    titles = {s["id"]: _title(s) for s in steps}
    if dataset is None:
        timeline = timeline_svg(steps, run["started"], run["ended"])
    else:
        from ..dataset.state import row_ends

        timeline = rows_timeline_svg(row_ends(db, row["id"]), run["started"])
    data.update(steps=steps, totals=totals, anchors=anchors, timeline=timeline,
                dag=dag_svg([s["id"] for s in steps], needs, {s["id"]: s["status"] for s in steps},
                            anchors, titles))
    if collector.unpriced:
        notes.append("No price for " + ", ".join(sorted(collector.unpriced)) + ": their tokens are "
                     "not in the cost (add them to --prices).")
    data["notes"] = notes + data.pop("notes_extra", []) + embed.notes
    data["lazy"] = totals["count"] + totals.get("items", 0) > LAZY_OVER
    return data


def _title(s: dict[str, Any]) -> str:
    bits = [f"{s['id']}: {s['status']}"]
    if s.get("dataset_counts"):
        bits.append(", ".join(f"{n} rows {st}" for st, n in sorted(s["dataset_counts"].items())))
    if s.get("usage", {}).get("total_tokens"):
        bits.append(f"{s['usage']['total_tokens']} tokens")
    if s.get("error"):
        bits.append(s["error"][:200])
    return " - ".join(bits)


def _dataset(collector: Collector, dataset: dict[str, Any], plan: Any, data: dict[str, Any],
             prices: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A dataset run: the rows (as page data), and a step per flow step with the rows'
    statuses counted."""
    from ..dataset.state import counts
    from .collect import _anchor

    model = plan.single_model() if plan is not None else None
    rows, per_step = dataset_rows(collector.db, collector.run_id, collector.redactor, prices, model)
    done = counts(collector.db, collector.run_id)
    order = list(plan.order) if plan is not None else sorted(per_step)
    steps = []
    for sid in order:
        c = per_step.get(sid, {})
        status = ("failed" if c.get("failed") else "succeeded" if c.get("succeeded") else
                  max(c, key=c.get) if c else "not run")
        steps.append({"key": sid, "id": sid, "anchor": "step-" + _anchor(sid), "status": status,
                      "needs": plan.needs.get(sid, []) if plan else [], "dataset_counts": c,
                      "items": [], "turns": [], "events": [], "usage": {}, "error": None,
                      "text": None, "output": None, "kind": collector._kind(sid),
                      "images": [], "partials": [], "files": [], "tool_calls": [], "approvals": []})
    total = dataset.get("total") or len(rows)
    priced = [r[3] for r in rows if r[3] is not None]
    data["dataset"] = {"total": total, "done": len(rows),
                       "counts": {"succeeded": done["succeeded"], "failed": done["failed"]},
                       "not_done": max(0, total - len(rows)), "priced": bool(prices and model),
                       "source": dataset.get("source")}
    data["rows_json"] = page_json(rows)
    data["rows_meta"] = page_json({"page": ROWS_PAGE, "priced": bool(prices and model),
                                   "anchors": {s["id"]: s["anchor"] for s in steps}})
    usage = {"input_tokens": done["input"], "output_tokens": done["output"], "total_tokens": done["tokens"]}
    totals = {"usage": usage, "cost": sum(priced) if priced else None,
              "counts": {st: sum(1 for s in steps if s["status"] == st) for st in {s["status"] for s in steps}},
              "count": len(steps)}
    if prices and model is None:
        data.setdefault("notes_extra", []).append("rows use more than one model: no cost per row")
    return steps, totals


def run_dir_of(db: RunDB, row: dict[str, Any]) -> Path:
    """The run's directory: where it was, else beside the store (the runs directory moved)."""
    recorded = Path(row["run_dir"]) if row.get("run_dir") else None
    if recorded is not None and recorded.is_dir():
        return recorded
    return db.path.parent / row["id"]


def write_report(ref: str, run_dir: str | Path, out: str | Path | None = None, *,
                 prices_file: str | None = None, max_image_bytes: int = MAX_IMAGE_BYTES,
                 redactor: Redactor | None = None) -> Path:
    """Write the report of run ``ref`` (an id, a unique prefix, ``last`` or a run
    directory) to ``out`` (default ``<run dir>/report.html``); returns the path."""
    from ..errors import UsageError
    from ..resume import find_run
    from .prices import load_prices

    prices = load_prices(prices_file)
    db, row = find_run(ref, run_dir)
    try:
        html = build_report(db, row, redactor=redactor, prices=prices, max_image_bytes=max_image_bytes)
    finally:
        db.close()
    target = Path(out) if out else run_dir_of(db, row) / REPORT_NAME
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, html)
    except OSError as exc:
        raise UsageError(f"cannot write the report {target}: {exc.strerror or exc}",
                         hint="choose another file with -o") from None
    return target
