"""The run-store tests: one emulator whose background responses take long enough to be
caught in progress (queued, then in progress, for 250 ms each)."""

from flowkit import emulator_fixture

emulator_server = emulator_fixture(background_delay_ms=250)
