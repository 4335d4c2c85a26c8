"""The driver side of a Ray dataset run: connect to the cluster with the run's runtime
environment, start the budget keeper and the workers, stream rows to them, and write
each result (store row, results line, artifacts) as it comes back.

Rows go to the worker with the fewest rows in flight, at most ``window`` rows in flight
in all (:class:`~flowrun.dataset.engine.DatasetRunner`'s window), so the driver's memory
stays flat. A worker whose process dies (killed, out of memory, its node lost) is
restarted by Ray (``max_restarts``); the rows it had in flight are sent again, to the
least busy worker, and written once, when one comes back. A row whose worker dies
:data:`ROW_ATTEMPTS` times fails alone. Nothing of a row reaches the store before its
result is back, so a driver that dies leaves its unfinished rows for ``flowrun resume``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dataset.engine import DatasetRunner, RowOutcome
from ..errors import ExecutionError, UsageError
from ..results import FAILED
from ..store import contained, write_atomic
from .budget import BudgetKeeper, budget_settings
from .sealed import seal
from .worker import API_KEY, HEADERS, RowWorker

NAMESPACE = "flowrun"
MAX_RESTARTS = 3
"""Restarts Ray gives a worker whose process died."""
ROW_ATTEMPTS = 3
"""Worker deaths a row may see before it fails."""
CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the cluster's head to accept a connection."""
START_TIMEOUT = 300.0
"""Seconds a worker may take to start (placed on a node, its working_dir unpacked)."""
EXCLUDES = [".flowrun", ".git", "__pycache__", "*.pyc", ".venv", "venv", "node_modules", ".mypy_cache",
            ".pytest_cache"]
"""Never shipped in the ``working_dir``."""


@dataclass
class RaySettings:
    """``--engine ray``: the cluster (None: ``$RAY_ADDRESS``, else a local Ray instance),
    workers (None: one per CPU of the cluster) and a shared artifacts directory."""

    address: str | None = None
    workers: int | None = None
    artifacts_dir: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": "ray", "address": self.address, "workers": self.workers,
                "artifacts_dir": self.artifacts_dir}


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError("--engine ray needs Ray, which is not installed",
                         hint="pip install 'flowrun[ray]' (on the driver and on every node)") from None
    return ray


def _relative(path: Path, root: Path) -> str | None:
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return None


def runtime_env(flow_dir: Path, skip: list[Path], env_vars: dict[str, str]) -> dict[str, Any]:
    """The job's runtime environment: the flow's directory as ``working_dir`` (without run
    directories, the dataset and caches) and the sealed secrets as ``env_vars``."""
    excludes = list(EXCLUDES)
    for path in skip:
        rel = _relative(path, flow_dir)
        if rel and rel != ".":
            excludes.append("/" + rel)
    return {"working_dir": str(flow_dir), "excludes": excludes, "env_vars": env_vars}


@dataclass
class _Worker:
    index: int
    handle: Any
    inflight: int = 0
    rows: int = 0
    down: bool = False  # died; back when a call reaches its restarted process
    gone: bool = False  # died for good (its restarts used up)
    info: dict[str, Any] = field(default_factory=dict)


