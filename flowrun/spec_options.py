"""Request options of the flow language that map one to one onto Responses parameters.

:class:`RequestOptions` is a base of :class:`flowrun.spec.ModelParams`, so every option
here can be set on a step and in ``defaults`` (the step's value wins). The request is
built from them by :mod:`flowrun.steps.options`; ``validate`` checks how they combine in
:mod:`flowrun.option_checks`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CONVERSATION_NEW = "new"
CONVERSATION_NONE = "none"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True, frozen=True)


class StreamOptions(_Strict):
    """Options of a streamed response."""

    include_obfuscation: bool | None = None
    """Pad stream events with random characters against side-channel attacks (default on
    at the service); false saves bandwidth on a trusted network."""


class ContextManagement(_Strict):
    """Server-side compaction of a long conversation (``context_management``)."""

    compact_threshold: int = Field(ge=1000)
    """When the context passes this many tokens, the service compacts it into one
    ``compaction`` item; flowrun then resends only what follows that item."""


class RequestOptions(_Strict):
    """Responses request options shared by ``defaults`` and steps."""

    conversation: str | None = None
    """Chain through a server-side Conversation: ``new`` (a new one for this step; in
    ``defaults``: one for the whole run, which every step joins), the id of a step whose
    conversation this one joins, an existing ``conv_...`` id, or ``none`` (opt out of the
    default)."""
    max_tool_calls: int | None = Field(None, ge=1)
    """Most calls to hosted tools (MCP, code interpreter, ...) the model may make in one
    response."""
    prompt_cache_key: str | None = Field(None, min_length=1, max_length=64)
    """Groups requests that share a long prefix, for better prompt-cache hits; a template."""
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    """How long the service keeps the cached prefix."""
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    """Processing tier (``flex``: cheaper and slower; ``priority``: faster)."""
    verbosity: Literal["low", "medium", "high"] | None = None
    """How long the model's answer is (``text.verbosity``; gpt-5 family)."""
    safety_identifier: str | None = Field(None, min_length=1, max_length=64)
    """A stable id of the end user (hashed), for abuse detection; a template."""
    top_logprobs: int | None = Field(None, ge=0, le=20)
    """Most likely tokens to return per position; add
    ``include: [message.output_text.logprobs]`` to receive them."""
    stream_options: StreamOptions | None = None
    """Options for ``stream: true``."""
    context_management: ContextManagement | None = None
    """Compact the context server-side past a token threshold (long tool loops)."""
