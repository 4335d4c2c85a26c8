"""``flowrun test``: test files for flows, assertions, JUnit XML, record and replay."""

from .load import discover, load_tests
from .run_case import CaseResult, run_all, run_case
from .spec import TestFile

__all__ = ["CaseResult", "TestFile", "discover", "load_tests", "run_all", "run_case"]
