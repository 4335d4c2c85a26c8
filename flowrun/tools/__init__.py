"""Tools: how each tool kind becomes request parameters, and how each kind of output item
is handled. Built-in kinds register here through the same decorators a plugin would use.

- ``@register_tool(kind)``: ``async (sc, name, tool) -> list[dict]`` returns the request's
  tool entries (and may put callables in ``sc.functions``).
- ``@register_event(type)``: ``(sc, event) -> None`` sees streaming events of that type.
- ``@register_item(type)``: ``async (sc, item, response) -> list[dict] | None`` handles an
  output item; the items it returns are sent back to the model in another turn
  (``function_call_output``, ``mcp_approval_response``).
"""

from __future__ import annotations

import importlib
from typing import Any, Awaitable, Callable

from ..errors import ExecutionError
from ..tracing import current as current_tracer

ToolBuilder = Callable[[Any, str, Any], Awaitable[list[dict[str, Any]]]]
ItemHandler = Callable[[Any, dict[str, Any], dict[str, Any]], Awaitable[list[dict[str, Any]] | None]]

EventHandler = Callable[[Any, dict[str, Any]], Awaitable[None] | None]

TOOL_BUILDERS: dict[str, ToolBuilder] = {}
ITEM_HANDLERS: dict[str, ItemHandler] = {}
EVENT_HANDLERS: dict[str, EventHandler] = {}

# modules that register the built-in tool kinds and item handlers
BUILTIN_MODULES: list[str] = [
    "flowrun.tools.images",
    "flowrun.tools.mcp",
    "flowrun.tools.code_interpreter",
    "flowrun.tools.functions",
    "flowrun.tools.apply_patch",
    "flowrun.tools.shell",
    "flowrun.tools.custom",
    "flowrun.tools.web_search",
    "flowrun.tools.file_search",
]
_loaded = False


def register_tool(kind: str) -> Callable[[ToolBuilder], ToolBuilder]:
    def deco(fn: ToolBuilder) -> ToolBuilder:
        TOOL_BUILDERS[kind] = fn
        return fn

    return deco


def register_item(item_type: str) -> Callable[[ItemHandler], ItemHandler]:
    def deco(fn: ItemHandler) -> ItemHandler:
        ITEM_HANDLERS[item_type] = fn
        return fn

    return deco


def register_event(event_type: str) -> Callable[[EventHandler], EventHandler]:
    """Handle a streaming event type (e.g. partial images) while a step streams."""

    def deco(fn: EventHandler) -> EventHandler:
        EVENT_HANDLERS[event_type] = fn
        return fn

    return deco


def load_builtins() -> None:
    global _loaded
    if not _loaded:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        _loaded = True


def resolve(sc: Any, ref: Any) -> tuple[str, Any]:
    """A step's tool reference -> (name, definition)."""
    from ..spec import ApplyPatchTool, CodeInterpreterTool, ImageGenerationTool, WebSearchTool

    if isinstance(ref, str):
        if ref in sc.flow.tools:
            return ref, sc.flow.tools[ref]
        if ref == "code_interpreter":
            return ref, CodeInterpreterTool()
        if ref == "image_generation":
            return ref, ImageGenerationTool()
        if ref == "apply_patch":
            return ref, ApplyPatchTool()
        if ref == "web_search":
            return ref, WebSearchTool()
        raise ExecutionError(f"unknown tool {ref!r}", sc.step_id)
    from ..spec import tool_kind

    return tool_kind(ref) or "tool", ref


async def build_tools(sc: Any) -> list[dict[str, Any]]:
    """The ``tools`` parameter of a step's requests."""
    from ..spec import tool_kind

    load_builtins()
    params: list[dict[str, Any]] = []
    for ref in sc.step.tools:
        name, tool = resolve(sc, ref)
        kind = tool_kind(tool)
        builder = TOOL_BUILDERS.get(kind or "")
        if builder is None:
            raise ExecutionError(
                f"tool {name!r}: the {kind} tool kind is not available in this installation",
                sc.step_id,
            )
        params.extend(await builder(sc, name, tool))
    return params


async def handle_items(sc: Any, response: dict[str, Any]) -> list[dict[str, Any]]:
    """Run the handler of every output item; collect what goes back to the model."""
    load_builtins()
    follow_up: list[dict[str, Any]] = []
    for item in response.get("output") or []:
        handler = ITEM_HANDLERS.get(item.get("type", ""))
        if handler is not None:
            with current_tracer().local_tool(sc, item):
                more = await handler(sc, item, response)
            if more:
                follow_up.extend(more)
    return follow_up
