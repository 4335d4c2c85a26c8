"""``requires: {flowrun: SPECIFIER}``: a flow says which flowrun it needs.

Checked on the plain document before the schema, so a flow written for a newer flowrun
(with keys this one does not know) is told about the version, not about unknown keys.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .errors import SpecError


def check_requires(data: dict[str, Any], source: Any, version: str = __version__) -> None:
    """Raise :class:`SpecError` when ``requires.flowrun`` is not a valid specifier, or the
    running flowrun (``version``) does not match it. Shape errors are left to the schema."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    requires = data.get("requires")
    if not isinstance(requires, dict) or not isinstance(requires.get("flowrun"), str):
        return
    text = requires["flowrun"]
    path = ("requires", "flowrun")
    try:
        spec = SpecifierSet(text)
    except InvalidSpecifier:
        raise SpecError(source.problem(
            path, f"{text!r} is not a version specifier",
            hint='write one like ">=0.3" or ">=0.3,<2" (PEP 440)')) from None
    if not spec.contains(version, prereleases=True):
        raise SpecError(source.problem(
            path, f"this flow requires flowrun {text}, but flowrun {version} is installed",
            hint=f'upgrade: pip install "flowrun{text}"')) from None
