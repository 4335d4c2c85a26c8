"""Retries with exponential backoff and full jitter; a server's Retry-After wins."""

from __future__ import annotations

import asyncio
import random
from typing import Any, Awaitable, Callable, TypeVar

from .errors import ClientError
from .spec import RetryPolicy

T = TypeVar("T")
DEFAULT_POLICY = RetryPolicy(max=2, initial_delay=1.0, max_delay=30.0)


def delay_for(attempt: int, policy: RetryPolicy, error: ClientError, rng: random.Random) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based)."""
    if error.retry_after is not None:
        return error.retry_after
    ceiling = min(policy.max_delay, policy.initial_delay * (2 ** (attempt - 1)))
    return policy.initial_delay / 2 + rng.random() * (ceiling - policy.initial_delay / 2)


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
            if not exc.retryable or attempt > policy.max:
                raise
            wait = delay_for(attempt, policy, exc, rng)
            if on_retry is not None:
                on_retry(attempt, exc, wait)
            await asyncio.sleep(wait)
