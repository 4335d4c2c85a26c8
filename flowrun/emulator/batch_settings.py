"""Settings of the emulator's Batch API (:mod:`.batches`).

===============  ==========================================  ===================================
setting          CLI (``flowrun emulator``) / env            meaning
===============  ==========================================  ===================================
``delay_ms``     ``--batch-delay-ms`` /                      each batch waits this long while
                 ``FLOWRUN_EMULATOR_BATCH_DELAY_MS``         ``validating``, before each line and
                                                             while ``finalizing`` (default 0)
``token_limit``  ``--batch-token-limit`` /                   enqueued-token limit per model:
                 ``FLOWRUN_EMULATOR_BATCH_TOKEN_LIMIT``      ``N`` (every model) or
                                                             ``MODEL=N,MODEL=N`` (``*=N`` the rest)
``max_lines``    ``FLOWRUN_EMULATOR_BATCH_MAX_LINES``        lines per input file (50,000)
``max_bytes``    ``FLOWRUN_EMULATOR_BATCH_MAX_BYTES``        bytes per input file (200 MB)
``pause_after``  (control route only)                        every batch stops after this many
                                                             lines until it is unset (tests)
===============  ==========================================  ===================================

The env variables also configure the in-process emulator of ``--provider emulator``.
``POST /_emulator/batches`` with a JSON object of settings changes them (``null`` resets
one to its default) and ``GET /_emulator/batches`` shows them with the tokens enqueued
per model; :meth:`Emulator.reset` goes back to the startup settings.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

MAX_LINES = 50_000
MAX_BYTES = 200 * 1024 * 1024


@dataclass
class BatchSettings:
    delay_ms: int = 0
    token_limit: dict[str, int] = field(default_factory=dict)  # model -> limit; "*": any other
    max_lines: int = MAX_LINES
    max_bytes: int = MAX_BYTES
    pause_after: int | None = None

    def limit_for(self, model: str) -> int | None:
        return self.token_limit.get(model, self.token_limit.get("*"))

    def configure(self, data: Mapping[str, Any]) -> None:
        """Apply a ``POST /_emulator/batches`` body (ValueError for a bad one)."""
        names = {"delay_ms", "token_limit", "max_lines", "max_bytes", "pause_after"}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown batch settings: {sorted(unknown)} (expected {', '.join(sorted(names))})")
        defaults = BatchSettings()
        for key, value in data.items():
            if value is None:
                setattr(self, key, copy.deepcopy(getattr(defaults, key)))
            elif key == "token_limit":
                self.token_limit = parse_token_limit(value)
            else:
                setattr(self, key, _count(key, value, minimum=1 if key.startswith("max_") else 0))

    def snapshot(self) -> dict[str, Any]:
        return asdict(self)


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"batch setting {name!r} must be a whole number of at least {minimum}, got {value!r}")
    return value


def parse_token_limit(value: Any) -> dict[str, int]:
    """``5000`` / ``"5000"`` (every model) or ``"gpt-4.1=5000,*=100"`` / a mapping."""
    if isinstance(value, Mapping):
        return {str(k): _count("token_limit", v, 1) for k, v in value.items()}
    if isinstance(value, int) and not isinstance(value, bool):
        return {"*": _count("token_limit", value, 1)}
    if not isinstance(value, str):
        raise ValueError(f"batch token limit must be a number or MODEL=N,... got {value!r}")
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        model, sep, number = part.rpartition("=")
        if not sep:
            model, number = "*", part
        if not model.strip():
            raise ValueError(f"batch token limit {part!r}: expected MODEL=N")
        out[model.strip()] = _count("token_limit", number.strip(), 1)
    return out


def batch_settings(emulator: Any) -> BatchSettings:
    """The emulator's batch settings (defaults until configured)."""
    settings = getattr(emulator, "_batch_settings", None)
    if settings is None:
        settings = emulator._batch_settings = BatchSettings()
        emulator._batch_settings_initial = BatchSettings()
    return settings


def set_batch_settings(emulator: Any, *, initial: bool = False, **values: Any) -> BatchSettings:
    """Change settings (``initial``: also what :meth:`Emulator.reset` goes back to)."""
    settings = batch_settings(emulator)
    settings.configure(values)
    if initial:
        emulator._batch_settings_initial = copy.deepcopy(settings)
    return settings


_ENV = {"delay_ms": "FLOWRUN_EMULATOR_BATCH_DELAY_MS", "token_limit": "FLOWRUN_EMULATOR_BATCH_TOKEN_LIMIT",
        "max_lines": "FLOWRUN_EMULATOR_BATCH_MAX_LINES", "max_bytes": "FLOWRUN_EMULATOR_BATCH_MAX_BYTES"}


def settings_from_env(emulator: Any, environ: Mapping[str, str]) -> None:
    values = {key: environ[name] for key, name in _ENV.items() if environ.get(name)}
    if not values:
        return
    try:
        set_batch_settings(emulator, initial=True, **values)
    except ValueError as exc:
        names = ", ".join(_ENV[k] for k in values)
        raise ValueError(f"{names}: {exc}") from None


def reset_settings(emulator: Any) -> None:
    if getattr(emulator, "_batch_settings", None) is not None:
        emulator._batch_settings = copy.deepcopy(emulator._batch_settings_initial)
