"""Fault rules for Batch API lines, in the emulator's fault spec (:mod:`.faults`)::

    RULE     := "line@" SELECTOR ["x" COUNT] (":" OPTION)*   matching batch lines fail
              | "expire@" K ["x" COUNT]                      the next COUNT batches expire
                                                             after K lines
    SELECTOR := "every=" N        every Nth line of each batch (lines N, 2N, ...)
              | "id=" GLOB        lines whose custom_id matches the glob (fnmatch: * ? [..])
              | "rate=" P         a share P (0..1) of the lines, drawn deterministically
                                  from the custom_id and how often this rule saw it, so a
                                  retried line gets a fresh draw
    OPTION   := "status=" NNN (400-599, default 500) | "code=" TEXT | "message=" TEXT
              | "seed=" TEXT (for rate)

``COUNT`` caps how many lines a ``line@`` rule fails in all (default: no cap), e.g.
``line@id=row-7x1`` fails row 7 once and lets its retry through (so a glob ending in
``x`` and digits reads as a count: write ``[x]`` for a literal ``x`` there). A failed line gets
``response.status_code`` STATUS and an error body in the batch's error file, as a
``POST /responses`` answered with that error would. An expired batch writes every line
it did not reach to the error file with ``error.code`` ``batch_expired``.

Examples: ``line@every=10:status=500``, ``line@id=row-1*:status=429x3``,
``line@rate=0.05:seed=a``, ``expire@5``.
"""
from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import APIError
from .faults import RULE_PARSERS, Faults, FaultSpecError

_LINE = re.compile(r"^line@(every|id|rate)=([^:]*?)(?:x(\d+))?((?::[^:]*)*)$")
_EXPIRE = re.compile(r"^expire@(\d+)(?:x(\d+))?$")


@dataclass
class LineFault:
    queue: ClassVar[str] = "line"
    selector: str  # every | id | rate
    value: str
    count: int | None = None  # lines left to fail (None: no cap)
    status: int = 500
    code: str | None = None
    message: str | None = None
    seed: str = ""

    def __post_init__(self) -> None:
        self.seen: dict[str, int] = {}  # custom_id -> lines drawn for it (rate); not in snapshots

    def matches(self, line_number: int, custom_id: str) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        if self.selector == "every":
            return line_number % int(self.value) == 0
        if self.selector == "id":
            return fnmatch.fnmatchcase(custom_id, self.value)
        times = self.seen.get(custom_id, 0)
        self.seen[custom_id] = times + 1
        digest = hashlib.sha256(f"{self.seed}\0{custom_id}\0{times}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < float(self.value)

    def error(self) -> APIError:
        return APIError(self.status, self.message or f"Injected fault: HTTP {self.status} for this batch line "
                        "from the flowrun emulator.", code=self.code)


@dataclass
class ExpireFault:
    queue: ClassVar[str] = "expire"
    after: int  # lines processed before the batch expires
    count: int = 1


def _parse(rule: str) -> Any:
    if m := _EXPIRE.match(rule):
        count = int(m.group(2)) if m.group(2) else 1
        if count < 1:
            raise FaultSpecError(f"fault rule {rule!r}: count must be at least 1")
        return ExpireFault(int(m.group(1)), count)
    if not rule.startswith("line@"):
        return None
    m = _LINE.match(rule)
    if not m:
        raise FaultSpecError(f"fault rule {rule!r} not understood; expected line@every=N, line@id=GLOB or "
                             "line@rate=P, then optional xCOUNT and :status=NNN, :code=TEXT, :message=TEXT")
    selector, value = m.group(1), m.group(2)
    fault = LineFault(selector, value, int(m.group(3)) if m.group(3) else None)
    if fault.count is not None and fault.count < 1:
        raise FaultSpecError(f"fault rule {rule!r}: count must be at least 1")
    if selector == "every" and not (value.isdigit() and int(value) >= 1):
        raise FaultSpecError(f"fault rule {rule!r}: every= needs a whole number of at least 1")
    if selector == "rate":
        try:
            ok = 0.0 <= float(value) <= 1.0
        except ValueError:
            ok = False
        if not ok:
            raise FaultSpecError(f"fault rule {rule!r}: rate= needs a number between 0 and 1")
    if selector == "id" and not value:
        raise FaultSpecError(f"fault rule {rule!r}: id= needs a custom_id or glob")
    for option in filter(None, m.group(4).split(":")):
        key, sep, text = option.partition("=")
        if not sep or key not in ("status", "code", "message", "seed"):
            raise FaultSpecError(f"fault rule {rule!r}: unknown option {option!r} "
                                 "(expected status=NNN, code=TEXT, message=TEXT or seed=TEXT)")
        if key == "status":
            if not (text.isdigit() and 400 <= int(text) <= 599):
                raise FaultSpecError(f"fault rule {rule!r}: status must be 400-599")
            fault.status = int(text)
        else:
            setattr(fault, key, text)
    return fault


RULE_PARSERS.append(_parse)


def line_fault(faults: Faults, line_number: int, custom_id: str) -> APIError | None:
    """The injected error for this line (1-based number in its batch), if a rule fails it."""
    for rule in faults.extra.get("line", []):
        if rule.matches(line_number, custom_id):
            if rule.count is not None:
                rule.count -= 1
            return rule.error()
    return None


def take_expiry(faults: Faults) -> int | None:
    """Lines a new batch may process before it expires (None: it does not expire)."""
    queue = faults.extra.get("expire", [])
    if not queue:
        return None
    head = queue[0]
    head.count -= 1
    if head.count <= 0:
        queue.pop(0)
    return head.after
