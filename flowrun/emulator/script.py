"""Scripts: per-step canned replies for the emulator's model.

A script is YAML or JSON (``--script FILE``, ``POST /_emulator/script`` with the same
structure as a JSON body)::

    steps:                      # keyed by metadata.flowrun_step of the request
      ticker:
        - function_calls:       # one or more (parallel) function calls
            - {name: lookup_ticker, arguments: {company: Contoso}}
        - text: "The ticker is CTSO."
      risks:
        - match: "(?i)contoso"  # regex searched in the latest user text
          output: {risks: [supply, currency]}
        - refusal: "I can't help with that."
      "explain[1]":             # only fan-out item 1 of step explain (metadata.flowrun_item)
        - text: "Second item."
      flaky:
        - error: {status: 429, message: slow down, retry_after: 1}
        - text: "ok"            # a plain string entry is short for {text: ...}
    default:                    # consulted when the step's list has no usable entry
      - text: "Fallback."

Each entry holds exactly one reply kind - ``text``, ``output`` (any JSON value,
serialized into ``output_text``; not checked against the request's schema, so invalid
output can be scripted), ``refusal``, ``function_calls`` (``name``, ``arguments`` as an
object or a raw string - bad JSON can be scripted - and optional ``call_id``), ``error``
(``status``, ``message``, ``retry_after`` seconds, ``type``, ``code``, ``param``) or any
kind registered later through :func:`flowrun.emulator.model.register_kind` - plus
optional modifiers: ``match`` (regex, ``re.search`` on the latest user text),
``delay_ms`` (extra latency for this reply) and ``drop_stream_after`` (a streamed
answer is cut after that many SSE events, without ``response.completed``; ignored for
non-streaming requests).

Selection for a request with step S and item I: the lists ``steps["S[I]"]``,
``steps["S"]`` and ``default`` are tried in that order; in a list, the first entry not
yet used whose ``match`` (if any) matches is taken. Every entry is used once, except
the last entry of a list, which repeats forever. When nothing applies, the model's
default rule answers. Loading a script resets what has been used.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from .model import REPLY_KINDS

MODIFIERS = ("match", "delay_ms", "drop_stream_after")


class ScriptError(ValueError):
    """A script that cannot be loaded; the message says where and why."""


class Reply(BaseModel):
    """One scripted reply: exactly one kind key plus optional modifiers."""

    model_config = ConfigDict(extra="allow")
    match: str | None = None
    delay_ms: int = Field(0, ge=0)
    drop_stream_after: int | None = Field(None, ge=0)
    _kind: str = PrivateAttr("")
    _value: Any = PrivateAttr(None)
    _pattern: re.Pattern[str] | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"text": data} if isinstance(data, str) else data

    @field_validator("match")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regex {value!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> "Reply":
        kinds = list(self.model_extra or {})
        unknown = [k for k in kinds if k not in REPLY_KINDS]
        if unknown:
            raise ValueError(f"unknown reply kind {unknown[0]!r}; known kinds: {', '.join(sorted(REPLY_KINDS))}"
                             f"; modifiers: {', '.join(MODIFIERS)}")
        if len(kinds) != 1:
            raise ValueError(f"a reply needs exactly one kind ({', '.join(sorted(REPLY_KINDS))}), got {kinds or 'none'}")
        self._kind = kinds[0]
        raw = self.model_extra[self._kind]
        adapter = REPLY_KINDS[self._kind].adapter
        try:
            self._value = adapter.validate_python(raw) if adapter is not None else raw
        except ValidationError as exc:
            details = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or self._kind}: {e['msg']}"
                                for e in exc.errors())
            raise ValueError(f"bad {self._kind!r} reply: {details}") from None
        self._pattern = re.compile(self.match) if self.match is not None else None
        return self

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def value(self) -> Any:
        return self._value

    def matches(self, text: str) -> bool:
        return self._pattern is None or self._pattern.search(text) is not None


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: dict[str, list[Reply]] = {}
    default: list[Reply] = []

    @field_validator("steps", mode="before")
    @classmethod
    def _wrap_steps(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _as_list(v) for k, v in value.items()}
        return value

    @field_validator("default", mode="before")
    @classmethod
    def _wrap_default(cls, value: Any) -> Any:
        return _as_list(value) if value is not None else []


def parse_script(data: Any, source: str = "script") -> Script:
    """Validate a script document (already parsed from YAML/JSON)."""
    if data is None:
        data = {}
    try:
        return Script.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "<root>"
            lines.append(f"  {where}: {err['msg']}")
        raise ScriptError(f"{source}: invalid emulator script\n" + "\n".join(lines)) from None


def load_script(path: str | Path) -> Script:
    """Load a script file (YAML or JSON)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScriptError(f"{path}: cannot read emulator script: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ScriptError(f"{path}: not valid YAML/JSON: {exc}") from None
    return parse_script(data, str(path))


def coerce_script(script: Any) -> Script | None:
    """Accept a :class:`Script`, a mapping, a file path or ``None``."""
    if script is None or isinstance(script, Script):
        return script
    if isinstance(script, (str, Path)):
        return load_script(script)
    return parse_script(script)


class ScriptPlayer:
    """Hands out script entries in order; each entry is used once, the last repeats."""

    def __init__(self, script: Script | None = None) -> None:
        self.load(script)

    def load(self, script: Script | None) -> None:
        self.script = script or Script()
        self._used: dict[str, set[int]] = {}

    def next_reply(self, step: str | None, item: str | None, user_text: str) -> Reply | None:
        keys: list[tuple[str, list[Reply]]] = []
        steps = self.script.steps
        if step is not None and item is not None and f"{step}[{item}]" in steps:
            keys.append((f"steps.{step}[{item}]", steps[f"{step}[{item}]"]))
        if step is not None and step in steps:
            keys.append((f"steps.{step}", steps[step]))
        keys.append(("default", self.script.default))
        for key, replies in keys:
            used = self._used.setdefault(key, set())
            for index, reply in enumerate(replies):
                if index in used or not reply.matches(user_text):
                    continue
                if index != len(replies) - 1:
                    used.add(index)
                return reply
        return None
