"""The flowrun error hierarchy.

    FlowrunError                      base; ``exit_code`` tells the CLI how to leave
    ├── SpecError                     the flow file is wrong (exit 2)
    │     carries a list of Problem (file, line, column, key path, message, hint)
    ├── PlanError(SpecError)          cycles, unknown steps, impossible wiring (exit 2)
    ├── UsageError                    bad CLI input, missing inputs, no provider (exit 2)
    │   └── SecretRefused             a value flowrun could not keep secret (too short to
    │                                 mask, a credential variable not declared as secret)
    ├── ExecutionError                a step failed (exit 1); carries step id and run record
    │   ├── StepTimeout
    │   ├── ToolLoopLimit             the model kept calling tools past max_tool_turns
    │   ├── OutputError               refusal, invalid JSON, schema mismatch
    │   └── StoreError                the run store could not be written (disk full,
    │                                 read-only file); the work is not durable
    ├── ClientError                   the endpoint said no (exit 1)
    │   ├── RateLimited               429, with ``retry_after``
    │   ├── ServerError               5xx
    │   ├── ConnectionFailed          network, timeouts, dropped streams
    │   └── RequestRejected           4xx other than 429
    └── Cancelled                     the user interrupted the run (exit 130)

Foreign exceptions (openai, pydantic, ruamel) are mapped into this tree in one place
each: ``client.map_sdk_error`` and ``loader``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a flow file, with where it is and what to do."""

    message: str
    file: str | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    path: tuple[str | int, ...] = ()
    hint: str | None = None

    @property
    def where(self) -> str:
        parts = [self.file or "<flow>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    @property
    def key_path(self) -> str:
        out = ""
        for p in self.path:
            out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
        return out

    def format(self) -> str:
        text = f"{self.where}: "
        if self.path:
            text += f"{self.key_path}: "
        text += self.message
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": list(self.path),
            "message": self.message,
            "hint": self.hint,
        }


class FlowrunError(Exception):
    """Base of every error flowrun raises on purpose."""

    exit_code = 1

    def format(self) -> str:
        return str(self)


class SpecError(FlowrunError):
    """The flow file cannot be loaded or is invalid; holds every problem found."""

    exit_code = 2

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__(self.format())

    def format(self) -> str:
        return "\n".join(p.format() for p in self.problems)


class PlanError(SpecError):
    """The steps cannot be arranged into a DAG (cycles, unknown references)."""


class UsageError(FlowrunError):
    """The command line or the run's inputs or configuration are wrong."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        self.hint = hint
        super().__init__(message)

    def format(self) -> str:
        return str(self) + (f"\n    hint: {self.hint}" if self.hint else "")


class SecretRefused(UsageError):
    """A secret too short to mask, or a credential-looking ``env.NAME`` that the flow does
    not declare under ``secrets:``; the message names the variable, never its value."""


class ClientError(FlowrunError):
    """The Responses endpoint refused or failed a request."""

    retryable = False

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class RateLimited(ClientError):
    """HTTP 429; ``retry_after`` holds the server's Retry-After in seconds."""

    retryable = True


class ServerError(ClientError):
    """HTTP 5xx."""

    retryable = True


class ConnectionFailed(ClientError):
    """The connection failed, timed out, or a stream ended early."""

    retryable = True


class RequestRejected(ClientError):
    """HTTP 4xx other than 429: the request itself is wrong; retrying will not help."""


class ExecutionError(FlowrunError):
    """A step failed while running."""

    exit_code = 1

    def __init__(self, message: str, step_id: str | None = None, **details: Any):
        self.step_id = step_id
        self.details = details
        self.run_record: Any = None
        super().__init__(message)


class StepTimeout(ExecutionError):
    """The step ran past its ``timeout``."""


class ToolLoopLimit(ExecutionError):
    """The model was still calling tools after ``max_tool_turns``."""


class OutputError(ExecutionError):
    """The model refused, or its structured output was not valid."""


class StoreError(ExecutionError):
    """A write to the run store failed (disk full, a read-only file, a broken database):
    what was being saved is not durable, so the step (or the run) fails."""


class Cancelled(FlowrunError):
    """The run was interrupted (Ctrl-C); ``result`` is the run as recorded."""

    exit_code = 130

    def __init__(self, message: str = "run interrupted", result: Any = None):
        self.result = result
        super().__init__(message)


__all__ = [
    "Cancelled",
    "ClientError",
    "ConnectionFailed",
    "ExecutionError",
    "FlowrunError",
    "OutputError",
    "PlanError",
    "Problem",
    "RateLimited",
    "RequestRejected",
    "ServerError",
    "SpecError",
    "StoreError",
    "StepTimeout",
    "ToolLoopLimit",
    "UsageError",
]
