"""Fixtures for the media tests: one real emulator on loopback for the session, reset
around each test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from flowrun.emulator import EmulatorServer  # noqa: E402
from media_kit import Emu  # noqa: E402


@pytest.fixture(scope="session")
def _media_server():
    with EmulatorServer(background_delay_ms=30) as server:
        yield server


@pytest.fixture
def emu(_media_server):
    handle = Emu(_media_server)
    handle.reset()
    yield handle
    handle.reset()
