"""Helpers for run tests: the emulator handle and a function that runs flow text through
the real openai SDK (flowrun's client) against the emulator."""

from __future__ import annotations

import asyncio
import json
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from flowrun.client import ResponsesClient
from flowrun.emulator import EmulatorServer
from flowrun.hooks import RunHooks
from flowrun.plan import load_plan
from flowrun.providers import ProviderConfig
from flowrun.run_inputs import resolve_inputs
from flowrun.runner import RunResult, run_plan


class Emu:
    """The test's handle on the emulator: script, faults, journal."""

    def __init__(self, server: EmulatorServer):
        self.server = server
        self.base_url = server.base_url

    def reset(self) -> None:
        self.server.emulator.reset()
        self.server.emulator.load_script(None)

    def script(self, script: dict[str, Any]) -> None:
        self.server.emulator.load_script(script)

    def faults(self, spec: str = "", latency_ms: int | None = None) -> None:
        self.server.emulator.faults.load(spec)
        if latency_ms is not None:
            self.server.emulator.faults.latency_ms = latency_ms

    def journal(self) -> list[dict[str, Any]]:
        """``GET /_emulator/requests``, the fixed interface."""
        with urllib.request.urlopen(self.server.url + "/_emulator/requests") as resp:
            return json.loads(resp.read())

    def posts(self, step: str | None = None) -> list[dict[str, Any]]:
        out = []
        for e in self.journal():
            if e["method"] == "POST" and e["path"].endswith("/responses"):
                meta = (e["body"] or {}).get("metadata") or {}
                if step is None or meta.get("flowrun_step") == step:
                    out.append(e)
        return out


class Recorder(RunHooks):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.deltas: dict[str, str] = {}

    def on_step_status(self, step_id, status, detail=None, usage=None):
        self.events.append((step_id, status))

    def on_text_delta(self, step_key, delta):
        self.deltas[step_key] = self.deltas.get(step_key, "") + delta


def write_flow(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def run_flow(
    tmp_path: Path,
    emu: Emu,
    text: str,
    inputs: dict[str, Any] | None = None,
    hooks: RunHooks | None = None,
    environ: dict[str, str] | None = None,
    **kw: Any,
) -> RunResult:
    """Write ``text`` as a flow file, run it on the emulator, return the result."""
    path = write_flow(tmp_path, text)
    plan = load_plan(path)
    values = resolve_inputs(plan.flow, {}, inputs or {}, cwd=tmp_path)

    async def main() -> RunResult:
        client = ResponsesClient(ProviderConfig("emulator", emu.base_url, "test-key"))
        try:
            return await run_plan(plan, client, values, run_root=tmp_path / "runs",
                                  hooks=hooks, environ=environ, **kw)
        finally:
            await client.close()

    return asyncio.run(main())


def sent_text(body: dict[str, Any]) -> str:
    """The latest user text of a request body (``input`` as a string or as items)."""
    value = body["input"]
    if isinstance(value, str):
        return value
    for item in reversed(value):
        if item.get("role") == "user":
            content = item["content"]
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content if p.get("type") == "input_text")
    return ""
