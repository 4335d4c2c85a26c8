"""Running one flow over every row of a dataset, under one run id.

Data flow: rows (:mod:`.rows`, streamed) -> a bounded window of rows in flight (at most
``window`` rows at once; each is a run of the flow through :class:`~flowrun.runner.Runner`,
its steps sharing the run's concurrency slots and rate budget) -> as each row finishes:
its row in the store (:mod:`.state`), then its line in the results file.

The engine seam is :meth:`DatasetRunner.execute` (one row's inputs in, a
:class:`RowOutcome` out; here :func:`execute_row` in this process) with
:meth:`~DatasetRunner.open` / :meth:`~DatasetRunner.close` around the run; the Ray engine
(:mod:`flowrun.ray_engine`) overrides them and keeps everything else: the window, the
store rows, the results lines.

Flat memory: nothing is kept per finished row; a row's run (its steps, responses and
record) is dropped as soon as its line is written. A row's responses are not saved as
files (its results line and store row are its record); images and files it makes are
kept under ``<run dir>/rows/<row>/artifacts/``.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ..context import RunContext
from ..errors import FlowrunError, UsageError
from ..hooks import RunHooks
from ..plan import Plan
from ..results import CANCELLED, FAILED, SUCCEEDED
from ..run_inputs import resolve_inputs
from ..rundb import RunDB
from ..runner import Runner, internal_error
from ..secrets import Redactor
from ..store import RunStore
from ..tracing import current as tracer
from . import state
from .rows import DatasetError, Row, row_inputs


class RowStore(RunStore):
    """The store of one row's run: no record file, no response files; artifacts (made on
    first use) under ``<run dir>/rows/<row>/``."""

    def __init__(self, run_dir: Path, run_id: str, number: int, redactor: Redactor):
        self.run_id = f"{run_id}#{number}"
        self.dir = run_dir / "rows" / str(number)
        self.redactor = redactor
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}
        self.journal = None

    def write_record(self, record: dict[str, Any]) -> None:
        return None

    def save_response(self, step_key: str, response: dict[str, Any], index: int | None = None) -> Path:
        return self.dir / "responses" / f"{step_key}.json"

    async def keep_response(self, step_key: str, response: dict[str, Any], index: int | None = None) -> None:
        return None


class RowRunner(Runner):
    """A row's run: no record to export (the row's store row and results line are its record)."""

    def save(self) -> None:
        return None

    def save_soon(self) -> None:
        return None


class DatasetHooks(RunHooks):
    """What a dataset run reports: its start, each row's end, and the end. No-op by default."""

    def on_dataset_start(self, run_id: str, run_dir: str, total: int, done: int) -> None: ...
    def on_row_done(self, number: int, status: str, tokens: int, error: str | None) -> None: ...
    def on_dataset_end(self, result: "DatasetResult") -> None: ...
    def on_batch(self, event: dict[str, Any]) -> None:
        """Batch mode: a batch was submitted, re-attached, moved on, or ended (``event``:
        ``batch_id``, ``wave``, ``layer``, ``round``, ``part``, ``status``, ``lines``,
        ``completed``, ``failed``)."""


class _RowHooks(RunHooks):
    """A row's run hooks: notices go to the dataset's hooks with the row number."""

    def __init__(self, parent: RunHooks, number: int):
        self.parent, self.number = parent, number

    def on_notice(self, step_key: str, message: str) -> None:
        self.parent.on_notice(f"row {self.number}: {step_key}", message)


@dataclass
class DatasetResult:
    """A dataset run's outcome, as ``--json`` prints it."""

    run_id: str
    status: str
    run_dir: Path
    results: Path
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    reused: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    duration_s: float = 0.0
    rate: dict[str, Any] | None = None
    batches: dict[str, Any] | None = None  # batch mode: batches created, re-attached, left running
    engine: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        return {SUCCEEDED: 0, CANCELLED: 130}.get(self.status, 1)

    @property
    def outputs(self) -> dict[str, Any]:
        """What a run without ``--json`` prints on stdout: the results file."""
        return {"results": str(self.results)}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run_id": self.run_id, "status": self.status,
            "rows": {"total": self.total, "succeeded": self.succeeded, "failed": self.failed,
                     "skipped": self.skipped, "reused": self.reused},
            "results": str(self.results), "usage": self.usage, "run_dir": str(self.run_dir),
            "duration_s": round(self.duration_s, 3),
        }
        if self.rate:
            out["rate_limits"] = self.rate
        if self.batches is not None:
            out["batches"] = self.batches
        if self.engine:
            out["engine"] = self.engine
        if self.error:
            out["error"] = self.error
        return out


