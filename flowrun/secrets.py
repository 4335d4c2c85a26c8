"""Secrets and environment for templates, and the redactor that keeps secrets out of
everything flowrun writes or prints.

``{{ secrets.NAME }}`` reads environment variable NAME; its value is registered with the
run's :class:`Redactor`, which masks it in run records, logs, errors and reports.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any, Iterator

MASK = "***"
# headers whose values are credentials wherever they come from
SENSITIVE_HEADERS = {"authorization", "api-key", "x-api-key", "cookie", "proxy-authorization"}


class Redactor:
    """Replaces every registered secret value with ``***`` in strings and structures."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str | None) -> None:
        """Mask ``value`` from now on, also as it appears escaped inside JSON strings
        (function arguments and MCP arguments are JSON text inside JSON)."""
        if not value or len(value) < 4:
            return
        forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
        forms.add(json.dumps(json.dumps(value)[1:-1])[1:-1])  # escaped twice
        new = forms - self._values
        if new:
            self._values |= new
            self._pattern = None

    def __bool__(self) -> bool:
        return bool(self._values)

    @property
    def longest(self) -> int:
        """Length of the longest masked value (0 when there are none)."""
        return max(map(len, self._values), default=0)

    def text(self, text: str) -> str:
        if not self._values or not isinstance(text, str):
            return text
        if self._pattern is None:
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
        return self._pattern.sub(MASK, text)

    def deep(self, value: Any) -> Any:
        """A copy of ``value`` with secrets masked, and credential headers removed."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                k: (MASK if isinstance(k, str) and k.lower() in SENSITIVE_HEADERS else self.deep(v))
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self.deep(v) for v in value]
        return value


class SecretsView(Mapping[str, str]):
    """``secrets.NAME`` in templates: the environment variable NAME, registered as secret."""

    def __init__(self, redactor: Redactor, environ: Mapping[str, str] | None = None):
        self._env = environ if environ is not None else os.environ
        self._redactor = redactor

    def __getitem__(self, name: str) -> str:
        if name not in self._env:
            raise KeyError(
                f"secret {name!r} is not set; export the environment variable {name}"
            )
        value = self._env[name]
        self._redactor.add(value)
        return value

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(exc.args[0]) from None

    def __iter__(self) -> Iterator[str]:
        return iter(())  # never enumerate the environment into a template

    def __len__(self) -> int:
        return 0


_CREDENTIAL_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION", re.I)


def looks_like_credential(name: str) -> bool:
    return bool(_CREDENTIAL_NAME.search(name))


class EnvView(Mapping[str, str]):
    """``env.NAME`` in templates: an environment variable ('' when unset). A variable whose
    name looks like a credential (``*KEY*``, ``*TOKEN*``, ...) is masked like a secret."""

    def __init__(self, environ: Mapping[str, str] | None = None, redactor: Redactor | None = None):
        self._env = environ if environ is not None else os.environ
        self._redactor = redactor

    def __getitem__(self, name: str) -> str:
        value = self._env.get(name, "")
        if self._redactor is not None and looks_like_credential(name):
            self._redactor.add(value)
        return value

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0
