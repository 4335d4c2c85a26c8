"""Retries with exponential backoff and full jitter; a server's Retry-After is obeyed up to
``max_delay``, and a longer one fails the step at once with what the service asked.

The default policy (a step without ``retries:``) is :data:`DEFAULT_POLICY`, the field
defaults of :class:`~flowrun.spec.RetryPolicy`: 8 retries, 0.5 s doubling up to 60 s.
Eight retries is what a long run needs to ride out a bad patch: with 30 % of attempts
failing (429, 5xx, dropped streams), a 30-step chain survives 2 retries 4 times in 10,
and 8 retries 999 times in 1,000 (``benchmarks/bench_faults.py``).

An endpoint that does not answer at all (connection refused, host not found:
:class:`~flowrun.errors.EndpointUnreachable`) is retried at most
:data:`UNREACHABLE_RETRIES` times, at most :data:`UNREACHABLE_DELAY` seconds apart, so a
wrong base URL fails in about a second, not after minutes of backoff. Dropped streams,
timeouts, 5xx and 429 keep the full policy.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, Awaitable, Callable, TypeVar

from .errors import ClientError, EndpointUnreachable
from .spec import RetryPolicy

T = TypeVar("T")
DEFAULT_POLICY = RetryPolicy()
UNREACHABLE_RETRIES = 2
UNREACHABLE_DELAY = 0.5


def delay_for(attempt: int, policy: RetryPolicy, error: ClientError, rng: random.Random) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): the server's Retry-After
    when it gave one (the caller checks it against ``max_delay``), else backoff with
    jitter between half the initial delay and ``initial_delay * 2**(attempt-1)``, capped
    at ``max_delay``."""
    if error.retry_after is not None:
        return error.retry_after
    if isinstance(error, EndpointUnreachable):
        return min(UNREACHABLE_DELAY, policy.initial_delay) * (0.5 + rng.random() / 2)
    ceiling = min(policy.max_delay, policy.initial_delay * (2 ** (attempt - 1)))
    floor = min(policy.initial_delay / 2, ceiling)
    return floor + rng.random() * (ceiling - floor)


def too_long(error: ClientError, policy: RetryPolicy) -> ClientError:
    """The error to fail with when the service asks for a wait past ``max_delay``."""
    message = (f"{error}; the service asked to retry after {error.retry_after:g} s, more than "
               f"retries.max_delay ({policy.max_delay:g} s), so the step was not retried "
               "(raise max_delay to wait that long)")
    return type(error)(message, error.status, error.retry_after)


async def with_retries(
    operation: Callable[[], Awaitable[T]],
    policy: RetryPolicy | None,
    on_retry: Callable[[int, ClientError, float], Any] | None = None,
    rng: random.Random | None = None,
) -> T:
    """Run ``operation``; retry retryable :class:`ClientError` s per ``policy``."""
    policy = policy or DEFAULT_POLICY
    rng = rng or random.Random()
    attempt = 0
    while True:
        try:
            return await operation()
        except ClientError as exc:
            attempt += 1
            limit = min(policy.max, UNREACHABLE_RETRIES) if isinstance(exc, EndpointUnreachable) else policy.max
            if not exc.retryable or attempt > limit:
                raise
            if exc.retry_after is not None and exc.retry_after > policy.max_delay:
                raise too_long(exc, policy) from None
            wait = delay_for(attempt, policy, exc, rng)
            if on_retry is not None:
                on_retry(attempt, exc, wait)
            await asyncio.sleep(wait)
