"""Batch mode's dataset engine: every row of the dataset goes through the flow one DAG
layer at a time, each round of requests of a layer (first requests, then each tool-loop
round, then retries of failed lines) in one batch.

Data flow: rows (read a wave of ``wave_rows`` at a time; a layer needs them all) -> per
layer, per row, each step
decided as the scheduler would (skip after a failed or skipped need, fail fast) -> the
step runs of the layer as chains of the :class:`~.collector.Collector` -> when the last
layer is done, each row's outputs and results line, as :class:`~flowrun.dataset.engine.
DatasetRunner` writes them (same shapes, same store rows).

A wave's rows are held in memory until its last layer is done (their step results feed
the next layer); then their lines are written and the next wave starts. A dataset of up
to ``wave_rows`` rows (10,000 by default) is one wave: one batch per round.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Iterator

from ..context import RunContext
from ..dataset.engine import DatasetRunner, RowStore, _RowHooks, row_summary
from ..dataset.rows import DatasetError, Row
from ..durable import PriorRun
from ..errors import FlowrunError, UsageError
from ..results import CANCELLED, FAILED, SKIPPED, SUCCEEDED
from ..runner import internal_error
from ..scheduler import Scheduler
from .client import BatchRowClient
from .collector import Collector
from .rows import BatchRowRunner, RowJournal
from .service import BatchService
from .settings import BatchSettings


@dataclass
class _Row:
    number: int
    where: str
    inputs: dict[str, Any]
    runner: BatchRowRunner
    schedule: Scheduler  # the row's step statuses and fail-fast state, decided as the scheduler does


class BatchDatasetRunner(DatasetRunner):
    """Runs a dataset in batch mode; ``run`` returns what :meth:`DatasetRunner.run` does."""

    def __init__(self, *args: Any, settings: BatchSettings, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.settings = settings
        self.service = BatchService(self.client, on_retry=self._on_retry)
        self.collector = Collector(self.service, self.db, self.run_id, self.attempt, settings, self.hooks)
        self.left_running: list[Any] = []

    def _on_retry(self, n: int, err: Exception, wait: float) -> None:
        self.hooks.on_notice("batch", f"retry {n} in {wait:.1f}s: {err}")

    # -- rows ----------------------------------------------------------------------------
    def _prepare(self, row: Row) -> _Row | None:
        """The row's runner, or None when the row failed already (its line is written)."""
        where = f"{self.spec.source.name}:{row.line}: row {row.number}"
        error, inputs = row.error, {}
        if error is None:
            try:
                inputs = self._inputs(row)
            except (ValueError, UsageError) as exc:
                error = f"{where}: {exc}"
                inputs = dict(row.values or {})
        if error is not None:
            self._finish(row.number, FAILED, inputs, {}, {}, error, {})
            return None
        key = f"{self.run_id}#{row.number}"
        store = RowStore(self.run_dir, self.run_id, row.number, self.redactor)
        store.journal = RowJournal(self.db, key, self.attempt,
                                   PriorRun.load(self.db, key) if self.attempt > 1 else None)
        client = BatchRowClient(self.client, self.collector, row.number, self.settings, self.redactor)
        ctx = RunContext(plan=self.spec.plan, client=client, store=store, redactor=self.redactor,
                         inputs=inputs, hooks=_RowHooks(self.hooks, row.number))
        runner = BatchRowRunner(ctx, self.collector)
        schedule = Scheduler(self.spec.plan.needs, runner.run_step, runner.node_options(), runner._on_settled)
        return _Row(row.number, where, inputs, runner, schedule)

    async def _step(self, r: _Row, sid: str) -> None:
        try:
            status = await r.runner.run_step(sid)
        except asyncio.CancelledError:
            raise
        except Exception:  # run_step records its own failures; this is a bug
            status = FAILED
        finally:
            self.collector.leave()
        r.schedule.finished(sid, status)

    async def _layer(self, number: int, layer: tuple[str, ...], rows: list[_Row]) -> None:
        self.collector.layer, self.collector.round = number, 0
        tasks = []
        for r in rows:
            for sid in layer:
                if r.schedule.failed_fast:
                    r.schedule.settle(sid, SKIPPED, f"not run: {r.schedule.failed_fast} failed")
                    continue
                decision = r.schedule.decide(sid)
                if decision is not None:
                    r.schedule.settle(sid, *decision)
                    continue
                self.collector.enter()  # counted before its task starts
                tasks.append(asyncio.get_running_loop().create_task(self._step(r, sid)))
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _conclude(self, r: _Row) -> None:
        try:
            result = await r.runner.conclude(dict(r.schedule.status))
        except FlowrunError as exc:
            self._finish(r.number, FAILED, r.inputs, {}, {}, f"{r.where}: {exc}", {})
            return
        except Exception as exc:  # a bug: the row fails, the others go on
            self._finish(r.number, FAILED, r.inputs, {}, {}, f"{r.where}: {internal_error(exc)}", {})
            return
        status, outputs, usage, error, steps = row_summary(result, r.where)
        self._finish(r.number, status, r.inputs, outputs, usage, error, steps)

    # -- the run -------------------------------------------------------------------------
    def _wave(self, rows: Iterator[Row]) -> tuple[list[_Row], str | None]:
        """The next ``wave_rows`` rows to run (and the dataset's error, if reading stops)."""
        wave: list[_Row] = []
        try:
            for row in rows:
                if not self.skip(row.number):
                    prepared = self._prepare(row)
                    if prepared is not None:
                        wave.append(prepared)
                        if len(wave) >= self.settings.wave_rows:
                            break
        except DatasetError as exc:
            return wave, exc.format()
        return wave, None

    async def run(self, kept: Iterator[str] = iter(())) -> tuple[str, str | None, int]:
        self.results_path.parent.mkdir(parents=True, exist_ok=True)
        error: str | None = None
        with open(self.results_path, "w", encoding="utf-8") as out:
            for line in kept:
                out.write(line + "\n")
            out.flush()
            self._out = out
            rows = self.spec.rows()
            try:
                while not self.cancelled:
                    wave, error = self._wave(rows)
                    if not wave:
                        break
                    self.collector.wave += 1
                    for number, layer in enumerate(self.spec.plan.generations, 1):
                        await self._layer(number, layer, wave)
                    for r in wave:
                        await self._conclude(r)
                    if error is not None:
                        break
            except asyncio.CancelledError:
                self.cancelled = True
                self.left_running = await self.collector.stop(cancel=not self.settings.detach)
        self._out = None
        if self.cancelled:
            return CANCELLED, self._interrupted(), 0
        if error is not None:
            return FAILED, error, 0
        return (FAILED if self.counts.get(FAILED) else SUCCEEDED), None, 0

    def _interrupted(self) -> str:
        ids = ", ".join(job.batch_id for job in self.left_running)
        if not self.left_running:
            return "interrupted"
        if self.settings.detach:
            return (f"interrupted; detached from batch{'es' if len(self.left_running) > 1 else ''} {ids} "
                    f"(still running): `flowrun resume {self.run_id}` re-attaches to them and goes on")
        return f"interrupted; cancelled batch{'es' if len(self.left_running) > 1 else ''} {ids}"

    def describe(self) -> dict[str, Any]:
        """What the ``--json`` summary says of the batches."""
        return {"created": self.collector.created, "re_attached": self.collector.attached,
                "left_running": [job.batch_id for job in self.left_running] if self.settings.detach else []}
