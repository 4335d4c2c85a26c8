#!/usr/bin/env python3
"""The HTML run report's size and speed, on real runs made on the emulator.

Runs (untimed): a 1,000-step flow (50 layers of 20 steps, each needing one step of the
layer before, every 10th step with a tool loop of one function call) and a 10,000-row
dataset run of a two-step flow. Then, timed: reading the run (the baseline: ``flowrun show RUN --json``'s view and
every store row the report reads, JSON decoded) and making the report
(:func:`flowrun.report.build_report`);
the page's size against the run's ``flowrun.db``; and, when Chromium is there, the time
the page takes to load (``load`` event) against an empty page in the same browser.

    .venv/bin/python benchmarks/bench_report.py [--quick] [--no-browser]

``--quick``: 100 steps and 500 rows. Exits 1 only if something crashed.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOOLS = '''
def lookup(key: str) -> str:
    """Look a key up."""
    return "value of " + key
'''


def wide_flow(n: int, path: Path) -> None:
    width = 20
    lines = ["name: bench-report", "defaults: {model: gpt-4.1}",
             "tools:", "  lookup: {python: bench_tools:lookup}", "steps:"]
    for i in range(n):
        layer, col = divmod(i, width)
        lines.append(f"  s{i:04d}:")
        lines.append(f"    input: \"Step {i}: summarise layer {layer}\"")
        if layer:
            lines.append(f"    needs: [s{(layer - 1) * width + (col * 7) % width:04d}]")
        if i % 10 == 0:
            lines.append("    tools: [lookup]")
    path.write_text("\n".join(lines) + "\n")
    (path.parent / "bench_tools.py").write_text(TOOLS)


def script(n: int) -> dict[str, Any]:
    steps = {f"s{i:04d}": [{"function_calls": [{"name": "lookup", "arguments": {"key": f"k{i}"}}]},
                           {"text": f"Done with step {i}."}] for i in range(0, n, 10)}
    return {"steps": steps, "default": [{"text": "lorem ipsum dolor sit amet " * 4}]}


DATASET_FLOW = """name: bench-rows
inputs: {ticket: string}
steps:
  classify: {input: "Classify {{ inputs.ticket }}"}
  reply: {input: "Reply to {{ steps.classify.text }}"}
