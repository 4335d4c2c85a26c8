"""Fixtures for the function-tool tests: one real emulator on loopback for the session."""

from __future__ import annotations

import pytest

from flowrun.emulator import EmulatorServer
from fnkit import Emu  # type: ignore[import-not-found]


@pytest.fixture(scope="session")
def _fn_server():
    with EmulatorServer() as server:
        yield server


@pytest.fixture
def emu(_fn_server):
    handle = Emu(_fn_server)
    handle.reset()
    yield handle
    handle.reset()
