"""The dataset engine seam: what runs the rows of a dataset run.

``local`` (the default) runs them in this process (:class:`~.engine.DatasetRunner`);
``ray`` spreads them over a Ray cluster (:mod:`flowrun.ray_engine`); a local run may
also go through the Batch API (:mod:`flowrun.batch`, ``--batch``). An engine is chosen
by its settings (``{"name": ..., ...}``, kept with the run's dataset settings so
``flowrun resume`` runs the rest on the same engine) and makes the run's runner.
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from .engine import DatasetRunner

ENGINES = ("local", "ray")


def engine_settings(name: str | None, address: str | None = None, workers: int | None = None,
                    artifacts_dir: str | None = None) -> dict[str, Any]:
    """``--engine NAME [--ray-address ADDR] [--workers N] [--artifacts-dir DIR]``, checked."""
    name = name or "local"
    if name == "local":
        given = [flag for flag, value in (("--ray-address", address), ("--workers", workers),
                                           ("--artifacts-dir", artifacts_dir)) if value]
        if given:
            raise UsageError(f"{', '.join(given)} go{'es' if len(given) == 1 else ''} with --engine ray")
        return {"name": "local"}
    if name == "ray":
        from ..ray_engine import RaySettings, require_ray

        require_ray()
        return RaySettings(address, workers, artifacts_dir).to_json()
    raise UsageError(f"unknown engine {name!r}", hint=f"use one of {', '.join(ENGINES)}")


def make_runner(engine: dict[str, Any] | None, spec: Any, endpoint: Any, budget: Any, db: Any, run_id: str,
                run_dir: Any, results: Any, redactor: Any, batch: dict[str, Any] | None = None,
                **kw: Any) -> DatasetRunner:
    """The runner of ``engine`` (None: local) on ``endpoint`` under ``budget``; ``batch``:
    the Batch API's settings (``{"deployment", "detach"}``) for a local run through it;
    ``kw`` as for :class:`DatasetRunner`."""
    name = (engine or {}).get("name", "local")
    if engine is not None and name == "ray":
        from ..ray_engine import RayDatasetRunner, RaySettings, require_ray

        require_ray()
        settings = RaySettings(engine.get("address"), engine.get("workers"), engine.get("artifacts_dir"))
        return RayDatasetRunner(spec, None, db, run_id, run_dir, results, redactor, settings=settings,
                                endpoint=endpoint, budget=budget, **kw)
    from ..client import ResponsesClient

    client = ResponsesClient(endpoint)
    client.budget = budget
    if batch is not None:
        from ..batch import BatchDatasetRunner, BatchSettings

        settings = BatchSettings.for_provider(endpoint.kind, batch.get("deployment"), bool(batch.get("detach")))
        return BatchDatasetRunner(spec, client, db, run_id, run_dir, results, redactor, settings=settings, **kw)
    return DatasetRunner(spec, client, db, run_id, run_dir, results, redactor, **kw)