outputs: {category: "{{ steps.classify.text }}"}
"""


def timed(fn: Any, repeat: int = 1) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


def baseline_view(db: Any, row: dict[str, Any]) -> int:
    """Reading the run, the least any report pays: `flowrun show RUN --json`'s view, and
    every row the report reads (steps, turns, tool calls, approvals, waits, dataset rows)
    with its JSON decoded."""
    from flowrun.dataset.state import row_lines
    from flowrun.history import run_view
    from flowrun.rundb import loads

    size = len(json.dumps(run_view(db, row), default=str))
    run_id = row["id"]
    for rows in (db.steps(run_id), db.turns(run_id), db.tool_calls(run_id), db.approvals(run_id),
                 db.events(run_id)):
        for r in rows:
            for key in ("result", "output", "usage", "request", "response", "follow_up", "state",
                        "record", "entry"):
                if isinstance(r.get(key), str) and r[key][:1] in "[{":
                    size += len(str(loads(r[key])))
    for _, line in row_lines(db, run_id, ("succeeded", "failed")):
        size += len(json.dumps(json.loads(line)))
    return size


def measure(root: Path, run_id: str) -> dict[str, Any]:
    from flowrun.report import build_report
    from flowrun.resume import find_run

    db, row = find_run(run_id, root)
    try:
        base_s, _ = timed(lambda: baseline_view(db, row), 2)
        report_s, html = timed(lambda: build_report(db, row), 2)
    finally:
        db.close()
    out = root / run_id / "report.html"
    out.write_text(html, encoding="utf-8")
    return {"show_s": base_s, "report_s": report_s, "bytes": len(html.encode("utf-8")),
            "db_bytes": (root / "flowrun.db").stat().st_size, "path": out}


async def page_load(paths: list[Path]) -> list[tuple[float, float]]:
    """(report load seconds, empty page load seconds) per path, in one Chromium."""
    from flowrun.browser import launch_browser

    launched = await launch_browser(headless=True)
    out = []
    try:
        for path in paths:
            empty = path.with_name("empty.html")
            empty.write_text("<!DOCTYPE html><title>empty</title>")
            times = {}
            for name, target in (("empty", empty), ("report", path)):
                best = float("inf")
                for _ in range(2):
                    page = await launched.browser.new_page()
                    started = time.perf_counter()
                    await page.goto(target.resolve().as_uri(), wait_until="load", timeout=120_000)
                    best = min(best, time.perf_counter() - started)
                    await page.close()
                times[name] = best
            out.append((times["report"], times["empty"]))
    finally:
        await launched.close()
    return out


def make_runs(tmp: Path, steps: int, rows: int) -> tuple[str, str]:
    from flowrun.client import ResponsesClient
    from flowrun.dataset.launch import run_dataset
    from flowrun.emulator import Emulator, EmulatorServer
    from flowrun.plan import load_plan
    from flowrun.providers import ProviderConfig
    from flowrun.runner import run_plan

    flow = tmp / "wide.yaml"
    wide_flow(steps, flow)
    emulator = Emulator()
    emulator.load_script(script(steps))
    with EmulatorServer(emulator) as server:
        plan = load_plan(flow)

        async def main() -> Any:
            client = ResponsesClient(ProviderConfig("emulator", server.base_url, "key"))
            try:
                return await run_plan(plan, client, {}, run_root=tmp / "steps", max_concurrency=64)
            finally:
                await client.close()

        result = asyncio.run(main())
        if result.status != "succeeded":
            raise RuntimeError(f"the {steps}-step run {result.status}: {result.error}")
        emulator.load_script(None)
        dflow = tmp / "rows.yaml"
        dflow.write_text(DATASET_FLOW)
        data = tmp / "rows.jsonl"
        data.write_text("".join(json.dumps({"ticket": f"T{i}: printer {i} jams"}) + "\n"
                                for i in range(1, rows + 1)))
        outcome = run_dataset(str(dflow), str(data), None, (), (), None, "emulator", server.base_url,
                              True, 64, str(tmp / "rows"), None, None, None)
        if outcome.succeeded != rows:
            raise RuntimeError(f"the dataset run: {outcome.succeeded} of {rows} rows succeeded")
    return result.run_id, outcome.run_id


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 steps, 500 rows")
    ap.add_argument("--no-browser", action="store_true", help="skip the page-load timing")
    args = ap.parse_args()
    steps, rows = (100, 500) if args.quick else (1000, 10000)
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmpdir:
        tmp = Path(tmpdir)
        made = time.perf_counter()
        run_id, dataset_id = make_runs(tmp, steps, rows)
        made = time.perf_counter() - made
        results = [(f"{steps} steps", measure(tmp / "steps", run_id)),
                   (f"{rows} rows", measure(tmp / "rows", dataset_id))]
        loads: list[tuple[float, float]] | None = None
        if not args.no_browser:
            try:
                loads = asyncio.run(page_load([r["path"] for _, r in results]))
            except Exception as exc:  # no Chromium here: the other figures still count
                print(f"(page load not measured: {type(exc).__name__}: {str(exc)[:200]})")
    print(f"\nHTML run report ({'quick' if args.quick else 'full'}; runs made in {made:.1f} s, untimed)")
    print(f"{'run':<12} {'read s':>8} {'report s':>9} {'time x':>7} {'page MB':>8} {'db MB':>7} "
          f"{'size x':>7} {'load s':>7} {'empty s':>8} {'load x':>7}")
    for i, (name, r) in enumerate(results):
        load = loads[i] if loads else None
        cols = (f"{name:<12} {r['show_s']:>8.3f} {r['report_s']:>9.3f} {r['report_s'] / r['show_s']:>7.2f} "
                f"{r['bytes'] / 1e6:>8.2f} {r['db_bytes'] / 1e6:>7.2f} {r['bytes'] / r['db_bytes']:>7.2f}")
        if load:
            cols += f" {load[0]:>7.3f} {load[1]:>8.3f} {load[0] / max(load[1], 1e-6):>7.1f}"
        print(cols)
    print("time x: report / reading the run (flowrun show's view and every row the report reads); size x: page / flowrun.db "
          "(the run's own store); load x: report / an empty page, in Chromium")
    return 0


if __name__ == "__main__":
    sys.exit(main())
