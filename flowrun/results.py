"""What a step and a run produce, and the view templates get of them."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

SUCCEEDED, FAILED, SKIPPED, CANCELLED, RUNNING, WAITING = (
    "succeeded", "failed", "skipped", "cancelled", "running", "waiting",
)


RESULT_FIELDS = (
    "status", "text", "output", "response_id", "images", "files", "usage", "items",
    "container", "tool_calls", "reasoning_summary", "citations", "error", "workspace", "diff",
    "conversation",
)
"""What templates see of a step: ``steps.ID.FIELD``."""

USAGE_DETAILS = {"input_tokens_details": ("cached_tokens",),
                 "output_tokens_details": ("reasoning_tokens",)}


def add_usage(total: dict[str, Any], usage: dict[str, Any] | None) -> dict[str, Any]:
    """Add a response's (or a step's) ``usage`` into ``total``: the token counts, and the
    cached and reasoning tokens of their ``*_details``. Returns ``total``."""
    for key, value in (usage or {}).items():
        if key in USAGE_DETAILS and isinstance(value, dict):
            into = total.setdefault(key, {})
            for name in USAGE_DETAILS[key]:
                if isinstance(value.get(name), int):
                    into[name] = into.get(name, 0) + value[name]
        elif key in ("input_tokens", "output_tokens", "total_tokens") and isinstance(value, int):
            total[key] = total.get(key, 0) + value
    return total


@dataclass
class StepResult:
    """The outcome of one step run (one item of a ``for_each``, or the whole step)."""

    step_id: str
    status: str = WAITING
    text: str | None = None
    output: Any = None
    response_id: str | None = None
    response_ids: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)
    # the whole conversation sent and received, for manual chaining
    conversation: list[dict[str, Any]] = field(default_factory=list)
    container: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    reasoning_summary: str | None = None
    # what the answer cites: web pages, searched files (flowrun.citations)
    citations: list[dict[str, Any]] = field(default_factory=list)
    conversation_id: str | None = None
    error: str | None = None
    workspace: str | None = None  # the step workspace's directory
    diff: str | None = None  # unified diff of what changed in it
    error_type: str | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    index: int | None = None
    # the answer came from the step cache (zero requests); saved in the run store
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def add_usage(self, usage: dict[str, Any] | None) -> None:
        add_usage(self.usage, usage)

    def to_template(self) -> dict[str, Any]:
        """The fields templates see as ``steps.ID.*``."""
        return {
            "status": self.status,
            "text": self.text if self.text is not None else "",
            "output": self.output,
            "response_id": self.response_id,
            "images": list(self.images),
            "files": list(self.files),
            "usage": copy.deepcopy(self.usage),
            "items": list(self.items),
            "container": self.container,
            "tool_calls": list(self.tool_calls),
            "reasoning_summary": self.reasoning_summary,
            "citations": list(self.citations),
            "error": self.error,
            "workspace": self.workspace,
            "diff": self.diff if self.diff is not None else "",
            "conversation": self.conversation_id,
        }

    def to_record(self) -> dict[str, Any]:
        """The step's entry in the run record."""
        out: dict[str, Any] = {"status": self.status}
        for key in ("response_id", "error", "error_type", "container", "reasoning_summary",
                    "workspace", "diff", "conversation_id"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.response_ids:
            out["response_ids"] = list(self.response_ids)
        if self.usage:
            out["usage"] = copy.deepcopy(self.usage)
        if self.images:
            out["images"] = list(self.images)
        if self.files:
            out["files"] = list(self.files)
        if self.tool_calls:
            out["tool_calls"] = list(self.tool_calls)
        if self.approvals:
            out["approvals"] = list(self.approvals)
        if self.citations:
            out["citations"] = list(self.citations)
        if self.output is not None:
            out["output"] = self.output
        if self.text is not None:
            out["text"] = self.text
        if self.attempts:
            out["attempts"] = self.attempts
        if self.started_at is not None:
            out["started_at"] = self.started_at
        if self.finished_at is not None and self.started_at is not None:
            out["finished_at"] = self.finished_at
            out["duration_s"] = round(self.finished_at - self.started_at, 4)
        if self.index is not None:
            out["index"] = self.index
        if self.cached:
            out["cached"] = True
        out.update(self.extra)
        return out


@dataclass
class StepOutcome:
    """A step as the scheduler sees it: one result, or one per ``for_each`` item."""

    step_id: str
    status: str = WAITING
    result: StepResult | None = None
    items: list[StepResult] | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None

    def to_template(self) -> Any:
        if self.items is not None:
            return [r.to_template() for r in self.items]
        if self.result is not None:
            return self.result.to_template()
        return StepResult(self.step_id, status=self.status).to_template()

    @property
    def usage(self) -> dict[str, Any]:
        total: dict[str, Any] = {}
        for r in self.items if self.items is not None else ([self.result] if self.result else []):
            add_usage(total, r.usage)
        return total

    @property
    def response_id(self) -> str | None:
        return self.result.response_id if self.result else None

    def to_record(self) -> dict[str, Any]:
        if self.result is not None:
            out = self.result.to_record()
            out["status"] = self.status
        else:
            out = {"status": self.status}
        if self.items is not None:
            out["items"] = [r.to_record() for r in self.items]
            if self.usage:
                out["usage"] = self.usage
        if self.error and "error" not in out:
            out["error"] = self.error
        if self.started_at is not None:
            out.setdefault("started_at", self.started_at)
        if self.finished_at is not None and self.started_at is not None:
            out.setdefault("finished_at", self.finished_at)
            out.setdefault("duration_s", round(self.finished_at - self.started_at, 4))
        return out
