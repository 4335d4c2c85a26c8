"""Helpers for the report tests: run an example flow (with its emulator script) or an
inline flow on the test emulator, then collect its report data or write its page."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from flowkit import EXAMPLES, Emu, run_file, write_flow

from flowrun.client import ResponsesClient
from flowrun.emulator.script import load_script
from flowrun.plan import load_plan
from flowrun.providers import ProviderConfig
from flowrun.resume import find_run
from flowrun.run_inputs import resolve_inputs
from flowrun.runner import RunResult, run_plan

ARTIFACTS = Path(os.environ.get("FLOWRUN_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts")


def run_example(name: str, emu: Emu, tmp_path: Path, inputs: dict[str, Any] | None = None,
                **kw: Any) -> RunResult:
    """``examples/flows/NAME.yaml`` on the emulator, with its ``NAME.emulator.yaml`` script
    when there is one."""
    script = EXAMPLES / f"{name}.emulator.yaml"
    if script.is_file():
        emu.server.emulator.load_script(load_script(script))
    return run_file(EXAMPLES / f"{name}.yaml", emu, inputs, run_root=tmp_path / "runs", **kw)


def run_with_budget(path: Path, emu: Emu, budget: Any, run_root: Path,
                    inputs: dict[str, Any] | None = None) -> RunResult:
    """A flow file on the emulator, its client under ``budget`` (a RateBudget)."""
    plan = load_plan(path)
    values = resolve_inputs(plan.flow, {}, inputs or {}, cwd=path.parent)

    async def main() -> RunResult:
        client = ResponsesClient(ProviderConfig("emulator", emu.base_url, "test-key"))
        client.budget = budget
        try:
            return await run_plan(plan, client, values, run_root=run_root)
        finally:
            await client.close()

    return asyncio.run(main())


TRIAGE = """\
name: triage
inputs:
  ticket: string
steps:
  classify:
    input: "Classify ticket {{ inputs.ticket }}"
  reply:
    input: "Draft a reply for: {{ steps.classify.text }}"
outputs:
  category: "{{ steps.classify.text }}"
"""


def run_dataset_of(emu: Emu, tmp_path: Path, n: int, concurrency: int = 8) -> Any:
    """A two-step flow over ``n`` tickets (``T1: printer 1 jams``, ...) as a dataset run
    on the emulator, in-process (``flowrun run --dataset --json``)."""
    from flowrun.dataset.launch import run_dataset

    flow = write_flow(tmp_path, TRIAGE, "triage.yaml")
    data = tmp_path / "tickets.jsonl"
    data.write_text("".join(json.dumps({"ticket": f"T{i}: printer {i} jams"}) + "\n"
                            for i in range(1, n + 1)))
    return run_dataset(str(flow), str(data), None, (), (), None, "emulator", emu.base_url, True,
                       concurrency, str(tmp_path / "runs"), None, None, None)


def data_of(result: Any, **kw: Any) -> dict[str, Any]:
    """The report data of a finished run (:func:`flowrun.report.report_data`)."""
    from flowrun.report import report_data

    db, row = find_run(str(result.run_dir), Path(result.run_dir).parent)
    try:
        return report_data(db, row, **kw)
    finally:
        db.close()


def page_of(result: Any, out: Path | None = None, **kw: Any) -> tuple[Path, str]:
    """Write the run's report (default: inside its run directory); (path, html)."""
    from flowrun.report import write_report

    path = write_report(str(result.run_dir), Path(result.run_dir).parent, out, **kw)
    return path, path.read_text(encoding="utf-8")


def step(data: dict[str, Any], key: str) -> dict[str, Any]:
    return next(s for s in data["steps"] if s["key"] == key)


def rows_json(html: str) -> list[list[Any]]:
    start = html.index('<script type="application/json" id="rows-data">') + len(
        '<script type="application/json" id="rows-data">')
    return json.loads(html[start:html.index("</script>", start)])


__all__ = ["ARTIFACTS", "data_of", "page_of", "rows_json", "run_dataset_of", "run_example",
           "run_with_budget", "step", "write_flow"]
