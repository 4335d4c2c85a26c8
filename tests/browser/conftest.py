"""Fixtures for the computer-use tests: the emulator, the test sites on loopback, and one
headless Chromium per test module, driven on one event loop per module."""

from __future__ import annotations

import asyncio
import json
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from flowrun.browser import launch_browser, use_browser
from flowrun.client import ResponsesClient
from flowrun.emulator import EmulatorServer
from flowrun.emulator.computer import computer_log
from flowrun.plan import load_plan
from flowrun.providers import ProviderConfig
from flowrun.run_inputs import resolve_inputs
from flowrun.runner import RunResult, run_plan

import cu_site  # type: ignore[import-not-found]


class CuEmu:
    """The emulator as the tests see it: script in, journal and computer log out."""

    def __init__(self, server: EmulatorServer):
        self.server = server
        self.base_url = server.base_url

    def reset(self) -> None:
        self.server.emulator.reset()
        self.server.emulator.load_script(None)

    def script(self, script: dict[str, Any]) -> None:
        self.server.emulator.load_script(script)

    def journal(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.server.url + "/_emulator/requests") as resp:
            return json.loads(resp.read())

    def posts(self, step: str | None = None) -> list[dict[str, Any]]:
        out = []
        for e in self.journal():
            if e["method"] == "POST" and e["path"].endswith("/responses"):
                meta = (e["body"] or {}).get("metadata") or {}
                if step is None or meta.get("flowrun_step") == step:
                    out.append(e["body"])
        return out

    def outputs(self, step: str | None = None) -> list[dict[str, Any]]:
        """Every computer_call_output flowrun sent, in order."""
        return [item for body in self.posts(step) for item in body.get("input") or []
                if isinstance(item, dict) and item.get("type") == "computer_call_output"]

    def log(self) -> list[dict[str, Any]]:
        return computer_log(self.server.emulator)


@pytest.fixture(scope="session")
def _cu_server():
    with EmulatorServer(background_delay_ms=30) as server:
        yield server


@pytest.fixture
def emu(_cu_server):
    handle = CuEmu(_cu_server)
    handle.reset()
    yield handle
    handle.reset()


@pytest.fixture(scope="session")
def _sites():
    other = cu_site.serve("127.0.0.2")
    site = cu_site.serve("127.0.0.1", other.origin)
    yield site, other
    site.close()
    other.close()


@pytest.fixture
def site(_sites):
    """The allowed site (127.0.0.1)."""
    main, other = _sites
    main.clear()
    other.clear()
    return main


@pytest.fixture
def other_site(_sites):
    """A site on 127.0.0.2 that flows must never reach."""
    return _sites[1]


class Driver:
    """One event loop and one Chromium for a test module; runs flows in it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.launched = self.loop.run_until_complete(launch_browser(headless=True))

    def close(self) -> None:
        self.loop.run_until_complete(self.launched.close())
        self.loop.close()

    def run(self, tmp_path: Path, emu: CuEmu, text: str, inputs: dict[str, Any] | None = None,
            interactive: bool = False, name: str = "flow.yaml", own_browser: bool = False) -> RunResult:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return self.run_file(path, emu, inputs, interactive=interactive, run_root=tmp_path / "runs",
                             own_browser=own_browser)

    def run_file(self, path: Path, emu: CuEmu, inputs: dict[str, Any] | None = None, *,
                 run_root: Path, interactive: bool = False, own_browser: bool = False) -> RunResult:
        plan = load_plan(path)
        values = resolve_inputs(plan.flow, {}, inputs or {}, cwd=path.parent)

        async def main() -> RunResult:
            client = ResponsesClient(ProviderConfig("emulator", emu.base_url, "test-key"))
            try:
                if own_browser:
                    return await run_plan(plan, client, values, run_root=run_root, interactive=interactive)
                with use_browser(self.launched.browser):
                    return await run_plan(plan, client, values, run_root=run_root, interactive=interactive)
            finally:
                await client.close()

        result = self.loop.run_until_complete(main())
        # every step closes the context it opened, whatever happened
        assert self.launched.browser.contexts == [], "a computer-use step left its context open"
        return result


@pytest.fixture(scope="module")
def driver():
    d = Driver()
    yield d
    d.close()