class RayDatasetRunner(DatasetRunner):
    """A :class:`DatasetRunner` whose rows run on Ray workers (see the module docstring)."""

    def __init__(self, *args: Any, settings: RaySettings, endpoint: Any, budget: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.settings = settings
        self.endpoint = endpoint
        self.local_budget = budget
        self.budget: Any = budget
        self.per_worker = self.concurrency  # the concurrency asked for: per worker
        self.workers: list[_Worker] = []
        self.keeper: Any = None
        self.reruns = 0
        self._ray: Any = None

    # -- the session --------------------------------------------------------------------
    def _secrets(self) -> dict[str, str]:
        from ..runner import secrets_used

        values = {name: os.environ[name] for name in secrets_used(self.spec.plan) if os.environ.get(name)}
        if self.endpoint.api_key:
            values[API_KEY] = self.endpoint.api_key
        if self.endpoint.headers:
            values[HEADERS] = json.dumps(self.endpoint.headers)
        return values

    def _connect(self, env_vars: dict[str, str]) -> None:
        ray = require_ray()
        if ray.is_initialized():
            raise UsageError("Ray is already initialized in this process",
                             hint="flowrun connects its own Ray driver for the run; call it outside ray.init()")
        flow_dir = Path(self.spec.plan.base_dir).resolve()
        skip = [self.run_dir.parent, self.results_path, self.spec.source]
        address = self.settings.address or os.environ.get("RAY_ADDRESS") or None
        if address:
            _check_reachable(address)
        try:
            ray.init(address=address, namespace=NAMESPACE, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING, runtime_env=runtime_env(flow_dir, skip, env_vars))
        except ConnectionError as exc:
            raise UsageError(f"cannot reach the Ray cluster at {address}: {exc}",
                             hint="start one with `ray start --head`, or check --ray-address") from None
        except ValueError as exc:  # a bad runtime_env (working_dir too large, bad excludes)
            raise UsageError(f"Ray refused the run's runtime environment: {exc}") from None
        self._ray = ray  # connected: close() disconnects

    async def _worker_count(self) -> int:
        """``--workers``, else one per CPU; no more than the cluster's CPUs (1 each)."""
        cpus = int(self._ray.cluster_resources().get("CPU", 0))
        count = self.settings.workers or max(1, cpus)
        for _ in range(50):  # a node that just joined may take a moment to show its CPUs
            if count <= cpus:
                break
            await asyncio.sleep(0.1)
            cpus = int(self._ray.cluster_resources().get("CPU", 0))
        if count > max(cpus, 1):
            raise UsageError(f"--workers {count}: the Ray cluster has {cpus} CPUs (one per worker)",
                             hint=f"use --workers {max(cpus, 1)} or fewer, or add nodes")
        return count

    def _start_keeper(self) -> str | None:
        """The budget keeper actor (its name), holding the run's budget for every worker."""
        if self.local_budget is None:
            return None
        from .budget import SharedBudget

        cfg = budget_settings(self.local_budget)
        active = cfg.pop("active")
        name = f"{self.run_id}.{self.attempt}.budget"
        self.keeper = self._ray.remote(num_cpus=0, max_concurrency=100000)(BudgetKeeper).options(
            name=name).remote(**cfg)
        self.budget = SharedBudget(self.keeper, active)
        return name

    def _setup(self, flow_rel: str, keeper: str | None) -> dict[str, Any]:
        """What every worker is made with: plain values, no credentials."""
        e = self.endpoint
        shared = self.settings.artifacts_dir
        return {"flow": flow_rel, "flow_dir": str(Path(self.spec.plan.base_dir).resolve()),
                "run_id": self.run_id, "run_dir": str(self.run_dir), "concurrency": self.per_worker,
                "budget": keeper, "budget_active": bool(self.budget is not None and self.budget.active),
                "artifacts_dir": str(Path(shared).resolve()) if shared else None,
                "provider": {"kind": e.kind, "base_url": e.base_url, "auth": e.auth,
                             "image_generation_deployment": e.image_generation_deployment,
                             "endpoint_id": e.endpoint_id}}

    async def open(self) -> None:
        """Connect, start the keeper and the workers, and wait until every worker answers."""
        from .. import __version__

        plan = self.spec.plan
        flow_rel = _relative(Path(plan.file.path), Path(plan.base_dir).resolve()) if plan.file.path else None
        if flow_rel is None:
            raise UsageError("--engine ray needs the flow in a file inside its directory")
        if self.settings.artifacts_dir and not Path(self.settings.artifacts_dir).is_dir():
            raise UsageError(f"--artifacts-dir {self.settings.artifacts_dir}: no such directory",
                             hint="give a directory every node and the driver share")
        env_vars, pads = seal(self._secrets())
        self._connect(env_vars)
        count = await self._worker_count()
        setup = self._setup(flow_rel, self._start_keeper())
        actor = self._ray.remote(num_cpus=1, max_restarts=MAX_RESTARTS, max_task_retries=0,
                                 max_concurrency=100000)(RowWorker)
        for i in range(count):
            handle = actor.options(name=f"{self.run_id}.{self.attempt}.w{i + 1}",
                                   scheduling_strategy="SPREAD").remote(setup, pads)
            self.workers.append(_Worker(i + 1, handle))
        for w in self.workers:
            try:
                w.info = await asyncio.wait_for(w.handle.info.remote(), START_TIMEOUT)
            except asyncio.TimeoutError:
                raise ExecutionError(f"Ray worker {w.index} did not start in {START_TIMEOUT:.0f}s (are the "
                                     "cluster's CPUs taken by other jobs?)") from None
            except Exception as exc:
                raise ExecutionError(f"Ray worker {w.index} could not start: {_cause(exc)}") from None
            if w.info["version"] != __version__:
                raise UsageError(f"Ray worker {w.index} on {w.info['host']} has flowrun {w.info['version']}, "
                                 f"the driver {__version__}", hint="install the same flowrun on every node")
        self.window = max(self.window, 1) * count

    async def close(self) -> None:
        ray = self._ray
        if ray is None or not ray.is_initialized():
            return
        try:
            if self.keeper is not None and self.budget is not None:
                try:
                    self.budget.describe()
                except Exception:
                    self.budget.final = {}
            for w in self.workers:
                ray.kill(w.handle, no_restart=True)
            if self.keeper is not None:
                ray.kill(self.keeper, no_restart=True)
        finally:
            ray.shutdown()

    def engine_info(self) -> dict[str, Any]:
        return {**self.settings.to_json(), "workers": len(self.workers),
                "rows_per_worker": [w.rows for w in self.workers], "reruns": self.reruns}

    # -- one row ------------------------------------------------------------------------
    def _pick(self) -> _Worker | None:
        alive = [w for w in self.workers if not w.down]
        return min(alive, key=lambda w: w.inflight) if alive else None

    async def _revive(self, worker: _Worker) -> None:
        """A worker died: send it nothing until its restarted process answers."""
        if worker.down:
            return
        worker.down = True
        try:
            worker.info = await worker.handle.info.remote()
        except Exception:
            worker.gone = True
            return
        worker.down = False

    async def _any_worker(self) -> _Worker | None:
        """The least busy live worker, waiting for one to come back while any may."""
        while True:
            worker = self._pick()
            if worker is not None or all(w.gone for w in self.workers):
                return worker
            await asyncio.sleep(0.05)

    async def execute(self, number: int, inputs: dict[str, Any], where: str) -> RowOutcome | None:
        from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

        deaths = 0
        while True:
            worker = await self._any_worker()
            if worker is None:  # the run stops; `flowrun resume` runs the unfinished rows
                raise ExecutionError(f"every Ray worker died and used up its {MAX_RESTARTS} restarts "
                                     f"(last at {where}); see the Ray logs of the cluster, then "
                                     f"`flowrun resume {self.run_id}` runs the rows that did not finish")
            worker.inflight += 1
            ref = worker.handle.run_row.remote(number, inputs, where)
            try:
                out = await ref
            except asyncio.CancelledError:
                self._ray.cancel(ref)
                return None
            except (RayActorError, ActorUnavailableError):
                deaths += 1
                self.reruns += 1
                asyncio.get_running_loop().create_task(self._revive(worker))
                if deaths >= ROW_ATTEMPTS:
                    return RowOutcome(FAILED, {}, error=f"{where}: the Ray worker running it died {deaths} times")
                self.hooks.on_notice(f"row {number}", f"Ray worker {worker.index} died; running the row again")
                continue
            except RayTaskError as exc:  # the worker raised: a flowrun bug, or a broken node
                return RowOutcome(FAILED, {}, error=f"{where}: Ray worker {worker.index}: {_cause(exc)}")
            finally:
                worker.inflight -= 1
            if out is None:
                return None
            worker.rows += 1
            for key, message in out["notices"]:
                self.hooks.on_notice(f"row {number}: {key}", message)
            for rel, data in out["artifacts"].items():
                path = contained(self.run_dir, self.run_dir / rel)
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(path, data)
            return RowOutcome(out["status"], out["outputs"], out["usage"], out["error"], out["steps"])


def _check_reachable(address: str) -> None:
    """A ``HOST:PORT`` address must accept a connection (Ray itself retries for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # "auto", "ray://...", "local": Ray's own forms
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise UsageError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}",
                         hint="start one with `ray start --head --port PORT`, or check --ray-address "
                              "(the head's HOST:PORT)") from None


def _cause(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    text = str(cause if cause is not None else exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
