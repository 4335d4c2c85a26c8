"""``flowrun test``: test files for flows, assertions, JUnit XML, record and replay.

Imports are lazy, so registering the command keeps ``flowrun --help`` fast."""

from __future__ import annotations

from typing import Any

__all__ = ["CaseResult", "TestFile", "discover", "load_tests", "run_all", "run_case"]

_WHERE = {"CaseResult": "run_case", "run_all": "run_case", "run_case": "run_case",
          "TestFile": "spec", "discover": "load", "load_tests": "load"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
