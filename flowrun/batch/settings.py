"""How a batch run submits and waits: the deployment override, polling and quota
backoff, file limits, and what Ctrl-C does (cancel the batches, or ``--detach``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from .lines import MAX_BYTES, MAX_LINES


@dataclass
class BatchSettings:
    deployment: str | None = None
    """``--batch-deployment``: the model every line names (Azure: a Global Batch deployment)."""
    detach: bool = False
    """On Ctrl-C leave the batches running (``flowrun resume`` re-attaches) instead of cancelling."""
    poll_initial: float = 2.0
    """Seconds before the first poll of a batch; each wait is 1.5 times the last."""
    poll_max: float = 60.0
    quota_initial: float = 60.0
    """Seconds to wait before resubmitting a batch refused for quota (token_limit_exceeded)."""
    quota_max: float = 1800.0
    quota_tries: int = 12
    max_lines: int = MAX_LINES
    max_bytes: int = MAX_BYTES
    wave_rows: int = 10_000
    """Rows that go through the layers together (memory grows with it, batches per round
    shrink with it)."""

    @classmethod
    def for_provider(cls, kind: str, deployment: str | None = None, detach: bool = False,
                     environ: Any = None) -> "BatchSettings":
        """The defaults for a provider kind (the emulator is polled fast), then
        ``FLOWRUN_BATCH_POLL`` (``INITIAL[,MAX]`` seconds), ``FLOWRUN_BATCH_QUOTA_WAIT``
        (``INITIAL[,MAX]``), ``FLOWRUN_BATCH_MAX_LINES``, ``FLOWRUN_BATCH_MAX_BYTES`` (a file's
        limits, at most the service's) and ``FLOWRUN_BATCH_WAVE_ROWS``."""
        env = os.environ if environ is None else environ
        s = cls(deployment=deployment, detach=detach)
        if kind == "emulator":
            s.poll_initial, s.poll_max, s.quota_initial, s.quota_max = 0.02, 0.5, 0.05, 1.0
        s.poll_initial, s.poll_max = _pair(env, "FLOWRUN_BATCH_POLL", s.poll_initial, s.poll_max)
        s.quota_initial, s.quota_max = _pair(env, "FLOWRUN_BATCH_QUOTA_WAIT", s.quota_initial, s.quota_max)
        s.max_lines = min(MAX_LINES, _count(env, "FLOWRUN_BATCH_MAX_LINES", s.max_lines))
        s.max_bytes = min(MAX_BYTES, _count(env, "FLOWRUN_BATCH_MAX_BYTES", s.max_bytes))
        s.wave_rows = _count(env, "FLOWRUN_BATCH_WAVE_ROWS", s.wave_rows)
        return s

    def to_json(self) -> dict[str, Any]:
        return {"deployment": self.deployment, "detach": self.detach}


def _count(env: Any, name: str, default: int) -> int:
    value = env.get(name)
    if not value:
        return default
    try:
        return max(1, int(value))
    except ValueError:
        raise UsageError(f"{name}={value!r}: expected a whole number") from None


def _pair(env: Any, name: str, first: float, second: float) -> tuple[float, float]:
    value = env.get(name)
    if not value:
        return first, second
    try:
        parts = [float(p) for p in value.split(",")]
    except ValueError:
        raise UsageError(f"{name}={value!r}: expected seconds, e.g. 2 or 2,60") from None
    if not parts or len(parts) > 2 or min(parts) <= 0:
        raise UsageError(f"{name}={value!r}: expected one or two positive numbers of seconds")
    return parts[0], parts[-1] if len(parts) == 2 else max(parts[0], second)
