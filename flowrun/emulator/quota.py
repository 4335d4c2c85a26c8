"""Rate quotas of the emulator: requests and tokens per minute, as the services enforce them.

``flowrun emulator --rpm N --tpm N`` (env ``FLOWRUN_EMULATOR_RPM`` / ``FLOWRUN_EMULATOR_TPM``,
also for the in-process emulator of ``--provider emulator``; in Python
:func:`set_quota`, and :meth:`Quotas.snapshot` for what was refused).

Each quota is a bucket that refills continuously at ``N / 60`` per second and holds one
second of it (at least 1): a per-minute quota enforced over one second, as OpenAI
documents ("60,000 requests/minute may be enforced as 1,000 requests/second").

- **Requests**: every ``POST /responses`` takes 1 on arrival; with less than 1 left it
  is answered ``429`` (``rate_limit_exceeded``) at once, with ``Retry-After`` /
  ``retry-after-ms`` saying when 1 will be there.
- **Tokens**: every response is charged its ``usage.total_tokens`` when its output is
  made (the model's deterministic count, :mod:`.model`: ``floor(words * 1.3 + 0.5)`` of
  the instructions and every conversation item, history included, plus the output's);
  a ``POST /responses`` arriving while the bucket is empty or in debt gets a ``429``.
  Batch API lines are not charged (batches have the enqueued-token quota of :mod:`.batches`).
- **Headers** on every API response while a quota is set: ``x-ratelimit-limit-requests``
  and ``-tokens`` (N per minute), ``x-ratelimit-remaining-requests`` / ``-tokens`` (the
  share of the bucket left, in per-minute units: ``floor(level / capacity * N)``) and
  ``x-ratelimit-reset-requests`` / ``-tokens`` (until the bucket is full, e.g. ``"120ms"``).
"""
from __future__ import annotations

import math
import os
import threading
import time
from typing import Any, Mapping

from starlette.requests import Request

from .errors import APIError
from .server import ADMISSION, HEADER_HOOKS
from .service import AFTER_USAGE, IN_BATCH, RESET_HOOKS


class Quota:
    """One bucket: ``per_minute`` refilled continuously, holding one second of it."""

    def __init__(self, per_minute: float):
        self.per_minute = float(per_minute)
        self.rate = self.per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.at = time.monotonic()

    def refill(self) -> float:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = now
        return self.level

    def until(self, level: float) -> float:
        """Seconds until the bucket holds ``level``."""
        return max(0.0, (level - self.refill()) / self.rate)

    def headers(self, kind: str) -> dict[str, str]:
        level = self.refill()
        remaining = max(0, math.floor(max(level, 0.0) / self.capacity * self.per_minute))
        reset_ms = math.ceil((self.capacity - level) / self.rate * 1000)
        return {f"x-ratelimit-limit-{kind}": str(int(self.per_minute)),
                f"x-ratelimit-remaining-{kind}": str(remaining),
                f"x-ratelimit-reset-{kind}": f"{reset_ms}ms" if reset_ms < 1000 else f"{reset_ms / 1000:g}s"}


