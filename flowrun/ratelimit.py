"""Rate budgets: requests and tokens per minute, shared by every row and step of a run.

A :class:`RateBudget` holds one :class:`Pool` per model (or one shared pool): a token
bucket for requests and one for tokens. Each bucket refills continuously at ``N / 60``
per second and holds at most ``BURST_SECONDS`` of it, because services enforce a
per-minute quota over shorter periods too (OpenAI: "60,000 requests/minute may be
enforced as 1,000 requests/second"). Half a second, not one: requests taken from the
bucket one after another may reach the service bunched together (connections still
being opened, a busy machine); the other half second of the service's own burst absorbs
that.

A model request passes :meth:`RateBudget.acquire` before it is sent (the client seam,
:class:`flowrun.client.ResponsesClient`, calls it): it waits, first come first served,
until its pool has one request and the request's estimated tokens, and takes them.
The estimate is the input's size (tiktoken when installed, else 4 characters a token)
times what the responses so far taught (their ``usage`` against the estimate), plus
``max_output_tokens`` or the mean output seen. :meth:`RateBudget.settle` corrects the
tokens bucket by the real ``usage`` and reads the service's ``x-ratelimit-*`` headers:
``limit-*`` sets a pool's rate when none was configured, ``remaining-*`` caps the bucket
(so the run slows down before a 429, not after), and ``remaining 0`` pauses the pool
until ``reset-*``. A 429 that still happens pauses the pool for its ``Retry-After``.

The seam is :class:`Budget` (what the client calls); :class:`RateBudget` keeps the
buckets in this process. The budget works on an :class:`Ask` (a request's model and
size), not on the request itself, so a budget held elsewhere (one Ray actor for a
whole cluster, :mod:`flowrun.ray_engine.budget`) is asked with a few numbers.

A request that had to wait tells the observer in :data:`budget_waits` (a context
variable the step sets around its model call, so the run store can record the wait).
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

BURST_SECONDS = 0.5
"""A bucket holds this many seconds of its rate (at least one request)."""
DEFAULT_OUTPUT_TOKENS = 256
"""Output tokens assumed for a request without ``max_output_tokens`` until responses tell."""
WAIT_WORTH_NOTING = 0.001
"""Seconds of waiting on the budget below which no wait is reported."""
budget_waits: contextvars.ContextVar[Any] = contextvars.ContextVar("budget_waits", default=None)
"""``observer(started, seconds, model)`` for the requests of the current task, or None
(``started`` is a wall-clock time)."""
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_reset(value: str | None) -> float | None:
    """Seconds in a ``x-ratelimit-reset-*`` value: ``"1s"``, ``"6m0s"``, ``"20ms"``, ``"0.5"``."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


def _tiktoken_counter() -> Any:
    try:
        import tiktoken  # optional: a closer count for OpenAI models
    except ImportError:
        return None
    try:
        return tiktoken.get_encoding("o200k_base")
    except Exception:  # no encoding file offline
        return None


_ENCODER: Any = False


def count_text_tokens(text: str) -> int:
    """Tokens in ``text``: tiktoken's count when installed, else ``ceil(chars / 4)``."""
    global _ENCODER
    if _ENCODER is False:
        _ENCODER = _tiktoken_counter()
    if _ENCODER is not None:
        return len(_ENCODER.encode(text, disallowed_special=()))
    return math.ceil(len(text) / 4)


