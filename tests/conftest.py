"""Fixtures every test area shares: one emulator on loopback for the session
(``emulator_server``), the per-test handle on it (``emu``, reset around each test) and a
plain SDK client (``client``). An area that needs other emulator settings overrides
``emulator_server`` in its own conftest (see ``flowkit.emulator_fixture``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

if str(Path(__file__).resolve().parent) not in sys.path:  # flowkit, in any import mode
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from flowkit import Emu, emulator_fixture  # noqa: E402

emulator_server = emulator_fixture(background_delay_ms=30)


@pytest.fixture
def emu(emulator_server):
    handle = Emu(emulator_server)
    handle.reset()
    yield handle
    handle.reset()


@pytest.fixture
def client(emu):
    """A plain openai SDK client on the (reset) emulator."""
    with emu.sdk() as sdk:
        yield sdk
