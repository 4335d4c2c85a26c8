"""``flowrun resume RUN``: find the run in the store, check its flow file, take back its
inputs, and run it again as the next attempt of the same run, reusing every step, item
and tool-loop turn that completed (see :mod:`flowrun.durable`)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from .errors import UsageError
from .rundb import DB_NAME, RunDB, effective_status, loads


def open_store(run_dir: str | Path, *, must_exist: bool = True) -> RunDB:
    root = Path(run_dir)
    try:
        return RunDB.at(root, create=False)
    except FileNotFoundError:
        raise UsageError(f"no run store at {root / DB_NAME}",
                         hint="run a flow first, or point --run-dir at the runs directory") from None
    except Exception as exc:  # sqlite3.Error: not a database, locked for too long
        raise UsageError(f"cannot read the run store {root / DB_NAME}: {exc}") from None


def find_run(ref: str, run_dir: str | Path) -> tuple[RunDB, dict[str, Any]]:
    """The store and the run row for RUN: a run id (or a unique prefix of one), ``last``,
    or a run directory (its parent holds the store)."""
    path = Path(ref)
    if ref != "last" and path.is_dir() and (path.resolve().parent / DB_NAME).is_file():
        run_dir, ref = path.resolve().parent, path.resolve().name
    db = open_store(run_dir)
    row = db.last_run() if ref == "last" else db.run(ref)
    if row is None and ref != "last":
        matches = db.ids_with_prefix(ref) if ref else []
        if len(matches) == 1:
            row = db.run(matches[0])
        elif len(matches) > 1:
            db.close()
            raise UsageError(f"run {ref!r} is ambiguous: " + ", ".join(matches[:5]),
                             hint="give more of the run id")
    if row is None:
        db.close()
        what = "no runs yet" if ref == "last" else f"no run {ref!r}"
        raise UsageError(f"{what} in {Path(run_dir) / DB_NAME}",
                         hint="`flowrun runs` lists the runs; --run-dir picks another runs directory")
    from .dead_runs import settle

    if settle(db, row["id"]):  # its process died: now recorded as interrupted
        row = db.run(row["id"]) or row
    return db, row


def resumable(row: dict[str, Any]) -> tuple[str, str, str, Any]:
    """``(run id, status, flow path, plan)`` of a stored run that can be resumed; a run
    still running, or whose flow file is gone, is a usage error."""
    run_id, status = row["id"], effective_status(row)
    if status == "running":
        raise UsageError(f"run {run_id} is still running (pid {row['pid']} on {row['host']})",
                         hint="wait for it to finish, or stop it, then resume")
    flow_path = row["flow_path"]
    if not flow_path or not Path(flow_path).is_file():
        raise UsageError(f"run {run_id}: its flow file {flow_path} is gone",
                         hint="put the flow file back where it was to resume the run")
    from .plan import load_plan

    return run_id, status, flow_path, load_plan(flow_path)


def flow_changes(old_text: str, new_text: str) -> list[str]:
    """What differs between two versions of a flow file, by step and by section."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe")
    try:
        old, new = yaml.load(old_text) or {}, yaml.load(new_text) or {}
    except Exception:
        return ["the file does not parse as it did"]
    out: list[str] = []
    old_steps, new_steps = old.get("steps") or {}, new.get("steps") or {}
    dump = lambda v: json.dumps(v, sort_keys=True, default=str)  # noqa: E731
    changed = [s for s in new_steps if s in old_steps and dump(new_steps[s]) != dump(old_steps[s])]
    added = [s for s in new_steps if s not in old_steps]
    removed = [s for s in old_steps if s not in new_steps]
    if changed:
        out.append("step" + ("s " if len(changed) > 1 else " ") + ", ".join(changed) + " changed")
    if added:
        out.append("step" + ("s " if len(added) > 1 else " ") + ", ".join(added) + " added")
    if removed:
        out.append("step" + ("s " if len(removed) > 1 else " ") + ", ".join(removed) + " removed")
    for key in sorted(set(old) | set(new)):
        if key != "steps" and dump(old.get(key)) != dump(new.get(key)):
            out.append(f"{key}: changed")
    return out or ["only comments or layout changed"]


