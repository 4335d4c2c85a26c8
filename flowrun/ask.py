"""Asking the person at the terminal: approvals (MCP) and safety checks (computer use).

Questions go to stderr, answers come from stdin, one question at a time across the run.
When the run is not interactive, :func:`ask_yes_no` is never called: callers apply their
policy instead (usually: deny, with a message saying how to allow).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


def _read_answer(prompt: str) -> str:
    sys.stderr.write(prompt)
    sys.stderr.flush()
    line = sys.stdin.readline()
    return line.strip().lower()


async def ask_yes_no(run: Any, title: str, details: dict[str, Any] | None = None) -> bool:
    """Ask ``title`` (with ``details`` shown as JSON); True for y/yes. EOF means no."""
    lines = [f"\n? {title}"]
    for key, value in (details or {}).items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"    {key}: {run.redactor.text(shown)}")
    prompt = "\n".join(lines) + "\n  approve? [y/N] "
    async with run.prompt_lock:
        pause = getattr(run.hooks, "pause", None)
        if pause is not None:
            pause()
        try:
            answer = await asyncio.to_thread(_read_answer, prompt)
        finally:
            resume = getattr(run.hooks, "resume", None)
            if resume is not None:
                resume()
    return answer in ("y", "yes")
