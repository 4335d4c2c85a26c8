"""Fixtures for the computer-use tests: the test sites on loopback, and one headless
Chromium per test module, driven on one event loop per module (the emulator and ``emu``
come from tests/conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from flowkit import Emu, run_file, write_flow

from flowrun.browser import launch_browser, use_browser
from flowrun.runner import RunResult

import cu_site  # type: ignore[import-not-found]


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

    def run(self, tmp_path: Path, emu: Emu, text: str, inputs: dict[str, Any] | None = None,
            interactive: bool = False, name: str = "flow.yaml", own_browser: bool = False) -> RunResult:
        return self.run_file(write_flow(tmp_path, text, name), emu, inputs, interactive=interactive,
                             run_root=tmp_path / "runs", own_browser=own_browser)

    def run_file(self, path: Path, emu: Emu, inputs: dict[str, Any] | None = None, *,
                 run_root: Path, interactive: bool = False, own_browser: bool = False) -> RunResult:
        """flowkit's run_file on this module's loop, sharing its Chromium unless ``own_browser``."""
        with contextlib.nullcontext() if own_browser else use_browser(self.launched.browser):
            result = run_file(path, emu, inputs, run_root=run_root, interactive=interactive,
                              runner=self.loop.run_until_complete)
        # every step closes the context it opened, whatever happened
        assert self.launched.browser.contexts == [], "a computer-use step left its context open"
        return result


@pytest.fixture(scope="module")
def driver():
    d = Driver()
    yield d
    d.close()
