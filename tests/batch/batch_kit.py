"""Helpers for the batch-mode tests: a three-step flow (a function tool loop, a
``for_each``, a final step), its tools module, datasets, running a dataset in-process
with or without ``--batch`` against the test emulator, and reading the journal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flowkit import Emu, write

from flowrun.dataset.launch import run_dataset

THREE_STEP = """\
name: support
inputs:
  ticket: string
  priority: {type: integer, default: 3}
tools:
  lookup: {python: "tools:lookup"}
defaults:
  retries: {max: 3, initial_delay: 0.01, max_delay: 0.05}
steps:
  classify:
    input: "Classify ticket {{ inputs.ticket }} (priority {{ inputs.priority }})"
    tools: [lookup]
    tool_choice: required
  explain:
    for_each: "{{ ['cause', 'fix'] }}"
    input: "Explain the {{ item }} of: {{ steps.classify.text }}"
  reply:
    input: "Draft a reply for: {{ steps.explain | map(attribute='text') | join(' / ') }}"
outputs:
  category: "{{ steps.classify.text }}"
  reply: "{{ steps.reply.text }}"
"""
ROUNDS = 4  # classify: the tool call, then its result; explain; reply

TOOLS = '''
"""Tools for the batch tests."""


def lookup(ticket: str) -> dict:
    """Look a ticket up in the tracker.

    Args:
        ticket: The ticket text.
    """
    return {"ticket": ticket, "team": "printers" if "printer" in ticket else "other"}
'''


def flow_file(tmp_path: Path, text: str = THREE_STEP, name: str = "support.yaml") -> Path:
    write(tmp_path / "tools.py", TOOLS)
    return write(tmp_path / name, text)


def dataset(path: Path, n: int) -> Path:
    rows = [{"ticket": f"T{i}: printer {i} jams", "priority": i % 5 + 1} for i in range(1, n + 1)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run(tmp_path: Path, emu: Emu, data: Path, *, flow: Path | None = None, batch: bool = True,
        results: Path | None = None, runs: str = "runs", **kw: Any) -> Any:
    """``flowrun run FLOW --dataset FILE [--batch] --json`` in-process, on the test emulator."""
    return run_dataset(str(flow or flow_file(tmp_path)), str(data), str(results) if results else None,
                       (), (), None, "emulator", emu.base_url, True, 8, str(tmp_path / runs), None, None, None,
                       batch=batch, **kw)


def lines(path: Path) -> dict[int, dict[str, Any]]:
    """Results lines by row."""
    out = {}
    for text in Path(path).read_text(encoding="utf-8").splitlines():
        line = json.loads(text)
        out[line["row"]] = line
    return out


def posts(emu: Emu, path: str) -> list[dict[str, Any]]:
    return [e for e in emu.journal() if e["method"] == "POST" and e["path"] == path]
