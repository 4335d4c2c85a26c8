"""A row's client in batch mode: the run's :class:`~flowrun.client.ResponsesClient` for
everything (files, containers, retrieval), except that a model request becomes a line of
the round's batch (:class:`~.collector.Collector`) and waits for its answer.

The step run a request comes from is known through :data:`CURRENT` (set by the row's
runner around each step run): its key and tool-loop turn make the line's ``custom_id``,
its ``batch_model`` the line's ``model``.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from ..durable import request_digest
from ..errors import ExecutionError
from .collector import Collector
from .lines import Line, custom_id
from .settings import BatchSettings

CURRENT: ContextVar[Any] = ContextVar("flowrun_batch_step", default=None)
"""The :class:`~flowrun.context.StepContext` of the step run in this task."""


def batch_model(sc: Any, model: str | None, settings: BatchSettings) -> str | None:
    """The model a line names: ``--batch-deployment``, else the step's, the defaults' or
    the provider's ``batch_model`` (a name, or a mapping from the step's model), else the
    step's model."""
    if settings.deployment:
        return settings.deployment
    chosen = sc.step.batch_model if sc.step.batch_model is not None else sc.flow.defaults.batch_model
    if chosen is None:
        chosen = getattr(getattr(sc.run.client, "provider", None), "batch_model", None)
    if isinstance(chosen, str):
        return sc.render(chosen)
    if isinstance(chosen, dict) and model in chosen:
        return chosen[model]
    return model


class BatchRowClient:
    """One dataset row's view of the client (see the module docstring)."""

    def __init__(self, inner: Any, collector: Collector, row: int, settings: BatchSettings, redactor: Any):
        self.inner, self.collector, self.row = inner, collector, row
        self.settings, self.redactor = settings, redactor

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def create(self, params: dict[str, Any]) -> dict[str, Any]:
        sc = CURRENT.get()
        if sc is None:  # not from a step run (nothing counts it): sent at once
            return await self.inner.create(params)
        body = dict(params)
        body["model"] = batch_model(sc, body.get("model"), self.settings)
        line = Line(custom_id(self.row, sc.key, int(sc.state.get("turn") or 0)), self.row, body,
                    digest=request_digest(body, self.redactor))
        return await self.collector.request(line)

    async def stream(self, params: dict[str, Any], on_event: Any = None) -> dict[str, Any]:
        sc = CURRENT.get()
        raise ExecutionError("a streamed response cannot be a batch line; drop stream: true to use --batch",
                             sc.step_id if sc is not None else None)