def _texts(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in ("image_url", "file_data", "type", "role", "id", "call_id", "status"):
                continue  # base64 payloads and labels are not text tokens
            _texts(item, out)
    elif isinstance(value, list):
        for item in value:
            _texts(item, out)


def input_tokens(params: Mapping[str, Any]) -> int:
    """Estimated input tokens of a request: its instructions and input text."""
    texts: list[str] = []
    _texts(params.get("instructions"), texts)
    _texts(params.get("input"), texts)
    items = params.get("input")
    overhead = 4 * (len(items) if isinstance(items, list) else 1)
    return count_text_tokens(" ".join(texts)) + overhead


class Bucket:
    """A token bucket: ``per_minute`` refilled continuously, holding ``BURST_SECONDS`` of it."""

    def __init__(self, per_minute: float, clock: Any = time.monotonic):
        self.clock = clock
        self.set_rate(per_minute)
        self.level = self.capacity
        self.at = clock()

    def set_rate(self, per_minute: float) -> None:
        self.per_minute = float(per_minute)
        self.rate = self.per_minute / 60.0
        self.capacity = max(1.0, self.rate * BURST_SECONDS)

    def refill(self) -> float:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = now
        return self.level

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` can be taken (a request larger than the bucket waits
        for a full bucket and leaves it in debt)."""
        need = min(amount, self.capacity)
        level = self.refill()
        return 0.0 if level >= need else (need - level) / self.rate

    def take(self, amount: float) -> None:
        self.refill()
        self.level -= amount

    def give(self, amount: float) -> None:
        """Correct a taken amount (negative: take more)."""
        self.refill()
        self.level = min(self.capacity, self.level + amount)

    def cap(self, fraction: float) -> None:
        """The service says only ``fraction`` of the quota is left."""
        self.refill()
        self.level = min(self.level, fraction * self.capacity)


@dataclass(frozen=True)
class Ask:
    """What the budget needs of a request: its model and estimated size."""

    model: str
    input_tokens: int  # the input's size as :func:`input_tokens` counts it
    max_output_tokens: int | None = None

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> "Ask":
        out = params.get("max_output_tokens")
        return cls(str(params.get("model") or ""), input_tokens(params),
                   out if isinstance(out, int) and not isinstance(out, bool) else None)


def rate_headers(headers: Any) -> dict[str, str]:
    """The ``x-ratelimit-*`` headers of a response, as a plain dict."""
    if headers is None:
        return {}
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-ratelimit-")}


class Budget:
    """The rate budget seam the client calls: :meth:`acquire` before a request is sent,
    :meth:`settle` or :meth:`failed` after. ``active``: limits were configured (not only
    learned from headers)."""

    active: bool = False

    async def acquire(self, params: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def settle(self, ticket: Any, headers: Any = None, usage: Mapping[str, Any] | None = None,
               params: Mapping[str, Any] | None = None) -> None:
        raise NotImplementedError

    def failed(self, ticket: Any, error: Any) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass
class Pool:
    """The buckets of one model (or of all): requests and tokens, either may be absent."""

    requests: Bucket | None = None
    tokens: Bucket | None = None
    configured: bool = False
    paused_until: float = 0.0
    lock: asyncio.Lock | None = None
    ratio: float = 1.0  # real input tokens per estimated one, learned from usage
    output_mean: float = float(DEFAULT_OUTPUT_TOKENS)
    settled: int = 0

    def estimate(self, ask: Ask) -> int:
        out = ask.max_output_tokens
        out_tokens = float(out) if out is not None else self.output_mean
        return int(math.ceil(ask.input_tokens * self.ratio + out_tokens))


@dataclass
class Ticket:
    """One admitted request: its pool and the tokens taken for it."""

    model: str
    pool: Pool
    tokens: int
    sent_at: float = field(default_factory=time.monotonic)
    ask: Ask | None = None


class RateBudget(Budget):
    """Requests and tokens per minute for a run, per model or shared.

    ``rpm`` / ``tpm``: the shared limits (None: none, unless the service's headers give
    them and ``learn`` is true). ``models``: ``{model: {"rpm": N, "tpm": N}}``, a pool
    of its own for each named model."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None,
                 models: Mapping[str, Mapping[str, Any]] | None = None, *, learn: bool = True,
                 clock: Any = time.monotonic):
        self.clock = clock
        self.learn = learn
        self.shared = self._pool(rpm, tpm)
        self.models = {name: self._pool(v.get("rpm"), v.get("tpm")) for name, v in (models or {}).items()}
        self.waited = 0.0  # seconds requests spent waiting for the budget
        self.rejected = 0  # 429s that happened anyway
        self.tokens_used = 0

    def _pool(self, rpm: float | None, tpm: float | None) -> Pool:
        return Pool(Bucket(rpm, self.clock) if rpm else None, Bucket(tpm, self.clock) if tpm else None,
                    configured=bool(rpm or tpm))

    @property
    def active(self) -> bool:
        return self.shared.configured or bool(self.models)

    def describe(self) -> dict[str, Any]:
        def one(p: Pool) -> dict[str, Any]:
            return {"rpm": p.requests.per_minute if p.requests else None,
                    "tpm": p.tokens.per_minute if p.tokens else None}

        out = one(self.shared)
        if self.models:
            out["models"] = {m: one(p) for m, p in self.models.items()}
        return out

    def pool(self, model: str) -> Pool:
        return self.models.get(model, self.shared)

    # -- before and after a request ------------------------------------------------------
    async def acquire(self, params: Mapping[str, Any]) -> Ticket:
        return await self.admit(Ask.of(params))

    async def admit(self, ask: Ask) -> Ticket:
        """Wait until ``ask``'s pool has a request and its estimated tokens; take them."""
        model = ask.model
        pool = self.pool(model)
        if pool.lock is None:
            pool.lock = asyncio.Lock()
        estimate = pool.estimate(ask)
        started = self.clock()
        wall = time.time()
        async with pool.lock:  # first come, first served
            while True:
                wait = pool.paused_until - self.clock()
                if pool.requests is not None:
                    wait = max(wait, pool.requests.wait_for(1))
                if pool.tokens is not None:
                    wait = max(wait, pool.tokens.wait_for(estimate))
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if pool.requests is not None:
                pool.requests.take(1)
            if pool.tokens is not None:
                pool.tokens.take(estimate)
        waited = self.clock() - started
        self.waited += waited
        observer = budget_waits.get()
        if observer is not None and waited >= WAIT_WORTH_NOTING:
            observer(wall, waited, model)
        return Ticket(model, pool, estimate, self.clock(), ask)

    def settle(self, ticket: Ticket, headers: Any = None, usage: Mapping[str, Any] | None = None,
               params: Mapping[str, Any] | None = None) -> None:
        """The request was answered: correct the tokens by ``usage`` and follow the headers."""
        pool = ticket.pool
        if usage:
            total = int(usage.get("total_tokens") or 0)
            self.tokens_used += total
            if pool.tokens is not None:
                pool.tokens.give(ticket.tokens - total)
            self._learn(pool, usage, ticket.ask.input_tokens if ticket.ask is not None
                        else (input_tokens(params) if params is not None else None))
        if headers is not None:
            self._follow(pool, headers)

    def failed(self, ticket: Ticket, error: Any) -> None:
        """The request failed; a 429 pauses the pool for its Retry-After (1 s if none)."""
        self.refused(ticket, getattr(error, "status", None), getattr(error, "retry_after", None))

    def refused(self, ticket: Ticket, status: int | None, retry_after: float | None) -> None:
        """:meth:`failed`, told the error's status and ``Retry-After`` seconds."""
        if status == 429:
            self.rejected += 1
            wait = retry_after
            ticket.pool.paused_until = max(ticket.pool.paused_until, self.clock() + (wait or 1.0))
            if ticket.pool.tokens is not None:
                ticket.pool.tokens.give(ticket.tokens)
        elif ticket.pool.tokens is not None:
            ticket.pool.tokens.give(ticket.tokens)  # nothing was generated

    def _learn(self, pool: Pool, usage: Mapping[str, Any], guess: int | None) -> None:
        pool.settled += 1
        weight = max(0.05, 1.0 / pool.settled)
        out = usage.get("output_tokens")
        if isinstance(out, int):
            pool.output_mean += weight * (out - pool.output_mean)
        inp = usage.get("input_tokens")
        if isinstance(inp, int) and guess and guess > 0:
            # lean high: an underestimate risks a 429, an overestimate only waits
            observed = min(8.0, max(0.25, inp / guess))
            pool.ratio = max(observed, pool.ratio + weight * (observed - pool.ratio))

    def _follow(self, pool: Pool, headers: Any) -> None:
        now = self.clock()
        for kind, bucket_name in (("requests", "requests"), ("tokens", "tokens")):
            limit = _number(headers.get(f"x-ratelimit-limit-{kind}"))
            remaining = _number(headers.get(f"x-ratelimit-remaining-{kind}"))
            bucket = getattr(pool, bucket_name)
            if bucket is None and limit and self.learn:
                bucket = Bucket(limit, self.clock)
                setattr(pool, bucket_name, bucket)
            if bucket is None or remaining is None or not limit:
                continue
            bucket.cap(remaining / limit)
            if remaining <= 0:
                reset = parse_reset(headers.get(f"x-ratelimit-reset-{kind}"))
                if reset:
                    pool.paused_until = max(pool.paused_until, now + reset)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def budget_from(rpm: float | None, tpm: float | None, flow_limits: Any = None,
                config_limits: Mapping[str, Any] | None = None, *, learn: bool = False) -> RateBudget | None:
    """The run's budget: ``--rpm`` / ``--tpm`` win over the flow's ``rate_limits:``, which
    wins over the config file's ``provider.rate_limits``. None when nothing sets one
    (and ``learn`` is false: dataset runs learn limits from the service's headers)."""
    layers: list[Mapping[str, Any]] = []
    if config_limits:
        layers.append(config_limits)
    if flow_limits is not None:
        layers.append(flow_limits.model_dump(exclude_none=True) if hasattr(flow_limits, "model_dump")
                      else dict(flow_limits))
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({k: v for k, v in layer.items() if v is not None})
    if rpm:
        merged["rpm"] = rpm
    if tpm:
        merged["tpm"] = tpm
    if not (merged.get("rpm") or merged.get("tpm") or merged.get("models") or learn):
        return None
    return RateBudget(merged.get("rpm"), merged.get("tpm"), merged.get("models"), learn=learn)