def add_usage(total: dict[str, int], usage: dict[str, Any]) -> None:
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        value = usage.get(key)
        if isinstance(value, int):
            total[key] = total.get(key, 0) + value


def row_summary(result: Any, where: str) -> tuple[str, Any, dict[str, int], str | None, dict[str, Any]]:
    """``(status, outputs, usage, error, steps)`` of a row's finished run, for its line."""
    usage: dict[str, int] = {}
    steps: dict[str, Any] = {}
    error = f"{where}: {result.error}" if result.error else None
    for sid, o in result.steps.items():
        add_usage(usage, o.usage)
        steps[sid] = {"status": o.status, **({"response_id": o.response_id} if o.response_id else {})}
    return result.status, result.outputs, usage, error, steps


@dataclass
class RowOutcome:
    """What one row's run of the flow gave: the parts of its results line."""

    status: str
    outputs: Any = None
    usage: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    steps: dict[str, Any] = field(default_factory=dict)


async def execute_row(plan: Plan, client: Any, run_dir: Path, run_id: str, number: int,
                      inputs: dict[str, Any], where: str, redactor: Redactor, slots: asyncio.Semaphore,
                      hooks: RunHooks) -> RowOutcome | None:
    """One row's run of the flow on ``client`` (artifacts under ``run_dir/rows/<n>/``);
    a flow error fails the row, never the dataset. None: cancelled before it finished."""
    store = RowStore(run_dir, run_id, number, redactor)
    ctx = RunContext(plan=plan, client=client, store=store, redactor=redactor, inputs=inputs,
                     hooks=hooks, slots=slots)
    try:
        result = await RowRunner(ctx).run()
    except asyncio.CancelledError:
        return None
    except FlowrunError as exc:
        return RowOutcome(FAILED, {}, error=f"{where}: {exc}")
    except Exception as exc:  # a bug: the row fails, the others go on
        return RowOutcome(FAILED, {}, error=f"{where}: {internal_error(exc)}")
    return RowOutcome(*row_summary(result, where))


@dataclass
class DatasetSpec:
    """What to run: the plan, the rows, and how rows become inputs."""

    plan: Plan
    rows: Callable[[], Iterator[Row]]
    source: Path
    typed: bool  # JSON rows (typed values) or CSV cells (text)
    mapping: dict[str, str]
    shared: dict[str, str]  # -i NAME=VALUE, for every row (wins over the row)
    total: int
    from_file: dict[str, Any] = field(default_factory=dict)  # --inputs FILE (the row wins)
    format: str = "jsonl"


