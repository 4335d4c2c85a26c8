"""Run a DAG of steps with asyncio. Knows nothing of OpenAI: a step is an async callable
that returns its final status.

Rules:
- a step starts as soon as every step it needs has finished;
- a failed need fails the run fast (in-flight steps are cancelled, the rest are not
  started) unless the failed step has ``continue_on_error``, in which case its dependents
  skip;
- a skipped need skips the dependent unless it says ``on_skipped_needs: run``;
- cancelling :meth:`Scheduler.run` cancels every in-flight step and records it cancelled.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping

from .results import CANCELLED, FAILED, SKIPPED, SUCCEEDED

TERMINAL = (SUCCEEDED, FAILED, SKIPPED, CANCELLED)


@dataclass(frozen=True)
class NodeOptions:
    continue_on_error: bool = False
    run_after_skipped: bool = False


class Scheduler:
    """Runs ``run(step_id) -> status`` for each node of a DAG given as ``needs``."""

    def __init__(
        self,
        needs: Mapping[str, frozenset[str]],
        run: Callable[[str], Awaitable[str]],
        options: Mapping[str, NodeOptions] | None = None,
        on_status: Callable[[str, str, str | None], None] | None = None,
    ):
        self.needs = needs
        self._run = run
        self.options = options or {}
        self._on_status = on_status
        self.status: dict[str, str] = {}
        self.failed_fast: str | None = None

    def settle(self, node: str, status: str, reason: str | None = None) -> None:
        self.status[node] = status
        if self._on_status is not None:
            self._on_status(node, status, reason)

    def decide(self, node: str) -> tuple[str, str | None] | None:
        """None to run the node; or (status, reason) to settle it without running."""
        opts = self.options.get(node, NodeOptions())
        for dep in sorted(self.needs[node]):
            st = self.status.get(dep)
            if st == FAILED:
                return SKIPPED, f"needs {dep}, which failed"
            if st == CANCELLED:
                return SKIPPED, f"needs {dep}, which was cancelled"
            if st == SKIPPED and not opts.run_after_skipped:
                return SKIPPED, f"needs {dep}, which was skipped"
        return None

    def finished(self, node: str, status: str) -> None:
        """A node ran to ``status``; a failure without ``continue_on_error`` fails fast."""
        self.status[node] = status
        if status == FAILED and not self.options.get(node, NodeOptions()).continue_on_error:
            if self.failed_fast is None:
                self.failed_fast = node

    async def run(self) -> dict[str, str]:
        waiting = set(self.needs)
        running: dict[asyncio.Task[str], str] = {}
        try:
            while waiting or running:
                progressed = True
                while progressed and not self.failed_fast:
                    progressed = False
                    for node in sorted(waiting):
                        if not all(self.status.get(d) in TERMINAL for d in self.needs[node]):
                            continue
                        waiting.discard(node)
                        progressed = True
                        decision = self.decide(node)
                        if decision is not None:
                            self.settle(node, *decision)
                        else:
                            task = asyncio.ensure_future(self._run(node))
                            running[task] = node
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    node = running.pop(task)
                    try:
                        status = task.result()
                    except asyncio.CancelledError:
                        status = CANCELLED
                    except Exception:  # an executor bug must not hang the run
                        status = FAILED
                    self.finished(node, status)
                if self.failed_fast:
                    await self._cancel(running)
                    running.clear()
                    for node in sorted(waiting):
                        self.settle(node, SKIPPED, f"not run: {self.failed_fast} failed")
                    waiting.clear()
        except asyncio.CancelledError:
            await self._cancel(running)
            for node in sorted(waiting):
                self.settle(node, CANCELLED, "run interrupted")
            raise
        return dict(self.status)

    async def _cancel(self, running: dict[asyncio.Task[str], str]) -> None:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        for task, node in running.items():
            if self.status.get(node) not in TERMINAL:
                self.settle(node, CANCELLED, "cancelled")
