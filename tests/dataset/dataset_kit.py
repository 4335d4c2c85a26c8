"""Helpers for the dataset tests: a two-step flow, datasets written as CSV / JSONL /
JSON, running a dataset in-process against the test emulator, and reading results."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from flowkit import Emu, write

from flowrun.dataset.launch import run_dataset

TWO_STEP = """\
name: triage
inputs:
  ticket: string
  priority: {type: integer, default: 3}
  team: {type: string, default: support}
steps:
  classify:
    input: "Classify ticket {{ inputs.ticket }} (priority {{ inputs.priority }}, team {{ inputs.team }})"
  reply:
    input: "Draft a reply for: {{ steps.classify.text }}"
outputs:
  category: "{{ steps.classify.text }}"
  reply: "{{ steps.reply.text }}"
"""
ROW = re.compile(r"ticket T(\d+):")


def flow_file(tmp_path: Path, text: str = TWO_STEP) -> Path:
    return write(tmp_path / "triage.yaml", text)


def csv_file(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def tickets(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "ticket": f"T{i}: printer {i} jams", "priority": i % 5 + 1} for i in range(1, n + 1)]


def run(tmp_path: Path, emu: Emu, dataset: Path, *, flow: Path | None = None, maps: tuple[str, ...] = (),
        assignments: tuple[str, ...] = (), rpm: float | None = None, tpm: float | None = None,
        concurrency: int = 8, results: Path | None = None) -> Any:
    """``flowrun run FLOW --dataset FILE --json`` in-process, against the test emulator."""
    return run_dataset(str(flow or flow_file(tmp_path)), str(dataset), str(results) if results else None,
                       maps, assignments, None, "emulator", emu.base_url, True, concurrency,
                       str(tmp_path / "runs"), None, rpm, tpm)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def row_of(body: dict[str, Any]) -> int | None:
    """The dataset row a request was for (its ticket number)."""
    text = json.dumps(body.get("input"))
    m = ROW.search(text)
    return int(m.group(1)) if m else None
