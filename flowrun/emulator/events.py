"""Server-sent events for a response, in the real service's order.

A streamed response is ``response.created`` → ``response.in_progress`` (background:
``response.created`` → ``response.queued`` → ``response.in_progress``) → for each
output item ``response.output_item.added`` → item-specific events →
``response.output_item.done`` → ``response.completed`` (or ``response.failed`` /
``response.incomplete``). Item-specific events:

* ``message``: per content part ``response.content_part.added``, then
  ``response.output_text.delta`` × k, ``response.output_text.annotation.added`` per
  annotation, ``response.output_text.done`` (or
  ``response.refusal.delta`` × k + ``response.refusal.done``), then
  ``response.content_part.done``;
* ``function_call``: ``response.function_call_arguments.delta`` × k +
  ``response.function_call_arguments.done``;
* ``mcp_list_tools`` and ``mcp_call`` (registered by :mod:`.hosted_mcp`):
  ``response.mcp_list_tools.in_progress`` + ``.completed`` (``.failed`` with an error);
  ``response.mcp_call.in_progress``, ``response.mcp_call_arguments.delta`` × k +
  ``response.mcp_call_arguments.done``, ``response.mcp_call.completed`` (or ``.failed``);
* anything else: only added/done, unless a module registers a builder in
  :data:`ITEM_EVENTS` (``ITEM_EVENTS["image_generation_call"] = builder``).

Text is split at word boundaries into at most :data:`MAX_DELTAS` deltas of similar size
(an empty text gives no delta). Events here carry no ``sequence_number``; the store
numbers them from 0 when they are appended.
"""
from __future__ import annotations

import copy
import re
from typing import Any, Callable

Event = dict[str, Any]
MAX_DELTAS = 8
_WORD = re.compile(r"\s*\S+\s*|\s+")


def chunks(text: str, limit: int = MAX_DELTAS) -> list[str]:
    """Split ``text`` on word boundaries into at most ``limit`` pieces that join back to it."""
    words = _WORD.findall(text)
    if not words:
        return []
    size = -(-len(words) // limit)
    return ["".join(words[i:i + size]) for i in range(0, len(words), size)]


def lifecycle(kind: str, response: dict[str, Any]) -> Event:
    """``response.<kind>`` carrying a snapshot of ``response``."""
    return {"type": f"response.{kind}", "response": copy.deepcopy(response)}


def _message_events(item: dict[str, Any], index: int) -> list[Event]:
    events: list[Event] = []
    base = {"item_id": item["id"], "output_index": index}
    for c, part in enumerate(item.get("content", [])):
        at = {**base, "content_index": c}
        if part.get("type") == "output_text":
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            events.append({"type": "response.content_part.added", **at, "part": empty})
            for piece in chunks(part["text"]):
                events.append({"type": "response.output_text.delta", **at, "delta": piece, "logprobs": []})
            for a, annotation in enumerate(part.get("annotations") or []):
                events.append({"type": "response.output_text.annotation.added", **at,
                               "annotation_index": a, "annotation": copy.deepcopy(annotation)})
            events.append({"type": "response.output_text.done", **at, "text": part["text"], "logprobs": []})
        elif part.get("type") == "refusal":
            events.append({"type": "response.content_part.added", **at,
                           "part": {"type": "refusal", "refusal": ""}})
            for piece in chunks(part["refusal"]):
                events.append({"type": "response.refusal.delta", **at, "delta": piece})
            events.append({"type": "response.refusal.done", **at, "refusal": part["refusal"]})
        else:
            events.append({"type": "response.content_part.added", **at, "part": copy.deepcopy(part)})
        events.append({"type": "response.content_part.done", **at, "part": copy.deepcopy(part)})
    return events


def _function_call_events(item: dict[str, Any], index: int) -> list[Event]:
    base = {"item_id": item["id"], "output_index": index}
    events: list[Event] = [{"type": "response.function_call_arguments.delta", **base, "delta": piece}
                           for piece in chunks(item["arguments"])]
    events.append({"type": "response.function_call_arguments.done", **base, "name": item["name"],
                   "arguments": item["arguments"]})
    return events


def _added_form(item: dict[str, Any]) -> dict[str, Any]:
    """The item as announced by ``output_item.added``: in progress, without its payload."""
    added = copy.deepcopy(item)
    if "status" in added:
        added["status"] = "in_progress"
    if added.get("type") == "message":
        added["content"] = []
    elif added.get("type") == "function_call":
        added["arguments"] = ""
    return added


# item type -> builder(item, output_index) -> events between output_item.added and .done
ITEM_EVENTS: dict[str, Callable[[dict[str, Any], int], list[Event]]] = {
    "message": _message_events,
    "function_call": _function_call_events,
}
# item type -> how the item looks in output_item.added (default: _added_form)
ADDED_FORMS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def item_events(item: dict[str, Any], index: int) -> list[Event]:
    added = ADDED_FORMS.get(item.get("type"), _added_form)(item)
    middle = ITEM_EVENTS.get(item.get("type"), lambda i, n: [])(item, index)
    return [{"type": "response.output_item.added", "output_index": index, "item": added},
            *middle,
            {"type": "response.output_item.done", "output_index": index, "item": copy.deepcopy(item)}]


def output_events(final: dict[str, Any]) -> list[Event]:
    """Item events for every output item, then the terminal lifecycle event."""
    events: list[Event] = []
    for index, item in enumerate(final.get("output", [])):
        events.extend(item_events(item, index))
    terminal = {"completed": "completed", "failed": "failed", "incomplete": "incomplete"}.get(final["status"])
    if terminal:
        events.append(lifecycle(terminal, final))
    return events
