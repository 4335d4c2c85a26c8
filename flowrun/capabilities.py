"""What each provider kind offers, in one table, and the warnings ``validate --provider``
gives for a flow that uses what the chosen provider does not.

Sources (``shared/specs``): the Azure OpenAI Responses guide, its update and its latest
(Japanese) version, whose "not currently supported" notes are the ``guide`` rows; and
Azure's inference spec (``azure-openai-2025-04-01-preview.json``), whose ``createResponse``
lacks the ``spec`` rows (the v1 API gains features ahead of that spec, so these warn, they
do not refuse). OpenAI's own spec (``openai-openapi.yml``) has every row. ``compatible``
endpoints differ too widely to list; ``emulator`` serves everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from .errors import Problem
from .spec import tool_kind

_AZURE_SPEC = "not in Azure's Responses reference (2025-04-01-preview); the deployment may refuse it"
_AZURE_GUIDE = "not supported on Azure OpenAI's Responses API (Azure guide, latest version)"

UNSUPPORTED: dict[str, dict[str, str]] = {
    "azure": {
        "tool web_search": f"the web search tool is {_AZURE_GUIDE}",
        "tool web_search_preview": f"the web search tool is {_AZURE_GUIDE}",
        "image upload": "an image uploaded as a file and referenced as input is "
                        f"{_AZURE_GUIDE}; send it inline (drop upload: true)",
        "image_generation stream": f"image generation with streaming is {_AZURE_GUIDE}",
        "conversation": f"Conversations are {_AZURE_SPEC}; chain with continue: instead",
        "prompt": f"reusable prompts are {_AZURE_SPEC}",
        "context_management": f"compaction (context_management) is {_AZURE_SPEC}",
        "max_tool_calls": f"max_tool_calls is {_AZURE_SPEC}",
        "prompt_cache_key": f"prompt_cache_key is {_AZURE_SPEC}",
        "prompt_cache_retention": f"prompt_cache_retention is {_AZURE_SPEC}",
        "service_tier": f"service_tier is {_AZURE_SPEC}",
        "verbosity": f"text.verbosity is {_AZURE_SPEC}",
        "safety_identifier": f"safety_identifier is {_AZURE_SPEC}",
        "top_logprobs": f"top_logprobs is {_AZURE_SPEC}",
        "stream_options": f"stream_options is {_AZURE_SPEC}",
    },
    "openai": {},
    "compatible": {},
    "emulator": {},
}
"""Provider kind -> feature -> why the provider does not offer it."""

OPTIONS = ("conversation", "context_management", "max_tool_calls", "prompt_cache_key",
           "prompt_cache_retention", "service_tier", "verbosity", "safety_identifier",
           "top_logprobs", "stream_options")


@dataclass(frozen=True)
class Use:
    """A feature a flow uses, and where (a path in the flow file)."""

    feature: str
    path: tuple[str | int, ...]


def uses(flow: Any) -> Iterator[Use]:
    """Every feature of the table the flow uses."""
    for name in OPTIONS:
        if getattr(flow.defaults, name, None) is not None:
            yield Use(name, ("defaults", name))
    for sid, step in flow.steps.items():
        base = ("steps", sid)
        for name in OPTIONS:
            if getattr(step, name, None) is not None:
                yield Use(name, base + (name,))
        if step.prompt is not None:
            yield Use("prompt", base + ("prompt",))
        for i, ref in enumerate(step.tools):
            kind = ref if isinstance(ref, str) and ref not in flow.tools else tool_kind(
                flow.tools[ref] if isinstance(ref, str) else ref)
            yield Use(f"tool {kind}", base + ("tools", i))
            if kind == "image_generation" and (step.stream or flow.defaults.stream):
                yield Use("image_generation stream", base + ("tools", i))
        for i, part in enumerate(step.input if isinstance(step.input, list) else []):
            if getattr(part, "image", None) is not None and getattr(part, "upload", False):
                yield Use("image upload", base + ("input", i, "upload"))


def provider_warnings(plan: Any, kind: str) -> list[Problem]:
    """What the flow uses that provider ``kind`` does not offer, placed in the file."""
    table = UNSUPPORTED.get(kind, {})
    source = plan.file.source
    seen: set[tuple[str, tuple[Any, ...]]] = set()
    out = []
    for use in uses(plan.flow):
        why = table.get(use.feature)
        if why is None or (use.feature, use.path) in seen:
            continue
        seen.add((use.feature, use.path))
        out.append(source.problem(use.path, f"warning: {why}", key=True))
    return out
