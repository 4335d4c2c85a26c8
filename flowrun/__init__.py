"""flowrun: declarative YAML flows for the OpenAI / Azure OpenAI Responses API.

The package imports lazily so that ``flowrun --help`` and ``flowrun validate`` stay fast.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__

_LAZY = {
    "Flow": "flowrun.spec",
    "FlowrunError": "flowrun.errors",
    "SpecError": "flowrun.errors",
    "PlanError": "flowrun.errors",
    "ExecutionError": "flowrun.errors",
    "ClientError": "flowrun.errors",
    "UsageError": "flowrun.errors",
    "Cancelled": "flowrun.errors",
    "Plan": "flowrun.plan",
    "load_file": "flowrun.loader",
    "load_plan": "flowrun.plan",
    "flow_schema": "flowrun.schema",
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'flowrun' has no attribute {name!r}")