class DatasetRunner:
    """Runs a :class:`DatasetSpec` as run ``run_id``; see the module docstring."""

    def __init__(self, spec: DatasetSpec, client: Any, db: RunDB, run_id: str, run_dir: Path,
                 results: Path, redactor: Redactor, *, concurrency: int, window: int | None = None,
                 hooks: DatasetHooks | None = None, attempt: int = 1, skip: Callable[[int], bool] | None = None,
                 environ_cwd: Path | None = None):
        self.spec, self.client, self.db = spec, client, db
        self.budget = getattr(client, "budget", None)
        self.run_id, self.run_dir, self.results_path = run_id, run_dir, results
        self.redactor = redactor
        self.concurrency = concurrency
        self.slots = asyncio.Semaphore(concurrency)
        self.window = window or max(2 * concurrency, concurrency + 4)
        self.hooks = hooks or DatasetHooks()
        self.attempt = attempt
        self.skip = skip or (lambda n: False)
        self.counts = {SUCCEEDED: 0, FAILED: 0}
        self.usage: dict[str, int] = {}
        self.cancelled = False
        self._out: Any = None

    # -- the engine --------------------------------------------------------------------
    async def open(self) -> None:
        """Before the first row (another engine starts its workers here)."""

    async def close(self) -> None:
        """After the last row, also when cancelled."""
        await self.client.close()

    def engine_info(self) -> dict[str, Any] | None:
        """What ``--json`` says of the engine (None: the local one, nothing to say)."""
        return None

    # -- one row ------------------------------------------------------------------------
    def _inputs(self, row: Row) -> dict[str, Any]:
        flow = self.spec.plan.flow
        given = row_inputs(row, flow, self.spec.mapping, self.spec.typed)
        return resolve_inputs(flow, self.spec.shared, {**self.spec.from_file, **given},
                              cwd=self.spec.source.parent,
                              flow_dir=self.spec.plan.base_dir)

    async def run_row(self, row: Row) -> None:
        inputs: dict[str, Any] = {}
        where = f"{self.spec.source.name}:{row.line}: row {row.number}"
        error = row.error
        if error is None:
            try:
                inputs = self._inputs(row)
            except (ValueError, UsageError) as exc:
                error = f"{where}: {exc}"
                inputs = {k: v for k, v in (row.values or {}).items()}
        if error is not None:
            self._finish(row.number, FAILED, inputs, {}, {}, error, {})
            return
        outcome = await self.execute(row.number, inputs, where)
        if outcome is None:
            return  # not finished: no row in the store, a resume runs it
        self._finish(row.number, outcome.status, inputs, outcome.outputs, outcome.usage, outcome.error,
                     outcome.steps)

    async def execute(self, number: int, inputs: dict[str, Any], where: str) -> "RowOutcome | None":
        """Run the flow for one row's inputs (the engine seam: here, in this process).
        None: cancelled before it finished."""
        return await execute_row(self.spec.plan, self.client, self.run_dir, self.run_id, number, inputs,
                                 where, self.redactor, self.slots, _RowHooks(self.hooks, number))

    def _finish(self, number: int, status: str, inputs: dict[str, Any], outputs: Any,
                usage: dict[str, int], error: str | None, steps: dict[str, Any]) -> None:
        line = self.redactor.text(state.results_line(number, self.redactor.deep(inputs), status,
                                                     outputs, usage, error, steps))
        tokens = int(usage.get("total_tokens") or 0)
        state.save_row(self.db, self.run_id, number, status, self.attempt, line, tokens)
        self._out.write(line + "\n")
        self._out.flush()
        self.counts[status] = self.counts.get(status, 0) + 1
        add_usage(self.usage, usage)
        self.hooks.on_row_done(number, status, tokens, error)

    # -- the run ------------------------------------------------------------------------
    async def run(self, kept: Iterator[str] = iter(())) -> tuple[str, str | None, int]:
        """Run every row not skipped; ``kept``: results lines of earlier attempts to keep.
        Returns (status, error, rows not run)."""
        with tracer().dataset(self):
            return await self._run(kept)

    async def _run(self, kept: Iterator[str]) -> tuple[str, str | None, int]:
        self.results_path.parent.mkdir(parents=True, exist_ok=True)
        error: str | None = None
        started = 0
        with open(self.results_path, "w", encoding="utf-8") as out:
            for line in kept:
                out.write(line + "\n")
            out.flush()
            self._out = out
            window = asyncio.Semaphore(self.window)
            tasks: set[asyncio.Task[None]] = set()

            def done(task: asyncio.Task[None]) -> None:
                tasks.discard(task)
                window.release()

            try:
                try:
                    for row in self.spec.rows():
                        if self.skip(row.number):
                            continue
                        await window.acquire()
                        started += 1
                        task = asyncio.get_running_loop().create_task(self.run_row(row))
                        tasks.add(task)
                        task.add_done_callback(done)
                except DatasetError as exc:
                    error = exc.format()
                while tasks:
                    await asyncio.gather(*list(tasks))
            except asyncio.CancelledError:
                self.cancelled = True
                for task in list(tasks):
                    task.cancel()
                await asyncio.gather(*list(tasks), return_exceptions=True)
        self._out = None
        if self.cancelled:
            return CANCELLED, "interrupted", 0
        if error is not None:
            return FAILED, error, 0
        return (FAILED if self.counts.get(FAILED) else SUCCEEDED), None, 0

