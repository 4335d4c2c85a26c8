"""Crash points: a test seam that stops this process at a chosen run-store event, so a
test can ``kill -9`` it exactly there (tests/store/test_kill.py).

``FLOWRUN_TEST_PAUSE_AT=EVENT:N:PHASE[,EVENT:N:PHASE...]`` arms it: at the N-th event of
kind EVENT in this process, at PHASE, the process writes ``FLOWRUN_TEST_PAUSE_READY`` (a
file path: JSON with the point hit and what was being written) and blocks forever. The
first point reached wins.

- EVENT: a :class:`~flowrun.rundb.RunDB` write (``run``, ``end``, ``checkpoint``, ``step``,
  ``item``, ``turn``, ``turn_done``, ``call_start``, ``call``, ``approval``, ``drop``) or
  ``export`` (``record.json`` written by :class:`~flowrun.store.RunStore`) or
  ``artifact`` (an image or file of a step, :meth:`~flowrun.store.RunStore.write_file`).
- PHASE: ``before`` the write, ``inside`` it (a transaction's statements ran, not yet
  committed; for ``export`` and ``artifact``: the new file is written, not yet renamed over the old one),
  or ``after`` it committed.

Unset (always, outside tests) it costs one ``None`` check per write.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

ENV = "FLOWRUN_TEST_PAUSE_AT"
READY_ENV = "FLOWRUN_TEST_PAUSE_READY"
PHASES = ("before", "inside", "after")


class Pauser:
    """The armed points of this process and the count of each event kind so far."""

    def __init__(self, spec: str, ready: str | None):
        self.points: set[tuple[str, int, str]] = set()
        for part in filter(None, (p.strip() for p in spec.split(","))):
            event, n, phase = part.split(":")
            if phase not in PHASES:
                raise ValueError(f"{ENV}: phase {phase!r} is not one of {', '.join(PHASES)}")
            self.points.add((event, int(n), phase))
        self.ready = ready
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def count(self, event: str) -> int:
        """Count one more event of this kind; its number (1 for the first)."""
        with self._lock:
            n = self.counts[event] = self.counts.get(event, 0) + 1
        return n

    def reached(self, event: str, n: int, phase: str, detail: Any = None) -> None:
        if (event, n, phase) not in self.points:
            return
        if self.ready:
            tmp = f"{self.ready}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                json.dump({"event": event, "n": n, "phase": phase, "detail": detail,
                           "pid": os.getpid()}, f)
            os.replace(tmp, self.ready)
        while True:  # until the test kills the process
            time.sleep(3600)


_armed: tuple[str, Pauser | None] = ("", None)


def armed() -> Pauser | None:
    """The pauser for this process's ``FLOWRUN_TEST_PAUSE_AT`` (None when unset)."""
    global _armed
    spec = os.environ.get(ENV, "")
    if spec != _armed[0]:
        _armed = (spec, Pauser(spec, os.environ.get(READY_ENV)) if spec else None)
    return _armed[1]


class Point:
    """One event: ``with point(pauser, event, detail) as p: ... p.inside() ...``; the
    ``before`` and ``after`` phases are the block's edges."""

    __slots__ = ("pauser", "event", "n", "detail")

    def __init__(self, pauser: Pauser, event: str, detail: Any = None):
        self.pauser, self.event, self.detail = pauser, event, detail
        self.n = pauser.count(event)

    def __enter__(self) -> "Point":
        self.pauser.reached(self.event, self.n, "before", self.detail)
        return self

    def inside(self) -> None:
        self.pauser.reached(self.event, self.n, "inside", self.detail)

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if kind is None:
            self.pauser.reached(self.event, self.n, "after", self.detail)
