"""Deterministic fault injection: fixed latency, HTTP errors, slow and dropped streams.

Fault spec grammar (CLI ``--faults``, env ``FLOWRUN_EMULATOR_FAULTS``)::

    SPEC    := RULE ("," RULE)*
    RULE    := STATUS ["x" COUNT] (":" OPTION)*   the next COUNT POST /responses answer
                                                  HTTP STATUS (400-599) with an error body
             | "drop@" K ["x" COUNT]              the next COUNT streaming POST /responses
                                                  are cut after K SSE events
             | "slow@" MS ["x" COUNT]             the next COUNT streaming POST /responses
                                                  wait MS milliseconds before each event
             | "latency=" MS                      every API request waits MS ms first
    OPTION  := "retry_after=" SECONDS             sets Retry-After (and retry-after-ms)
             | "message=" TEXT | "code=" TEXT | "type=" TEXT
    COUNT   := positive integer (default 1)

Examples: ``429x2:retry_after=1,500x1,drop@3x1``, ``latency=200``, ``503:message=busy``.
Extensions add rule kinds with :data:`RULE_PARSERS` (:mod:`.batch_faults`: ``line@...``
and ``expire@...`` for Batch API lines); their rules live in ``Faults.extra[NAME]``.
Whitespace around rules is ignored. Status rules form one FIFO queue consumed by every
``POST /responses`` (before the script is consulted, so a failed attempt does not use up
a scripted reply); ``drop``/``slow`` rules form a second queue consumed only by
streaming requests that got past the status queue. ``FLOWRUN_EMULATOR_LATENCY_MS`` sets
the latency alone. ``POST /_emulator/faults`` accepts
``{"spec": "...", "latency_ms": N, "append": false}`` (replaces the queues unless
``append`` is true) and ``GET /_emulator/faults`` shows what is left.
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Callable

class FaultSpecError(ValueError):
    """A fault spec string that does not follow the grammar."""


@dataclass
class StatusFault:
    status: int
    count: int = 1
    retry_after: float | None = None
    message: str | None = None
    type: str | None = None
    code: str | None = None


@dataclass
class StreamFault:
    kind: str  # "drop" or "slow"
    value: int  # events before the cut (drop) or delay per event in ms (slow)
    count: int = 1


RULE_PARSERS: list[Callable[[str], Any]] = []
"""Extra rule kinds: ``parse(rule) -> object | None`` (None: not this kind's rule; raise
:class:`FaultSpecError` for a malformed one). The object's ``queue`` attribute names its
list in :attr:`Faults.extra`."""


def _extra_rule(rule: str) -> Any:
    for parse in RULE_PARSERS:
        found = parse(rule)
        if found is not None:
            return found
    return None


_STATUS = re.compile(r"^(\d{3})(?:x(\d+))?((?::[^:]*)*)$")
_STREAM = re.compile(r"^(drop|slow)@(\d+)(?:x(\d+))?$")
_LATENCY = re.compile(r"^latency=(\d+)$")


def _count(text: str | None, rule: str) -> int:
    count = int(text) if text else 1
    if count < 1:
        raise FaultSpecError(f"fault rule {rule!r}: count must be at least 1")
    return count


def parse_spec(spec: str) -> tuple[list[Any], int | None]:
    """Parse a fault spec into rules (in order) and an optional latency in ms."""
    rules: list[StatusFault | StreamFault] = []
    latency: int | None = None
    for raw in spec.split(","):
        rule = raw.strip()
        if not rule:
            continue
        if m := _LATENCY.match(rule):
            latency = int(m.group(1))
        elif m := _STREAM.match(rule):
            rules.append(StreamFault(m.group(1), int(m.group(2)), _count(m.group(3), rule)))
        elif m := _STATUS.match(rule):
            status = int(m.group(1))
            if not 400 <= status <= 599:
                raise FaultSpecError(f"fault rule {rule!r}: status must be 400-599")
            fault = StatusFault(status, _count(m.group(2), rule))
            for option in filter(None, m.group(3).split(":")):
                key, sep, value = option.partition("=")
                if not sep or key not in ("retry_after", "message", "code", "type"):
                    raise FaultSpecError(
                        f"fault rule {rule!r}: unknown option {option!r} "
                        "(expected retry_after=S, message=TEXT, code=TEXT or type=TEXT)")
                if key == "retry_after":
                    try:
                        fault.retry_after = float(value)
                    except ValueError:
                        raise FaultSpecError(f"fault rule {rule!r}: retry_after must be a number") from None
                else:
                    setattr(fault, key, value)
            rules.append(fault)
        elif (extra := _extra_rule(rule)) is not None:
            rules.append(extra)
        else:
            raise FaultSpecError(
                f"fault rule {rule!r} not understood; expected STATUS[xN][:retry_after=S], "
                "drop@K[xN], slow@MS[xN] or latency=MS, e.g. '429x2:retry_after=1,drop@3'")
    return rules, latency


class Faults:
    """Latency plus two FIFO fault queues; used from the server's event loop only."""

    def __init__(self, spec: str | None = None, latency_ms: int = 0) -> None:
        self.latency_ms = latency_ms
        self.status: deque[StatusFault] = deque()
        self.stream: deque[StreamFault] = deque()
        self.extra: dict[str, list[Any]] = {}
        if spec:
            self.load(spec)

    def load(self, spec: str, append: bool = False) -> None:
        rules, latency = parse_spec(spec)
        if not append:
            self.status.clear()
            self.stream.clear()
            self.extra.clear()
        for rule in rules:
            if isinstance(rule, (StatusFault, StreamFault)):
                (self.status if isinstance(rule, StatusFault) else self.stream).append(rule)
            else:
                self.extra.setdefault(rule.queue, []).append(rule)
        if latency is not None:
            self.latency_ms = latency

    def configure(self, data: dict[str, Any]) -> None:
        """Apply a ``POST /_emulator/faults`` body."""
        unknown = set(data) - {"spec", "latency_ms", "append"}
        if unknown:
            raise FaultSpecError(f"unknown fault settings: {sorted(unknown)}")
        spec = data.get("spec") or ""
        if not isinstance(spec, str):
            raise FaultSpecError("'spec' must be a string")
        self.load(spec, append=bool(data.get("append")))
        if data.get("latency_ms") is not None:
            latency = data["latency_ms"]
            if not isinstance(latency, int) or latency < 0:
                raise FaultSpecError("'latency_ms' must be a non-negative integer")
            self.latency_ms = latency

    def next_status(self) -> StatusFault | None:
        """Consume one unit of the head status fault, if any."""
        return self._take(self.status)

    def next_stream(self) -> StreamFault | None:
        """Consume one unit of the head stream fault, if any."""
        return self._take(self.stream)

    @staticmethod
    def _take(queue: deque) -> Any:
        if not queue:
            return None
        head = queue[0]
        head.count -= 1
        if head.count <= 0:
            queue.popleft()
        return head

    def snapshot(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "status": [asdict(f) for f in self.status],
                "stream": [asdict(f) for f in self.stream],
                **{name: [asdict(f) for f in rules] for name, rules in self.extra.items()}}
