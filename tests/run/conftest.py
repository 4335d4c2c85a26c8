"""Fixtures for run tests: one real emulator on loopback for the session."""

from __future__ import annotations

import pytest

from flowrun.emulator import EmulatorServer
from runkit import Emu  # type: ignore[import-not-found]


@pytest.fixture(scope="session")
def _server():
    with EmulatorServer(background_delay_ms=30) as server:
        yield server


@pytest.fixture
def emu(_server):
    handle = Emu(_server)
    handle.reset()
    yield handle
    handle.reset()


