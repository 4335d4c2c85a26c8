"""A dataset row's run in batch mode: its steps run as the local engine runs them (same
rendering, same tool loop, same results), with the collector counting each step run
and ``for_each`` item as a chain, and a journal of its own in the run store so a
resumed run reuses the steps, turns and tool calls the row completed."""

from __future__ import annotations

import asyncio
from typing import Any

from ..context import StepContext
from ..dataset.engine import RowRunner
from ..durable import RunJournal
from ..results import StepResult
from ..tracing import current as tracer
from .client import CURRENT
from .collector import Collector


class RowJournal(RunJournal):
    """A row's steps, turns and tool calls under ``RUN#ROW``; the run itself is the
    dataset run's (no ``runs`` row of its own)."""

    def begin(self, runner: Any) -> None:
        return None

    def end(self, runner: Any) -> None:
        return None

    def checkpoint(self) -> None:
        return None


class BatchRowRunner(RowRunner):
    """A row's runner whose step runs are chains of the collector. A step's ``timeout``
    does not apply (a batch has 24 hours); ``max_parallel`` neither (every item is a line
    of the same batch)."""

    def __init__(self, ctx: Any, collector: Collector):
        super().__init__(ctx)
        self.collector = collector

    async def _run_items(self, sid: str, step: Any, values: list[Any], results: list[StepResult]) -> None:
        collector = self.collector
        collector.enter(len(values))  # every item counted before it starts

        async def one(i: int, value: Any) -> None:
            sc = StepContext(self.ctx, sid, step, results[i], loop={"item": value, "index": i})
            try:
                with tracer().item(sc):
                    await self._run_one(sc)
            finally:
                collector.leave()

        collector.leave()  # the step itself only waits for its items now
        try:
            await asyncio.gather(*(one(i, v) for i, v in enumerate(values)))
        finally:
            collector.enter()

    async def _run_one(self, sc: StepContext) -> StepResult:
        token = CURRENT.set(sc)
        try:
            return await super()._run_one(sc)
        finally:
            CURRENT.reset(token)

    @staticmethod
    async def _timed(coro: Any, timeout: float | None, sc: StepContext) -> None:
        await coro
