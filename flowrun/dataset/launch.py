"""Start or resume a dataset run from the command line: check the dataset against the
flow, set up the run (store rows, results file, rate budget, emulator), run it with
Ctrl-C handling, and return the :class:`~.engine.DatasetResult`."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..plan import Plan, load_plan
from ..providers import resolve_provider
from ..results import FAILED, SUCCEEDED
from ..rundb import RunDB
from ..run_inputs import parse_assignments, read_inputs_file
from ..secrets import Redactor, looks_like_credential
from ..store import RunStore, flow_hash, new_run_id
from . import state
from .engine import DatasetHooks, DatasetResult, DatasetRunner, DatasetSpec
from .engines import make_runner
from .rows import csv_header, detect_format, parse_mapping, read_rows

DEFAULT_CONCURRENCY = 16


def _redactor(plan: Plan, provider: Any) -> Redactor:
    from ..runner import check_secrets, secrets_used

    env = os.environ
    check_secrets(plan, env)
    redactor = Redactor()
    for name in secrets_used(plan):
        redactor.add(env.get(name))
    key = getattr(provider, "api_key", None)
    if isinstance(key, str) and len(key) >= 12 and provider.kind != "emulator":
        redactor.add(key)
    for name, value in env.items():
        if name.startswith(("OPENAI_", "AZURE_")) and looks_like_credential(name):
            redactor.add(value)
    return redactor


def _spec(plan: Plan, source: Path, mapping: dict[str, str], shared: dict[str, str],
          from_file: dict[str, Any]) -> DatasetSpec:
    """Check the dataset against the flow (up front, before any request) and count its rows."""
    if not source.is_file():
        raise UsageError(f"--dataset {source}: no such file")
    fmt = detect_format(source)
    for name in shared:
        if name not in plan.flow.inputs:
            raise UsageError(f"-i {name}=...: the flow has no input {name!r}",
                             hint=f"its inputs: {', '.join(plan.flow.inputs) or 'none'}")
    header = csv_header(source, fmt)
    if header is not None:
        for name, column in mapping.items():
            if column not in header:
                raise UsageError(f"--map {name}={column}: {source} has no column {column!r}",
                                 hint=f"its columns: {', '.join(header) or 'none'}")
        for name, spec in plan.flow.inputs.items():
            if (spec.is_required and name not in shared and name not in from_file
                    and mapping.get(name, name) not in header):
                raise UsageError(f"{source}:1: no column for the input {name!r} ({spec.type})",
                                 hint=f"its columns: {', '.join(header) or 'none'}; map one with "
                                      f"--map {name}=COLUMN, or give it to every row with -i {name}=VALUE")
    total = sum(1 for _ in read_rows(source, fmt))  # also finds a broken JSON array up front
    return DatasetSpec(plan, lambda: read_rows(source, fmt), source.resolve(), fmt not in ("csv", "tsv"),
                       mapping, shared, total, from_file, fmt)


def _hooks(as_json: bool, batch: bool = False) -> DatasetHooks:
    if as_json:
        from .progress import QuietHooks

        return QuietHooks()
    if batch:
        from ..batch.progress import BatchProgress

        return BatchProgress()
    from .progress import DatasetProgress

    return DatasetProgress()


def _budget(rpm: float | None, tpm: float | None, plan: Plan) -> Any:
    from ..launch import run_budget

    return run_budget(rpm, tpm, plan, learn=True)


def _execute(plan: Plan, cfg: Any, flow: str, emulator_script: str | None, spec: DatasetSpec,
             db: RunDB, run_id: str, run_dir: Path, results: Path, redactor: Redactor,
             concurrency: int, hooks: DatasetHooks, budget: Any, attempt: int,
             skip: Any = None, kept: Any = (), done: int = 0,
             engine: dict[str, Any] | None = None, as_json: bool = False,
             batch: dict[str, Any] | None = None) -> DatasetResult:
    """Run the rows on ``engine`` (``batch``: through the Batch API). Under ``--json``
    stdout is the one JSON object: what the flow's Python tools (and Ray's driver) print
    goes to stderr."""
    from ..launch import _run_with_interrupts, provider_endpoint

    with _owned(run_dir, run_id, attempt), provider_endpoint(cfg, flow, emulator_script) as endpoint:
        started = time.monotonic()

        async def main() -> DatasetResult:
            runner = make_runner(engine, spec, endpoint, budget, db, run_id, run_dir, results, redactor,
                                 concurrency=concurrency, hooks=hooks, attempt=attempt, skip=skip,
                                 batch=batch)
            try:
                await runner.open()
                db.start_run(run_id, flow_name=plan.flow.name,
                             flow_path=str(plan.file.path.resolve()) if plan.file.path else None,
                             flow_hash=flow_hash(plan.file.text), flow_text=plan.file.text, inputs=spec.shared,
                             provider=endpoint.describe(), run_dir=str(run_dir), attempt=attempt,
                             note=None if attempt == 1 else "resumed a dataset run")
                from ..durable import save_outline

                save_outline(db, run_id, plan)
                hooks.on_dataset_start(run_id, str(run_dir), spec.total, done)
                status, error, _ = await runner.run(iter(kept))
            finally:
                await runner.close()
            return _end(db, run_id, attempt, status, error, spec, run_dir, results, runner,
                        time.monotonic() - started)

        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            return _run_with_interrupts(main())


@contextlib.contextmanager
def _owned(run_dir: Path, run_id: str, attempt: int) -> Any:
    """Hold the run's owner lock (:mod:`flowrun.run_owner`) for the run's life, as a single
    run does: a killed dataset run reads as interrupted, and a second resume is refused.
    A resume first clears the half-written files the killed process left."""
    from ..run_owner import own

    store = RunStore(run_dir.parent, run_id)  # (re)creates the directory
    owner = own(store.dir, run_id)
    try:
        if attempt > 1:
            store.clear_stale_files()
        yield owner
    finally:
        owner.release()


def _end(db: RunDB, run_id: str, attempt: int, status: str, error: str | None, spec: DatasetSpec,
         run_dir: Path, results: Path, runner: DatasetRunner, duration: float) -> DatasetResult:
    done = state.counts(db, run_id)
    if status == SUCCEEDED and done["failed"]:
        status = FAILED
    skipped = spec.total - done["succeeded"] - done["failed"]
    if status == SUCCEEDED and skipped:
        status = FAILED
    if status == FAILED and error is None and done["failed"]:
        error = f"{done['failed']} of {spec.total} rows failed"
    result = DatasetResult(run_id, status, run_dir, results, spec.total, done["succeeded"], done["failed"],
                           max(0, skipped), usage=state.usage_of(done), error=error,
                           duration_s=duration,
                           rate=runner.budget.describe() if runner.budget is not None and runner.budget.active
                           else None, engine=runner.engine_info())
    result.reused = done["succeeded"] + done["failed"] - sum(runner.counts.values())
    if hasattr(runner, "describe"):
        result.batches = runner.describe()
    summary = result.to_json()
    db.end_run(run_id, attempt, status, error, {"rows": summary["rows"], "results": str(results)})
    state.set_totals(db, run_id, done["succeeded"], done["failed"], done["tokens"])
    RunStore(run_dir.parent, run_id, db.redactor).write_record({**summary, "dataset": str(spec.source)})
    runner.hooks.on_dataset_end(result)
    return result


def run_dataset(flow: str, dataset: str, results: str | None, maps: tuple[str, ...],
                assignments: tuple[str, ...], inputs_file: str | None, provider: str | None,
                base_url: str | None, as_json: bool, max_concurrency: int | None, run_dir: str,
                emulator_script: str | None, rpm: float | None, tpm: float | None,
                engine: dict[str, Any] | None = None, batch: bool = False,
                batch_deployment: str | None = None, detach: bool = False) -> DatasetResult:
    """``flowrun run FLOW --dataset FILE``; ``engine``: :func:`~.engines.engine_settings`
    (None: local); ``batch``: through the Batch API."""
    plan = load_plan(flow)
    if batch:
        if engine is not None and engine.get("name") != "local":
            raise UsageError("--batch and --engine ray do not go together",
                             hint="the Batch API runs the rows on the service; drop one of them")
        from ..batch import check_batchable

        check_batchable(plan)
    elif batch_deployment or detach:
        raise UsageError("--batch-deployment and --detach go with --batch")
    from_file = read_inputs_file(inputs_file) if inputs_file else {}
    spec = _spec(plan, Path(dataset), parse_mapping(maps, plan.flow), parse_assignments(assignments), from_file)
    if provider is None and base_url is None and os.environ.get("FLOWRUN_PROVIDER"):
        provider = os.environ["FLOWRUN_PROVIDER"]
    cfg = resolve_provider(provider, plan.flow.provider, base_url)
    redactor = _redactor(plan, cfg)
    budget = _budget(rpm, tpm, plan)
    concurrency = max_concurrency or plan.flow.max_concurrency or DEFAULT_CONCURRENCY
    run_id = new_run_id()
    root = Path(run_dir)
    try:
        run_store = RunStore(root, run_id, redactor)
        db = RunDB.at(root, redactor)
    except OSError as exc:
        raise UsageError(f"cannot create the run directory under {root}: {exc.strerror or exc}",
                         hint="choose another --run-dir") from None
    out = Path(results).resolve() if results else run_store.dir / "results.jsonl"
    batch_info = {"deployment": batch_deployment, "detach": detach} if batch else None
    try:
        state.save_dataset(db, run_id, source=str(spec.source), fmt=spec.format,
                           digest=state.file_digest(spec.source), mapping=spec.mapping, shared=spec.shared,
                           results=str(out), settings={"rpm": rpm, "tpm": tpm, "concurrency": concurrency,
                                                       "inputs_file": from_file, "engine": engine,
                                                       "batch": batch_info},
                           total=spec.total)
        return _execute(plan, cfg, flow, emulator_script, spec, db, run_id, run_store.dir, out, redactor,
                        concurrency, _hooks(as_json, batch), budget, 1, engine=engine, as_json=as_json,
                        batch=batch_info)
    finally:
        db.close()


def resume_dataset(db: RunDB, row: dict[str, Any], dataset: dict[str, Any], provider: str | None,
                   base_url: str | None, as_json: bool, max_concurrency: int | None,
                   emulator_script: str | None, allow_changes: bool, retry_failed: bool,
                   rpm: float | None = None, tpm: float | None = None,
                   engine: dict[str, Any] | None = None) -> DatasetResult:
    """``flowrun resume RUN`` of a dataset run: rows that succeeded (and, without
    ``retry_failed``, rows that failed) are kept; the others run, on ``engine`` (default:
    the engine the run started on)."""
    from ..resume import flow_changes, resumable

    try:
        run_id, status, flow_path, plan = resumable(row)
        if flow_hash(plan.file.text) != row["flow_hash"] and not allow_changes:
            changes = flow_changes(row["flow_text"] or "", plan.file.text)
            raise UsageError(f"the flow file {flow_path} changed since run {run_id}: " + "; ".join(changes),
                             hint="pass --allow-changes to run the remaining rows with the new flow")
        source = Path(dataset["source"])
        if not source.is_file():
            raise UsageError(f"run {run_id}: its dataset {source} is gone",
                             hint="put the dataset file back where it was to resume the run")
        if state.file_digest(source) != dataset["digest"] and not allow_changes:
            raise UsageError(f"the dataset {source} changed since run {run_id}",
                             hint="pass --allow-changes to keep the finished rows by number and run the rest")
        settings = dataset["settings"]
        batch = settings.get("batch")
        if batch is not None:
            from ..batch import check_batchable

            check_batchable(plan)
        spec = _spec(plan, source, dataset["mapping"], dataset["shared"], settings.get("inputs_file") or {})
        state.drop_rows_after(db, run_id, spec.total)
        recorded = json.loads(row["provider"] or "{}")
        if provider is None and base_url is None and os.environ.get("FLOWRUN_PROVIDER"):
            provider = os.environ["FLOWRUN_PROVIDER"]
        if provider is None and base_url is None and recorded.get("kind"):
            provider = recorded["kind"]
            if provider != "emulator":
                base_url = recorded.get("base_url")
        cfg = resolve_provider(provider, plan.flow.provider, base_url)
        redactor = _redactor(plan, cfg)
        db.redactor = redactor
        budget = _budget(rpm or settings.get("rpm"), tpm or settings.get("tpm"), plan)
        concurrency = max_concurrency or settings.get("concurrency") or DEFAULT_CONCURRENCY
        keep = (SUCCEEDED,) if retry_failed else (SUCCEEDED, FAILED)
        states = state.RowStates(db, run_id)
        before = state.counts(db, run_id)
        done = before["succeeded"] + (before["failed"] if FAILED in keep else 0)
        run_dir = Path(row["run_dir"]) if row.get("run_dir") else db.path.parent / run_id
        return _execute(plan, cfg, flow_path, emulator_script, spec, db, run_id, run_dir,
                        Path(dataset["results"]), redactor, concurrency, _hooks(as_json, batch is not None), budget,
                        int(row["attempt"]) + 1, skip=lambda n: states.status(n) in keep,
                        kept=(line for _, line in state.row_lines(db, run_id, keep)), done=done,
                        engine=engine or settings.get("engine"), as_json=as_json, batch=batch)
    finally:
        db.close()