class Quotas:
    """The emulator's quotas (either may be None) and what they refused."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None):
        self.lock = threading.Lock()
        self.configure({"rpm": rpm, "tpm": tpm})

    def configure(self, data: Mapping[str, Any]) -> None:
        unknown = set(data) - {"rpm", "tpm"}
        if unknown:
            raise ValueError(f"unknown quota settings: {sorted(unknown)} (expected rpm, tpm)")
        for key in ("rpm", "tpm"):
            value = data.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or value <= 0):
                raise ValueError(f"quota {key!r} must be a positive number, got {value!r}")
        with self.lock:
            self.rpm = data.get("rpm")
            self.tpm = data.get("tpm")
            self.requests = Quota(self.rpm) if self.rpm else None
            self.tokens = Quota(self.tpm) if self.tpm else None
            self.refused = 0
            self.charged = 0

    @property
    def active(self) -> bool:
        return self.requests is not None or self.tokens is not None

    def admit(self) -> None:
        """Take one request, or raise the 429."""
        with self.lock:
            waits = []
            if self.requests is not None and self.requests.refill() < 1:
                waits.append(self.requests.until(1))
            if self.tokens is not None and self.tokens.refill() <= 0:
                waits.append(self.tokens.until(1))
            if waits:
                self.refused += 1
                wait = max(waits)
                which = "requests" if self.requests is not None and self.requests.level < 1 else "tokens"
                raise APIError(429, f"Rate limit reached for {which} per minute (flowrun emulator quota: "
                               f"rpm={self.rpm}, tpm={self.tpm}). Please try again in {wait * 1000:.0f}ms.",
                               retry_after=max(wait, 0.001))
            if self.requests is not None:
                self.requests.level -= 1

    def charge(self, tokens: int) -> None:
        with self.lock:
            self.charged += tokens
            if self.tokens is not None:
                self.tokens.refill()
                self.tokens.level -= tokens

    def headers(self) -> dict[str, str]:
        with self.lock:
            out: dict[str, str] = {}
            if self.requests is not None:
                out.update(self.requests.headers("requests"))
            if self.tokens is not None:
                out.update(self.tokens.headers("tokens"))
            return out

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"rpm": self.rpm, "tpm": self.tpm, "refused": self.refused, "charged_tokens": self.charged,
                    "requests_left": round(self.requests.refill(), 3) if self.requests else None,
                    "tokens_left": round(self.tokens.refill(), 3) if self.tokens else None}


def quotas(emulator: Any) -> Quotas:
    """The emulator's quotas (none set until configured)."""
    q = getattr(emulator, "_quotas", None)
    if q is None:
        q = emulator._quotas = Quotas()
        emulator._quotas_initial = {"rpm": None, "tpm": None}
    return q


def set_quota(emulator: Any, rpm: float | None = None, tpm: float | None = None, *,
              initial: bool = False) -> Quotas:
    """Set the emulator's quotas (``initial``: also what :meth:`Emulator.reset` goes back to)."""
    q = quotas(emulator)
    q.configure({"rpm": rpm, "tpm": tpm})
    if initial:
        emulator._quotas_initial = {"rpm": rpm, "tpm": tpm}
    return q


def quota_from_env(emulator: Any, environ: Mapping[str, str] | None = None) -> None:
    """Apply ``FLOWRUN_EMULATOR_RPM`` / ``FLOWRUN_EMULATOR_TPM`` (ValueError when not numbers)."""
    env = os.environ if environ is None else environ
    values: dict[str, float | None] = {}
    for key in ("rpm", "tpm"):
        raw = env.get(f"FLOWRUN_EMULATOR_{key.upper()}")
        try:
            values[key] = float(raw) if raw else None
        except ValueError:
            raise ValueError(f"FLOWRUN_EMULATOR_{key.upper()} must be a number per minute, got {raw!r}") from None
    if values["rpm"] or values["tpm"]:
        set_quota(emulator, values["rpm"], values["tpm"], initial=True)


def _is_create(request: Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/responses")


def _admit(emulator: Any, request: Request, body: Any) -> None:
    q = getattr(emulator, "_quotas", None)
    if q is not None and q.active and _is_create(request):
        q.admit()


def _headers(emulator: Any, request: Request) -> dict[str, str]:
    q = getattr(emulator, "_quotas", None)
    return q.headers() if q is not None and q.active else {}


def _charge(emulator: Any, response: dict[str, Any]) -> None:
    q = getattr(emulator, "_quotas", None)
    if q is not None and q.active and not IN_BATCH.get():  # batch lines: the batch quota
        q.charge(int((response.get("usage") or {}).get("total_tokens") or 0))


def _reset(emulator: Any) -> None:
    q = getattr(emulator, "_quotas", None)
    if q is not None:
        q.configure(getattr(emulator, "_quotas_initial", {"rpm": None, "tpm": None}))


ADMISSION.append(_admit)
HEADER_HOOKS.append(_headers)
AFTER_USAGE.append(_charge)
RESET_HOOKS.append(_reset)
