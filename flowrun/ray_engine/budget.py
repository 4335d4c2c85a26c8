"""One rate budget for a whole Ray cluster: a :class:`~flowrun.ratelimit.RateBudget`
held by one actor (:class:`BudgetKeeper`), asked by every worker before each request.

A worker's client holds a :class:`SharedBudget` (the :class:`~flowrun.ratelimit.Budget`
seam): :meth:`~SharedBudget.acquire` sends the request's :class:`~flowrun.ratelimit.Ask`
(model and size, a few numbers) and waits for the keeper's ticket; ``settle`` and
``failed`` tell the keeper the usage, the ``x-ratelimit-*`` headers and any 429 without
waiting for an answer. So every worker's requests come out of the same buckets, and a
header any worker sees paces them all.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..ratelimit import Ask, Budget, RateBudget, rate_headers

USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens")


def budget_settings(budget: RateBudget) -> dict[str, Any]:
    """What builds the same budget elsewhere: its limits and whether it learns."""
    described = budget.describe()
    return {"rpm": described.get("rpm"), "tpm": described.get("tpm"),
            "models": described.get("models") or None, "learn": budget.learn, "active": budget.active}


class BudgetKeeper:
    """The actor holding the cluster's budget (run it with ``ray.remote``, as an async actor)."""

    def __init__(self, rpm: float | None, tpm: float | None, models: Mapping[str, Any] | None,
                 learn: bool):
        self.budget = RateBudget(rpm, tpm, models, learn=learn)
        self.tickets: dict[int, Any] = {}
        self.issued = 0

    async def admit(self, model: str, input_tokens: int, max_output_tokens: int | None) -> int:
        ticket = await self.budget.admit(Ask(model, input_tokens, max_output_tokens))
        self.issued += 1
        self.tickets[self.issued] = ticket
        return self.issued

    async def settle(self, number: int, headers: dict[str, str], usage: dict[str, int] | None) -> None:
        ticket = self.tickets.pop(number, None)
        if ticket is not None:
            self.budget.settle(ticket, headers or None, usage)

    async def refused(self, number: int, status: int | None, retry_after: float | None) -> None:
        ticket = self.tickets.pop(number, None)
        if ticket is not None:
            self.budget.refused(ticket, status, retry_after)

    async def describe(self) -> dict[str, Any]:
        return {**self.budget.describe(), "requests": self.issued, "rejected": self.budget.rejected,
                "waited_s": round(self.budget.waited, 3)}


class SharedBudget(Budget):
    """A worker's handle on the :class:`BudgetKeeper` actor."""

    def __init__(self, keeper: Any, active: bool):
        self.keeper = keeper
        self.active = active
        self.final: dict[str, Any] | None = None

    async def acquire(self, params: Mapping[str, Any]) -> int:
        ask = Ask.of(params)
        return await self.keeper.admit.remote(ask.model, ask.input_tokens, ask.max_output_tokens)

    def settle(self, ticket: Any, headers: Any = None, usage: Mapping[str, Any] | None = None,
               params: Mapping[str, Any] | None = None) -> None:
        counts = {k: usage[k] for k in USAGE_KEYS if isinstance((usage or {}).get(k), int)} if usage else None
        self.keeper.settle.remote(ticket, rate_headers(headers), counts)  # not awaited

    def failed(self, ticket: Any, error: Any) -> None:
        self.keeper.refused.remote(ticket, getattr(error, "status", None), getattr(error, "retry_after", None))

    def describe(self) -> dict[str, Any]:
        """The keeper's limits (as learned) and counts; kept once the run's Ray session ends."""
        if self.final is None:
            import ray

            self.final = ray.get(self.keeper.describe.remote())
        return {k: v for k, v in self.final.items() if k in ("rpm", "tpm", "models")}
