"""Fixtures for the function-tool tests: their own session emulator, on the emulator's
default settings (``background_delay_ms`` 50), as these tests have always run."""

from __future__ import annotations

from flowkit import emulator_fixture

emulator_server = emulator_fixture()
