"""Request options (:mod:`flowrun.spec_options`) and reusable prompts, as request fields.

:func:`option_params` gives the fields every turn of a step sends (``max_tool_calls``,
``prompt_cache_key``, ``service_tier``, ``text.verbosity``, ``context_management``, ...);
:func:`prompt_param` renders a step's ``prompt`` (its variables are templates, or text,
image and file parts built as in ``input``).
"""

from __future__ import annotations

from typing import Any

from ..parts import PART_BUILDERS, check_limits, resolve_part

COMPACTION = "compaction"
_PLAIN = ("max_tool_calls", "prompt_cache_retention", "service_tier", "top_logprobs")
_TEMPLATED = ("prompt_cache_key", "safety_identifier")


def option_params(sc: Any) -> dict[str, Any]:
    """The request fields of the step's options (its own value, else the default's)."""
    out: dict[str, Any] = {}
    for name in _PLAIN:
        value = sc.param(name)
        if value is not None:
            out[name] = value
    for name in _TEMPLATED:
        value = sc.param(name)
        if value is not None:
            out[name] = str(sc.render(value))
    verbosity = sc.param("verbosity")
    if verbosity is not None:
        out["text"] = {"verbosity": verbosity}
    stream_options = sc.param("stream_options")
    if stream_options is not None and sc.param("stream"):
        out["stream_options"] = stream_options.model_dump(exclude_none=True)
    context = sc.param("context_management")
    if context is not None:
        out["context_management"] = [{"type": COMPACTION, "compact_threshold": context.compact_threshold}]
    return out


def compacted(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A manual (``store: false``) conversation from its latest ``compaction`` item on:
    that item stands for everything before it, so nothing older is resent."""
    for index in range(len(items) - 1, -1, -1):
        if items[index].get("type") == COMPACTION:
            return items[index:]
    return items


def merge_text(request: dict[str, Any], text: dict[str, Any]) -> None:
    """Merge ``text`` options (verbosity) into the request's ``text`` (format)."""
    request["text"] = {**request.get("text", {}), **text}


async def prompt_param(sc: Any) -> dict[str, Any] | None:
    """The step's ``prompt`` as the request's ``prompt`` object (None without one)."""
    spec = sc.step.prompt
    if spec is None:
        return None
    out: dict[str, Any] = {"id": str(sc.render(spec.id)).strip()}
    if spec.version is not None:
        out["version"] = str(sc.render(spec.version)).strip()
    if spec.variables:
        # resolve and check every part first, so nothing is uploaded for a bad one
        sources = {n: resolve_part(sc, v) for n, v in spec.variables.items() if not isinstance(v, str)}
        check_limits(sc, list(sources.values()))
        variables: dict[str, Any] = {}
        for name, value in spec.variables.items():
            if isinstance(value, str):
                variables[name] = str(sc.render(value))
            else:
                src = sources[name]
                variables[name] = await PART_BUILDERS[src.kind](sc, value, src)
        out["variables"] = variables
    return out
