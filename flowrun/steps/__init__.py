"""Step kinds. Each kind is a module with ``async def execute(sc: StepContext) -> None``
that fills ``sc.result`` (or raises a :class:`~flowrun.errors.FlowrunError`)."""

from __future__ import annotations

import importlib
from typing import Any, Awaitable, Callable

STEP_KINDS: dict[str, str] = {
    "responses": "flowrun.steps.responses",
    "flow": "flowrun.steps.subflow",
    "computer_use": "flowrun.steps.computer_use",
    "python": "flowrun.steps.python_call",
}


def executor(kind: str) -> Callable[[Any], Awaitable[None]]:
    """The ``execute`` function of a step kind, imported on first use."""
    return importlib.import_module(STEP_KINDS[kind]).execute
