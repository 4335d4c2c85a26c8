"""The data-analysis example, run as a user runs it: `flowrun run ... --provider emulator
--json` in a subprocess from the repository root. Its numbers are recomputed here from
the CSV, independently of the example's code."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from flowkit import EXAMPLES, flowrun_cli

FLOW = EXAMPLES / "data-analysis.yaml"
SALES = EXAMPLES / "data" / "sales.csv"


def test_data_analysis_example_runs_on_the_emulator(tmp_path):
    proc = flowrun_cli("run", str(FLOW), "--provider", "emulator", "--json", "--run-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    assert out["status"] == "succeeded"

    rows = list(csv.DictReader(SALES.open()))
    months = sorted({r["month"] for r in rows})
    totals: dict[tuple[str, str], float] = {}
    for r in rows:
        key = (r["month"], r["region"])
        totals[key] = totals.get(key, 0.0) + float(r["revenue"])
    growth = {g: totals[months[-1], g] / totals[months[0], g] - 1 for _, g in totals}
    best = max(growth, key=growth.get)
    assert f"Fastest growth: {best} ({growth[best]:+.1%})" in out["outputs"]["answer"]

    files = {Path(p).name: Path(p) for p in out["outputs"]["files"]}
    assert sorted(files) == ["revenue_by_region.csv", "revenue_by_region.png", "shares.csv"]
    table = list(csv.reader(files["revenue_by_region.csv"].open()))
    regions = table[0][1:]
    for line in table[1:]:
        for region, value in zip(regions, line[1:]):
            assert float(value) == round(totals[line[0], region], 2)
    png = files["revenue_by_region.png"].read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and out["outputs"]["chart"] == str(files["revenue_by_region.png"])
    # the follow-up ran in the same container: it saw the first step's files
    assert "In the container: revenue_by_region.csv, revenue_by_region.png, sales.csv" in out["outputs"]["shares"]
    record = json.loads((Path(out["run_dir"]) / "record.json").read_text())["steps"]
    assert record["follow_up"]["container"] == record["analyze"]["container"]
