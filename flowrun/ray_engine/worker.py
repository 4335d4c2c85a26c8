"""A Ray worker: an async actor running flowrun's asyncio runner over the rows it is sent.

Each :meth:`RowWorker.run_row` call is one row; the actor runs many at once (Ray async
actors take concurrent calls), their steps sharing the worker's ``concurrency`` slots and
the cluster's budget (:class:`~.budget.SharedBudget`). The flow is loaded from the run's
``working_dir`` (the flow's directory, shipped by Ray; the actor's current directory);
file inputs under the flow's directory on the driver are read from that copy.

A row's artifacts are written under a scratch directory and sent back with its result as
bytes (paths in its outputs already pointing at the driver's run directory), or, with a
shared ``artifacts_dir``, written there directly. Everything sent back is masked by the
worker's redactor first.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path
from typing import Any

from ..hooks import RunHooks
from .sealed import unseal

API_KEY = "FLOWRUN_RAY_API_KEY"
"""The sealed secret holding the endpoint's API key."""
HEADERS = "FLOWRUN_RAY_HEADERS"
"""The sealed secret holding the endpoint's extra headers (JSON)."""


class _Notices(RunHooks):
    """A row's notices, kept to send back with its result."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def on_notice(self, step_key: str, message: str) -> None:
        self.items.append((step_key, message))


def repath(value: Any, old: str, new: str) -> Any:
    """``value`` with every string starting with ``old`` starting with ``new`` instead."""
    if isinstance(value, str):
        return new + value[len(old):] if value.startswith(old) else value
    if isinstance(value, dict):
        return {k: repath(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [repath(v, old, new) for v in value]
    return value


class RowWorker:
    """One worker (wrap with ``ray.remote``). ``setup``: plain values (the flow's path in the
    ``working_dir``, the run, the provider without credentials, the budget keeper's actor
    name); ``pads``: the halves of the sealed secrets (:mod:`.sealed`)."""

    def __init__(self, setup: dict[str, Any], pads: dict[str, str]):
        from ..dataset.launch import _redactor
        from ..plan import load_plan
        from ..providers import ProviderConfig

        unseal(pads)
        self.setup = setup
        self.plan = load_plan(setup["flow"])
        self.provider = ProviderConfig(**setup["provider"], api_key=os.environ.pop(API_KEY, None),
                                       headers=json.loads(os.environ.pop(HEADERS, None) or "{}"))
        self.redactor = _redactor(self.plan, self.provider)
        self.shared = setup.get("artifacts_dir")
        self.flow_dir = setup["flow_dir"]
        self.budget = None
        if setup.get("budget") is not None:
            import ray

            from .budget import SharedBudget

            self.budget = SharedBudget(ray.get_actor(setup["budget"]), setup.get("budget_active", False))
        self._client: Any = None
        self._slots: asyncio.Semaphore | None = None

    def info(self) -> dict[str, Any]:
        from .. import __version__

        return {"pid": os.getpid(), "host": socket.gethostname(), "version": __version__,
                "cwd": os.getcwd()}

    def _local_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """File inputs under the driver's flow directory, read from the shipped copy."""
        out = dict(inputs)
        prefix = self.flow_dir.rstrip("/") + "/"
        for name, spec in self.plan.flow.inputs.items():
            value = out.get(name)
            if spec.type == "file" and isinstance(value, str) and value.startswith(prefix):
                out[name] = str(Path.cwd() / value[len(prefix):])
        return out

    async def run_row(self, number: int, inputs: dict[str, Any], where: str) -> dict[str, Any] | None:
        from ..client import ResponsesClient
        from ..dataset.engine import execute_row

        if self._client is None:
            self._client = ResponsesClient(self.provider)
            self._client.budget = self.budget
            self._slots = asyncio.Semaphore(self.setup["concurrency"])
        notices = _Notices()
        # where the row's artifacts go: the shared directory's run directory, or a scratch
        # directory of its own (made on the first artifact, sent back, then removed)
        run_dir = (Path(self.shared) / self.setup["run_id"] if self.shared
                   else Path(tempfile.gettempdir()) / f"flowrun-row-artifacts-{uuid.uuid4().hex}").resolve()
        assert self._slots is not None
        try:
            outcome = await execute_row(self.plan, self._client, run_dir, self.setup["run_id"], number,
                                        self._local_inputs(inputs), where, self.redactor, self._slots, notices)
            if outcome is None:
                return None
            outputs = outcome.outputs
            artifacts: dict[str, bytes] = {}
            if not self.shared:
                for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
                    artifacts[str(path.relative_to(run_dir))] = path.read_bytes()
                outputs = repath(outputs, str(run_dir), self.setup["run_dir"])
        finally:
            if not self.shared:
                shutil.rmtree(run_dir, ignore_errors=True)
        r = self.redactor
        return {"status": outcome.status, "outputs": r.deep(outputs), "usage": outcome.usage,
                "error": r.text(outcome.error) if outcome.error else None, "steps": outcome.steps,
                "artifacts": artifacts, "notices": [(r.text(k), r.text(m)) for k, m in notices.items]}
