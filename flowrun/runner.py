"""Run a plan: inputs, the scheduler, step kinds, ``if`` / ``for_each`` / ``timeout``,
the run record and the flow's outputs.

Data flow: plan -> :class:`Runner` -> :class:`~flowrun.scheduler.Scheduler` ->
step executor (``steps/``) -> :class:`~flowrun.client.ResponsesClient` -> run store.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .context import RunContext, StepContext
from .durable import Resumption, open_journal
from .errors import Cancelled, ExecutionError, FlowrunError, StepTimeout, StoreError, UsageError
from .hooks import RunHooks
from .tracing import current as tracer
from .plan import Plan
from .results import (
    CANCELLED, FAILED, RUNNING, SKIPPED, SUCCEEDED, StepOutcome, StepResult, add_usage,
)
from .scheduler import NodeOptions, Scheduler
from .secrets import Redactor, looks_like_credential, too_short
from .steps import executor
from .store import RunStore, flow_hash, new_run_id
from .templating import TemplateError, analyze, iter_templates, render_deep

_FALSE_TEXT = {"", "false", "0", "no", "none", "null"}
SAVE_INTERVAL = 0.05
"""Least seconds between ``record.json`` exports while steps finish (the run store has
every completion at once; the export is the readable copy)."""
EXPORT_SHARE = 20
"""An export waits at least this many times as long as the last one took: exporting
stays a small share of the run however large the record grows."""


@dataclass
class RunResult:
    """The outcome of a run, as ``--json`` prints it."""

    run_id: str
    status: str
    run_dir: Path
    outputs: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, StepOutcome] = field(default_factory=dict)
    error: str | None = None

    @property
    def usage(self) -> dict[str, int]:
        """Tokens of every step, summed (a sub-flow's count for the step that ran it)."""
        total: dict[str, Any] = {}
        for outcome in self.steps.values():
            add_usage(total, outcome.usage)
        return total

    @property
    def exit_code(self) -> int:
        return {SUCCEEDED: 0, CANCELLED: 130}.get(self.status, 1)

    def to_json(self) -> dict[str, Any]:
        steps = {}
        for sid, o in self.steps.items():
            entry: dict[str, Any] = {"status": o.status, "response_id": o.response_id}
            if o.usage:
                entry["usage"] = o.usage
            if o.result is not None and o.result.cached:
                entry["cached"] = True
            if o.error:
                entry["error"] = o.error
            if o.items is not None:
                entry["items"] = [
                    {"status": r.status, "response_id": r.response_id,
                     **({"cached": True} if r.cached else {})} for r in o.items
                ]
            steps[sid] = entry
        out = {
            "run_id": self.run_id,
            "status": self.status,
            "outputs": self.outputs,
            "steps": steps,
            "run_dir": str(self.run_dir),
        }
        if self.error:
            out["error"] = self.error
        return out


def secrets_used(plan: Plan) -> set[str]:
    """Every ``secrets.NAME`` the flow (and its sub-flows) may read, plus ``secrets:``."""
    names = set(plan.flow.secrets)
    for _, text in iter_templates(plan.file.data):
        names |= analyze(text).names("secrets")
    for sub in plan.subflows.values():
        names |= secrets_used(sub)
    return names


def check_secrets(plan: Plan, environ: Any) -> None:
    missing = sorted(n for n in secrets_used(plan) if not environ.get(n))
    if missing:
        raise UsageError(
            f"secret{'s' if len(missing) > 1 else ''} not set: {', '.join(missing)}",
            hint="export " + " ".join(f"{n}=..." for n in missing) + " before the run",
        )


def internal_error(exc: BaseException) -> str:
    """The message for an unexpected exception inside a step (a flowrun bug)."""
    return (f"internal error: {type(exc).__name__}: {exc} (this is a flowrun bug; the run "
            "record has everything that completed)")


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_TEXT
    return bool(value)


class Runner:
    """Runs one plan within a :class:`RunContext`."""

    def __init__(self, ctx: RunContext, max_concurrency: int | None = None):
        self.ctx = ctx
        self.plan = ctx.plan
        limit = max_concurrency or self.plan.flow.max_concurrency
        if ctx.slots is None and limit:
            ctx.slots = asyncio.Semaphore(limit)
        self.started_at = time.time()
        self.status = RUNNING
        self.error: str | None = None
        self.outputs: dict[str, Any] = {}
        self._save_handle: asyncio.Handle | None = None
        self._last_save = 0.0
        self._save_cost = 0.0
        self.journal = getattr(ctx.store, "journal", None)  # flowrun.durable.RunJournal
        self.store_error: str | None = None  # the first run-store write that failed
        for sid in self.plan.order:
            ctx.outcomes[sid] = StepOutcome(sid)

    # -- record ------------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        flow = self.plan.flow
        rec: dict[str, Any] = {
            "run_id": self.ctx.store.run_id,
            "flow": {
                "name": flow.name,
                "file": str(self.plan.file.path) if self.plan.file.path else None,
                "hash": flow_hash(self.plan.file.text),
            },
            "status": self.status,
            "started_at": self.started_at,
            "inputs": self.ctx.inputs,
            "steps": {sid: self.ctx.outcomes[sid].to_record() for sid in self.plan.order},
            "outputs": self.outputs,
        }
        provider = getattr(self.ctx.client, "provider", None)
        if provider is not None:
            rec["provider"] = provider.describe()
        if self.status != RUNNING:
            rec["finished_at"] = time.time()
            rec["duration_s"] = round(rec["finished_at"] - self.started_at, 4)
        if self.error:
            rec["error"] = self.error
        if self.store_error:  # the store missed a write: this export may hold more than it
            rec["store_error"] = self.store_error
        if self.journal is not None:
            rec["attempt"] = self.journal.attempt
            rec["attempts"] = self.journal.db.attempts(self.ctx.store.run_id)
        return rec

    def save(self) -> None:
        """Write the record now (start, end, cancellation)."""
        self._save_handle = None
        started = time.monotonic()
        if self.journal is not None:
            self._durably(self.journal.checkpoint)
        self.ctx.store.write_record(self.record())
        self._last_save = time.monotonic()
        self._save_cost = self._last_save - started

    def _durably(self, write: Any, *args: Any) -> str | None:
        """Do one run-store write; the error if it failed (the first one is kept)."""
        try:
            write(*args)
        except StoreError as exc:
            problem = self.ctx.redactor.text(str(exc))
            self.store_error = self.store_error or problem
            return problem
        return None

    def _end(self) -> None:
        """Record the end of the attempt; a run whose end cannot be stored failed."""
        if self.journal is None:
            return
        problem = self._durably(self.journal.end, self)
        if problem is not None and self.status == SUCCEEDED:
            self.status, self.error, self.outputs = FAILED, problem, {}

    def _save_step(self, outcome: StepOutcome) -> None:
        """Store a settled step; a success that cannot be stored is a failure."""
        if self.journal is None:
            return
        problem = self._durably(self.journal.step_done, outcome)
        if problem is not None and outcome.status == SUCCEEDED:
            outcome.status, outcome.error = FAILED, problem

    def _save_item(self, sc: StepContext) -> None:
        """Store a finished ``for_each`` item; a success that cannot be stored is a failure."""
        if self.journal is None:
            return
        problem = self._durably(self.journal.item_done, sc)
        result = sc.result
        if problem is not None and result.status == SUCCEEDED:
            result.status, result.error, result.error_type = FAILED, problem, "StoreError"

    def save_soon(self) -> None:
        """Write the record shortly: completions that land together share one write
        (at most one write per ``SAVE_INTERVAL`` while steps are finishing)."""
        if self._save_handle is not None:
            return
        loop = asyncio.get_running_loop()
        # without a store, record.json is the only copy: written as often as before
        share = EXPORT_SHARE if self.journal is not None else 0
        interval = max(SAVE_INTERVAL, share * self._save_cost)
        wait = interval - (time.monotonic() - self._last_save)
        self._save_handle = (
            loop.call_soon(self.save) if wait <= 0 else loop.call_later(wait, self.save)
        )

    def _cancel_pending_save(self) -> None:
        if self._save_handle is not None:
            self._save_handle.cancel()
            self._save_handle = None

    # -- steps -------------------------------------------------------------------------
    def _publish(self, outcome: StepOutcome) -> None:
        self.ctx.steps_view[outcome.step_id] = outcome.to_template()

    def _on_settled(self, sid: str, status: str, reason: str | None) -> None:
        """The scheduler settled a step without running it (skip, cancel)."""
        outcome = self.ctx.outcomes[sid]
        if outcome.status in (SUCCEEDED, FAILED):
            return
        outcome.status = status
        outcome.error = reason
        self._save_step(outcome)
        self._publish(outcome)
        self.ctx.hooks.on_step_status(sid, status, reason)
        self.save_soon()

    async def run_step(self, sid: str) -> str:
        with tracer().step(self, sid):
            return await self._step(sid)

    async def _step(self, sid: str) -> str:
        step = self.plan.step(sid)
        outcome = self.ctx.outcomes[sid]
        outcome.started_at = time.time()
        base = StepContext(self.ctx, sid, step, StepResult(sid))
        try:
            if step.if_ is not None and not truthy(base.evaluate(step.if_)):
                outcome.status = SKIPPED
                outcome.error = "condition is false"
                self.ctx.hooks.on_step_status(sid, SKIPPED, "if: condition is false")
                return SKIPPED
            self.ctx.hooks.on_step_status(sid, RUNNING)
            if step.for_each is not None:
                await self._fan_out(sid, step, base, outcome)
            else:
                outcome.result = await self._run_one(base)
                outcome.status = outcome.result.status
                outcome.error = outcome.result.error
        except asyncio.CancelledError:
            outcome.status = CANCELLED
            outcome.error = "cancelled"
            raise
        except (FlowrunError, TemplateError) as exc:
            outcome.status = FAILED
            outcome.error = self.ctx.redactor.text(str(exc))
        except Exception as exc:  # a bug in a step kind: record it, never lose it
            outcome.status = FAILED
            outcome.error = self.ctx.redactor.text(internal_error(exc))
        finally:
            outcome.finished_at = time.time()
            self._save_step(outcome)
            self._publish(outcome)
            self.ctx.hooks.on_step_status(sid, outcome.status, outcome.error, outcome.usage)
            self.save_soon()
        return outcome.status

    async def _fan_out(self, sid: str, step: Any, base: StepContext, outcome: StepOutcome) -> None:
        values = base.evaluate(step.for_each) if isinstance(step.for_each, str) else step.for_each
        if isinstance(values, dict):
            values = list(values.items())
        if not isinstance(values, (list, tuple)):
            raise ExecutionError(
                f"for_each must give a list, got {type(values).__name__}: "
                f"{self.ctx.redactor.truncate(str(values), 100, marker='...')!r}",
                sid,
            )
        results = [StepResult(sid, index=i) for i in range(len(values))]
        outcome.items = results
        await self._run_items(sid, step, list(values), results)
        failed = [r for r in results if r.status != SUCCEEDED]
        outcome.status = FAILED if failed else SUCCEEDED
        if failed:
            outcome.error = f"{len(failed)} of {len(results)} items failed; first: {failed[0].error}"

    async def _run_items(self, sid: str, step: Any, values: list[Any], results: list[StepResult]) -> None:
        """Run every item of a ``for_each`` (at most ``max_parallel`` at once)."""
        limit = asyncio.Semaphore(step.max_parallel) if step.max_parallel else None

        async def one(i: int, value: Any) -> None:
            sc = StepContext(self.ctx, sid, step, results[i], loop={"item": value, "index": i})
            if limit is None:
                with tracer().item(sc):
                    await self._run_one(sc)
            else:
                async with limit:
                    with tracer().item(sc):
                        await self._run_one(sc)

        await asyncio.gather(*(one(i, v) for i, v in enumerate(values)))

    async def _run_one(self, sc: StepContext) -> StepResult:
        """Run one step (or one item) in a slot, with its timeout; never raises a
        FlowrunError (it becomes the result's error)."""
        result = sc.result
        if self.journal is not None and self.journal.reuse(sc):
            if result.index is not None:
                self._save_item(sc)
            return result  # done in an earlier attempt of this run: zero requests
        result.started_at = time.time()
        result.status = RUNNING
        timeout = sc.param("timeout")
        run = executor(sc.step.kind)
        if self.journal is not None:
            self.journal.started(sc)
            sc.state["ledger"] = self.journal.ledger(sc)
        try:
            if self.ctx.slots is not None:
                async with self.ctx.slots:
                    await self._timed(run(sc), timeout, sc)
            else:
                await self._timed(run(sc), timeout, sc)
            result.status = SUCCEEDED
        except (FlowrunError, TemplateError) as exc:
            result.status = FAILED
            result.error = self.ctx.redactor.text(str(exc))
            result.error_type = type(exc).__name__
        except Exception as exc:
            result.status = FAILED
            result.error = self.ctx.redactor.text(internal_error(exc))
            result.error_type = "InternalError"
        except asyncio.CancelledError:
            result.status = CANCELLED
            result.error = "cancelled"
            raise
        finally:
            result.finished_at = time.time()
            if result.index is not None:
                self._save_item(sc)
        return result

    @staticmethod
    async def _timed(coro: Any, timeout: float | None, sc: StepContext) -> None:
        if timeout is None:
            await coro
            return
        try:
            await asyncio.wait_for(coro, timeout)
        except asyncio.TimeoutError:
            raise StepTimeout(f"timed out after {timeout:g}s", sc.step_id) from None

    # -- the run -----------------------------------------------------------------------
    def _outputs(self) -> None:
        """The flow's outputs, for a run that succeeded (a failed run has none: an empty
        string would look like an empty answer)."""
        if self.status != SUCCEEDED:
            return
        ctx = self.ctx.template_context()
        outputs = {}
        for name, template in self.plan.file.data.get("outputs", {}).items():
            try:
                outputs[name] = render_deep(template, ctx, self.plan.file)
            except TemplateError as exc:  # name the output and where it is written
                where = exc.where or self.plan.file.source.problem(("outputs", name), "").where
                self.status = FAILED
                self.error = self.ctx.redactor.text(f"output {name!r} ({where}): {exc.message}")
                return
        self.outputs = outputs

    def node_options(self) -> dict[str, NodeOptions]:
        """What the scheduler needs to know of each step (fail fast, run after skipped)."""
        return {
            sid: NodeOptions(
                continue_on_error=self.plan.step(sid).continue_on_error,
                run_after_skipped=self.plan.step(sid).on_skipped_needs == "run",
            )
            for sid in self.plan.order
        }

    async def run(self) -> RunResult:
        with tracer().run(self):
            return await self._run()

    async def _run(self) -> RunResult:
        scheduler = Scheduler(self.plan.needs, self.run_step, self.node_options(), self._on_settled)
        self.ctx.hooks.on_run_start(self.ctx.store.run_id, str(self.ctx.store.dir), list(self.plan.order))
        if self.journal is not None:
            self.journal.begin(self)
        self.save()
        try:
            statuses = await scheduler.run()
        except asyncio.CancelledError:
            self.status = CANCELLED
            self.error = "interrupted"
            self._cancel_pending_save()
            self._end()
            self.save()
            await asyncio.shield(self.ctx.run_finalizers())
            raise
        return await self.conclude(statuses)

    async def conclude(self, statuses: dict[str, str]) -> RunResult:
        """End the run once every step settled: cleanups, status, outputs, the record."""
        await self.ctx.run_finalizers()
        hard_failures = [
            s for s, st in statuses.items()
            if st == FAILED and not self.plan.step(s).continue_on_error
        ]
        self.status = FAILED if hard_failures else SUCCEEDED
        if hard_failures:
            first = hard_failures[0]
            self.error = f"step {first} failed: {self.ctx.outcomes[first].error}"
        self._outputs()
        self._cancel_pending_save()
        self._end()
        self.save()
        return self.result()

    def result(self) -> RunResult:
        return RunResult(
            run_id=self.ctx.store.run_id,
            status=self.status,
            run_dir=self.ctx.store.dir,
            outputs=self.ctx.redactor.deep(self.outputs),
            steps=dict(self.ctx.outcomes),
            error=self.error,
        )


def run_redactor(plan: Plan, env: Any, provider: Any = None) -> Redactor:
    """A run's masks: the flow's secrets, the endpoint's key and every credential-looking
    ``OPENAI_*`` / ``AZURE_*`` variable."""
    redactor = Redactor()
    for name in secrets_used(plan):
        redactor.add(env.get(name), name)  # refuses a value too short to mask
    key = getattr(provider, "api_key", None)
    if isinstance(key, str) and len(key) >= 12 and provider.kind != "emulator":
        redactor.add(key)  # the endpoint's own key, should a template read it via env
    for name, value in env.items():
        if name.startswith(("OPENAI_", "AZURE_")) and looks_like_credential(name) \
                and not too_short(value):  # too short to mask, and unreadable by templates
            redactor.add(value)
    return redactor


async def run_plan(
    plan: Plan,
    client: Any,
    inputs: dict[str, Any],
    *,
    run_root: Path = Path(".flowrun/runs"),
    run_id: str | None = None,
    hooks: RunHooks | None = None,
    interactive: bool = False,
    max_concurrency: int | None = None,
    environ: Any = None,
    resume: Resumption | None = None,
    durable: bool = True,
    cache: bool | None = None,
    cache_dir: Path | None = None,
    cwd: Path | None = None,
) -> RunResult:
    """Run a checked plan to the end. Cancelling the task records the run as cancelled
    and raises :class:`~flowrun.errors.Cancelled` carrying the :class:`RunResult`.
    ``resume``: continue run ``run_id`` from what its earlier attempts left in the store.
    ``durable=False``: no run store, only ``record.json`` (rewritten as steps finish).
    ``cache``: True uses the step cache for every step (``--cache``), False for none
    (``--no-cache``), None as the flow says; ``cache_dir`` overrides ``$FLOWRUN_CACHE_DIR``.
    ``cwd``: where relative paths from the flow are looked up first (default: the
    process's working directory)."""
    import os

    env = os.environ if environ is None else environ
    check_secrets(plan, env)
    redactor = run_redactor(plan, env, getattr(client, "provider", None))
    provider = getattr(client, "provider", None)
    run_cache = None
    if cache is not False:
        from .cache import RunCache
        from .cache_store import default_cache_dir

        run_cache = RunCache(cache, cache_dir or default_cache_dir(env), provider)
        if run_cache.wanted(plan):
            run_cache.store  # opened now: a cache that cannot be opened stops the run here
    try:
        store = RunStore(run_root, run_id or new_run_id(), redactor)
    except OSError as exc:
        raise UsageError(f"cannot create the run directory under {run_root}: {exc.strerror or exc}",
                         hint="choose another --run-dir") from None
    owner = None
    if durable or resume is not None:
        from .run_owner import own

        owner = own(store.dir, store.run_id)  # held while this process runs the run
        try:
            store.journal = open_journal(run_root, store.run_id, redactor, resume)
        except BaseException:
            owner.release()
            raise
    if resume is not None:
        store.clear_stale_files()
    ctx = RunContext(
        plan=plan,
        client=client,
        store=store,
        redactor=redactor,
        inputs=inputs,
        hooks=hooks or RunHooks(),
        interactive=interactive,
        environ=env,
        cwd=cwd or Path.cwd(),
    )
    ctx.cache = run_cache
    runner = Runner(ctx, max_concurrency)
    try:
        result = await runner.run()
    except asyncio.CancelledError:
        result = runner.result()
        ctx.hooks.on_run_end(result)
        raise Cancelled("run interrupted", result) from None
    finally:
        if store.journal is not None:
            store.journal.db.close()
        if owner is not None:
            owner.release()
        if ctx.cache is not None:
            ctx.cache.close()
    ctx.hooks.on_run_end(result)
    return result
