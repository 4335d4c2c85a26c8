"""Helpers for the function-tool tests: the emulator handle and a runner that drives a
flow through flowrun's real client (the openai SDK) over HTTP against the emulator."""

from __future__ import annotations

import asyncio
import json
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

from flowrun.client import ResponsesClient
from flowrun.emulator import EmulatorServer
from flowrun.plan import load_plan
from flowrun.providers import ProviderConfig
from flowrun.run_inputs import resolve_inputs
from flowrun.runner import RunResult, run_plan


class Emu:
    """The test's handle on the emulator: script and journal."""

    def __init__(self, server: EmulatorServer):
        self.server = server
        self.base_url = server.base_url

    def reset(self) -> None:
        self.server.emulator.reset()
        self.server.emulator.load_script(None)

    def script(self, script: dict[str, Any]) -> None:
        self.server.emulator.load_script(script)

    def journal(self) -> list[dict[str, Any]]:
        """``GET /_emulator/requests``, the fixed interface."""
        with urllib.request.urlopen(self.server.url + "/_emulator/requests") as resp:
            return json.loads(resp.read())

    def posts(self, step: str | None = None) -> list[dict[str, Any]]:
        """Bodies of ``POST /responses`` requests (of one step), oldest first."""
        out = []
        for e in self.journal():
            if e["method"] == "POST" and e["path"].endswith("/responses"):
                body = e["body"] or {}
                if step is None or (body.get("metadata") or {}).get("flowrun_step") == step:
                    out.append(body)
        return out


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def run_flow(tmp_path: Path, emu: Emu, text: str, inputs: dict[str, Any] | None = None,
             name: str = "flow.yaml", **kw: Any) -> RunResult:
    """Write ``text`` as a flow file in ``tmp_path``, run it on the emulator."""
    return run_file(write(tmp_path / name, text), tmp_path, emu, inputs, **kw)


def run_file(path: Path, tmp_path: Path, emu: Emu, inputs: dict[str, Any] | None = None,
             **kw: Any) -> RunResult:
    """Run the flow file at ``path`` on the emulator; the run directory is under ``tmp_path``."""
    plan = load_plan(path)
    values = resolve_inputs(plan.flow, {}, inputs or {}, cwd=tmp_path)

    async def main() -> RunResult:
        client = ResponsesClient(ProviderConfig("emulator", emu.base_url, "test-key"))
        try:
            return await run_plan(plan, client, values, run_root=tmp_path / "runs", **kw)
        finally:
            await client.close()

    return asyncio.run(main())


def record(result: RunResult) -> dict[str, Any]:
    return json.loads((result.run_dir / "record.json").read_text())


def tool_calls(result: RunResult, step: str) -> list[dict[str, Any]]:
    return record(result)["steps"][step].get("tool_calls", [])


def outputs_sent(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The function_call_output items of a request body."""
    items = body.get("input")
    return [i for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"] \
        if isinstance(items, list) else []