def resume_run(
    ref: str,
    run_dir: str,
    assignments: tuple[str, ...],
    inputs_file: str | None,
    provider: str | None,
    base_url: str | None,
    as_json: bool,
    max_concurrency: int | None,
    emulator_script: str | None = None,
    interactive: bool | None = None,
    allow_changes: bool = False,
    retry_failed: bool = False,
    ray_address: str | None = None,
    workers: int | None = None,
) -> Any:
    """Resume run ``ref``; returns its :class:`~flowrun.runner.RunResult` (a dataset run's
    :class:`~flowrun.dataset.DatasetResult`; ``retry_failed`` re-runs its failed rows)."""
    from .durable import PriorRun, Resumption
    from .launch import _run_with_interrupts, provider_endpoint
    from .plan import load_plan
    from .providers import resolve_provider
    from .run_inputs import parse_assignments, read_inputs_file, resolve_inputs
    from .runner import run_plan
    from .store import flow_hash

    db, row = find_run(ref, run_dir)
    from .dataset.state import dataset_of

    dataset = dataset_of(db, row["id"])
    if dataset is None and (ray_address or workers):
        db.close()
        raise UsageError("--ray-address and --workers go with a dataset run on Ray")
    if dataset is not None:
        from .dataset.launch import resume_dataset

        engine = dataset["settings"].get("engine")
        if ray_address or workers:
            if not engine or engine.get("name") != "ray":
                db.close()
                raise UsageError(f"run {row['id']} did not run on Ray: --ray-address and --workers "
                                 "go with a dataset run on Ray")
            engine = {**engine, **({"address": ray_address} if ray_address else {}),
                      **({"workers": workers} if workers else {})}
        return resume_dataset(db, row, dataset, provider, base_url, as_json, max_concurrency,
                              emulator_script, allow_changes, retry_failed, engine=engine)
    root = db.path.parent
    try:
        run_id, status, flow_path, plan = resumable(row)
        changes: list[str] = []
        if flow_hash(plan.file.text) != row["flow_hash"]:
            changes = flow_changes(row["flow_text"] or "", plan.file.text)
            if not allow_changes:
                raise UsageError(
                    f"the flow file {flow_path} changed since run {run_id}: " + "; ".join(changes),
                    hint="pass --allow-changes to re-run the changed steps and everything that "
                         "depends on them (completed steps whose request is unchanged are reused)")
        recorded = {k: v for k, v in (loads(row["inputs"]) or {}).items()
                    if v is not None and k in plan.flow.inputs}
        from_file = read_inputs_file(inputs_file) if inputs_file else {}
        inputs = resolve_inputs(plan.flow, parse_assignments(assignments), {**recorded, **from_file},
                                flow_dir=plan.base_dir)
        prior = PriorRun.load(db, run_id)
        note = f"resumed a {status} run" + (f"; flow changed: {'; '.join(changes)}" if changes else "")
        resumption = Resumption(attempt=int(row["attempt"]) + 1, prior=prior, note=note)
        recorded_provider = loads(row["provider"]) or {}
    finally:
        db.close()

    if provider is None and base_url is None and os.environ.get("FLOWRUN_PROVIDER"):
        provider = os.environ["FLOWRUN_PROVIDER"]
    if provider is None and base_url is None and recorded_provider.get("kind"):
        # the endpoint the run used (an in-process emulator is started afresh)
        provider = recorded_provider["kind"]
        if provider != "emulator":
            base_url = recorded_provider.get("base_url")
    cfg = resolve_provider(provider, plan.flow.provider, base_url)
    from .launch import run_view

    interactive, hooks = run_view(as_json, interactive)

    with provider_endpoint(cfg, flow_path, emulator_script) as endpoint:
        from .client import ResponsesClient

        async def main() -> Any:
            client = ResponsesClient(endpoint)
            try:
                return await run_plan(
                    plan, client, inputs, run_root=root, run_id=run_id,
                    hooks=hooks, interactive=interactive, max_concurrency=max_concurrency,
                    resume=resumption,
                )
            finally:
                await client.close()

        return _run_with_interrupts(main())
