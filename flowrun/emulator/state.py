"""Stored responses and conversation state.

* A response created with ``store`` true (the default) is kept with its *context*: the
  conversation it saw, i.e. the context and output of its ``previous_response_id``
  (recursively) followed by its own input items, normalized to item resources with ids.
  ``GET /responses/{id}/input_items`` lists that context.
* ``store: false`` keeps nothing: retrieving the id, or chaining to it with
  ``previous_response_id``, answers 404.
* Background responses (``background: true``, requires store) keep their SSE events so a
  stream can be resumed with ``GET /responses/{id}?stream=true&starting_after=N``;
  :meth:`StoredResponse.follow` replays stored events and then waits for new ones.

Everything here is used from the server's event loop only, so no locks are needed.
"""
from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from .errors import APIError, not_found
from .model import new_id

TERMINAL = ("completed", "failed", "cancelled", "incomplete")
_ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco",
              "custom_tool_call_output": "ctco", "computer_call_output": "cuo",
              "mcp_approval_response": "mcpr"}


def normalize_input(raw: Any, store: "ResponseStore") -> list[dict[str, Any]]:
    """The request's ``input`` as a list of item resources (new dicts, ids added)."""
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    items = []
    for entry in raw:
        if entry.get("type") == "item_reference":
            items.append(copy.deepcopy(store.find_item(entry["id"])))
            continue
        item = copy.deepcopy(entry)
        kind = item.setdefault("type", "message")
        if kind == "message":
            content = item.get("content")
            if item.get("role") == "assistant":
                if isinstance(content, str):
                    item["content"] = [{"type": "output_text", "text": content, "annotations": []}]
            elif isinstance(content, str):
                item["content"] = [{"type": "input_text", "text": content}]
            if "phase" in item and item["phase"] is None:
                del item["phase"]
        if not item.get("id"):
            item["id"] = new_id(_ID_PREFIX.get(kind, kind.split("_")[0]))
        if item.get("status") is None:
            item["status"] = "completed"
        items.append(item)
    return items


@dataclass
class StoredResponse:
    response: dict[str, Any]
    context: list[dict[str, Any]]  # conversation before this response's output
    stream: bool = False
    background: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task | None = None
    closed: bool = False  # deleted: followers stop
    _changed: asyncio.Event | None = None

    @property
    def id(self) -> str:
        return self.response["id"]

    @property
    def finished(self) -> bool:
        return self.closed or self.response["status"] in TERMINAL

    def conversation(self) -> list[dict[str, Any]]:
        """What a follow-up request chained to this response sees as history."""
        return self.context + self.response.get("output", [])

    def append_events(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Number ``events`` after the stored ones, store them and wake followers."""
        for event in events:
            event["sequence_number"] = len(self.events)
            self.events.append(event)
        self.notify()
        return events

    def notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def follow(self, starting_after: int = -1) -> AsyncIterator[dict[str, Any]]:
        """Stored events after ``starting_after``, then live ones until the response ends."""
        index = max(starting_after + 1, 0)
        while True:
            while index < len(self.events):
                yield self.events[index]
                index += 1
            if self.finished:
                return
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()


class ResponseStore:
    def __init__(self) -> None:
        self._responses: dict[str, StoredResponse] = {}

    def __len__(self) -> int:
        return len(self._responses)

    def put(self, record: StoredResponse) -> None:
        self._responses[record.id] = record

    def get(self, response_id: str) -> StoredResponse:
        try:
            return self._responses[response_id]
        except KeyError:
            raise not_found("Response", response_id) from None

    def history(self, previous_response_id: str | None) -> list[dict[str, Any]]:
        if not previous_response_id:
            return []
        record = self._responses.get(previous_response_id)
        if record is None:
            raise APIError(404, f"Previous response with id '{previous_response_id}' not found. "
                           "It may have been deleted or created with store=false.",
                           param="previous_response_id", code="previous_response_not_found")
        return copy.deepcopy(record.conversation())

    def find_item(self, item_id: str) -> dict[str, Any]:
        for record in self._responses.values():
            for item in record.conversation():
                if item.get("id") == item_id:
                    return item
        raise APIError(404, f"Item with id '{item_id}' not found.", param="input", code="not_found")

    def delete(self, response_id: str) -> StoredResponse:
        record = self.get(response_id)
        del self._responses[response_id]
        if record.task is not None and not record.task.done():
            record.task.cancel()
        record.closed = True
        record.notify()
        return record

    def clear(self) -> None:
        for response_id in list(self._responses):
            self.delete(response_id)

    async def aclose(self) -> None:
        tasks = [r.task for r in self._responses.values() if r.task is not None and not r.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
