"""Helpers for the hosted-MCP tests: run flow text through flowrun (real openai SDK, real
HTTP) against the emulator, which talks to a real MCP server."""

from __future__ import annotations

import asyncio
import json
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

from flowrun.client import ResponsesClient
from flowrun.emulator import EmulatorServer
from flowrun.emulator.conformance import validator
from flowrun.hooks import RunHooks
from flowrun.plan import load_plan
from flowrun.providers import ProviderConfig
from flowrun.run_inputs import resolve_inputs
from flowrun.runner import RunResult, run_plan

TOKEN = "tok-mcp-7d1c9a2f5e"  # the docs server's bearer token; must never be written anywhere


class Emu:
    def __init__(self, server: EmulatorServer):
        self.server = server
        self.base_url = server.base_url

    def reset(self) -> None:
        self.server.emulator.reset()
        self.server.emulator.load_script(None)

    def script(self, script: dict[str, Any]) -> None:
        self.server.emulator.load_script(script)

    def journal(self) -> list[dict[str, Any]]:
        """``GET /_emulator/requests``."""
        with urllib.request.urlopen(self.server.url + "/_emulator/requests") as resp:
            return json.loads(resp.read())

    def posts(self) -> list[dict[str, Any]]:
        return [e["body"] for e in self.journal()
                if e["method"] == "POST" and e["path"].endswith("/responses")]


class Recorder(RunHooks):
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str | None]] = []

    def on_step_status(self, step_id, status, detail=None, usage=None):
        self.events.append((step_id, status, detail))

    def details(self) -> list[str]:
        return [d for _, _, d in self.events if d]


def write_flow(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def run_flow(tmp_path: Path, emu: Emu, text: str, hooks: RunHooks | None = None,
             **kw: Any) -> RunResult:
    plan = load_plan(write_flow(tmp_path, text))
    values = resolve_inputs(plan.flow, {}, {}, cwd=tmp_path)

    async def main() -> RunResult:
        client = ResponsesClient(ProviderConfig("emulator", emu.base_url, "test-key"))
        try:
            return await run_plan(plan, client, values, run_root=tmp_path / "runs", hooks=hooks, **kw)
        finally:
            await client.close()

    return asyncio.run(main())


def docs_flow(url: str, step: str = "", **tool: Any) -> str:
    """A one-step flow whose step uses the MCP tool ``docs`` with the given settings."""
    settings = {"mcp": url, "headers": {"Authorization": "Bearer {{ secrets.DOCS_TOKEN }}"}}
    settings.update(tool)
    settings = {k: v for k, v in settings.items() if v is not None}
    return (
        "name: mcp-test\n"
        "secrets: [DOCS_TOKEN]\n"
        f"tools:\n  docs: {json.dumps(settings)}\n"
        "steps:\n"
        "  ask:\n"
        "    input: How do I rotate an API key?\n"
        "    tools: [docs]\n"
        + step
    )


def files_text(root: Path) -> dict[str, str]:
    """Every file below ``root``, as text."""
    return {str(p): p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file()}


def conforms(schema: str, instance: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator(schema).iter_errors(instance)]
