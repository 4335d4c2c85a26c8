"""The Conversations API of the emulator, and ``conversation`` on ``POST /responses``::

    POST   /conversations                          {metadata, items}   -> ConversationResource
    GET    /conversations/{id}                                         -> ConversationResource
    POST   /conversations/{id}                     {metadata}          -> ConversationResource
    DELETE /conversations/{id}                                         -> DeletedConversationResource
    GET    /conversations/{id}/items               ?order&limit&after  -> ConversationItemList
    POST   /conversations/{id}/items               {items} (<= 20)     -> ConversationItemList
    GET    /conversations/{id}/items/{item_id}                         -> ConversationItem
    DELETE /conversations/{id}/items/{item_id}                         -> ConversationResource

A response created with ``conversation`` (an id or ``{"id"}``) sees the Conversation's
items before its own input, and when it finishes the service appends its input and
output items to the Conversation; the response names it (``conversation: {id}``).
``conversation`` with ``previous_response_id`` is a 400, an unknown id a 404.
Bodies are checked against the spec schemas (400 naming the path).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from .conformance import problems
from .errors import APIError, not_found
from .model import TURN_CHECKS, Turn, new_id
from .server import _int_param, register_routes
from .service import AFTER_REPLY, RESET_HOOKS, JSONAnswer
from .state import normalize_input

MAX_ITEMS_PER_CALL = 20


@dataclass
class Conversation:
    id: str
    metadata: dict[str, str]
    created_at: int = field(default_factory=lambda: int(time.time()))
    items: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "object": "conversation", "metadata": dict(self.metadata),
                "created_at": self.created_at}

    def item(self, item_id: str) -> dict[str, Any]:
        for item in self.items:
            if item.get("id") == item_id:
                return item
        raise not_found("Item", item_id, "item_id")


def conversations(emulator: Any) -> dict[str, Conversation]:
    """The emulator's Conversations by id (created on first use)."""
    store = getattr(emulator, "_conversations", None)
    if store is None:
        store = emulator._conversations = {}
    return store


def _get(emulator: Any, conversation_id: str) -> Conversation:
    found = conversations(emulator).get(conversation_id)
    if found is None:
        raise not_found("Conversation", conversation_id, "conversation")
    return found


def _check(schema: str, body: Any) -> None:
    found = problems(schema, body, request=True)
    if found:
        raise APIError(400, f"Invalid request body: {found[0]}", code="invalid_value")


def _items(emulator: Any, raw: Any) -> list[dict[str, Any]]:
    """Input items of a request body, checked and made into item resources."""
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_ITEMS_PER_CALL:
        raise APIError(400, f"'items' must be an array of at most {MAX_ITEMS_PER_CALL} items.",
                       param="items")
    for index, item in enumerate(raw):
        found = problems("InputItem", item, request=True)
        if found:
            raise APIError(400, f"Invalid item at items[{index}]: {found[0]}", param=f"items[{index}]")
    return normalize_input(raw, emulator.store)


def _page(items: list[dict[str, Any]], request: Request) -> dict[str, Any]:
    order = request.query_params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise APIError(400, f"Invalid value for 'order': {order!r}; expected 'asc' or 'desc'.", param="order")
    limit = _int_param(request, "limit", 20)
    if not 1 <= limit <= 100:
        raise APIError(400, "Invalid value for 'limit': must be between 1 and 100.", param="limit")
    ordered = items if order == "asc" else items[::-1]
    start, after = 0, request.query_params.get("after")
    if after:
        ids = [i.get("id") for i in ordered]
        if after not in ids:
            raise APIError(400, f"Invalid value for 'after': no item with id '{after}'.", param="after")
        start = ids.index(after) + 1
    page = copy.deepcopy(ordered[start:start + limit])
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else "",
            "last_id": page[-1]["id"] if page else "", "has_more": start + limit < len(ordered)}


# ---------------------------------------------------------------- POST /responses


def _conversation_id(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("id")
    return value or None


def _join(turn: Turn) -> None:
    """The Conversation's items come first in what the model sees."""
    conversation_id = _conversation_id(turn.request.get("conversation"))
    if conversation_id is None:
        return
    if turn.request.get("previous_response_id"):
        raise APIError(400, "Mutually exclusive parameters: Ensure you are only providing one of: "
                       "'previous_response_id' or 'conversation'.", param="conversation",
                       code="mutually_exclusive_parameters")
    conversation = _get(turn.emulator, conversation_id)
    turn.extras["conversation"] = (conversation, list(turn.conversation))
    turn.conversation[:0] = copy.deepcopy(conversation.items)


def _append(turn: Turn, response: dict[str, Any]) -> None:
    joined = turn.extras.get("conversation")
    if joined is None:
        return
    conversation, new_items = joined
    conversation.items.extend(copy.deepcopy(new_items + response.get("output", [])))
    response["conversation"] = {"id": conversation.id}


# first: the Conversation's items start the context every later check sees
TURN_CHECKS.insert(0, _join)
AFTER_REPLY.append(_append)
RESET_HOOKS.append(lambda emulator: conversations(emulator).clear())


# ---------------------------------------------------------------- routes


@register_routes
def _routes(emulator: Any, api: Any) -> list[BaseRoute]:
    def cid(request: Request) -> str:
        return request.path_params["conversation_id"]

    def create(request: Request, body: Any) -> JSONAnswer:
        body = {} if body is None else body
        _check("CreateConversationBody", body)
        conversation = Conversation(new_id("conv"), dict(body.get("metadata") or {}))
        conversation.items = _items(emulator, body.get("items"))
        conversations(emulator)[conversation.id] = conversation
        return JSONAnswer(conversation.to_json())

    def retrieve(request: Request, body: Any) -> JSONAnswer:
        return JSONAnswer(_get(emulator, cid(request)).to_json())

    def update(request: Request, body: Any) -> JSONAnswer:
        _check("UpdateConversationBody", body)
        conversation = _get(emulator, cid(request))
        conversation.metadata = dict(body["metadata"] or {})
        return JSONAnswer(conversation.to_json())

    def delete(request: Request, body: Any) -> JSONAnswer:
        _get(emulator, cid(request))
        del conversations(emulator)[cid(request)]
        return JSONAnswer({"id": cid(request), "object": "conversation.deleted", "deleted": True})

    def list_items(request: Request, body: Any) -> JSONAnswer:
        return JSONAnswer(_page(_get(emulator, cid(request)).items, request))

    def add_items(request: Request, body: Any) -> JSONAnswer:
        conversation = _get(emulator, cid(request))
        if not isinstance(body, dict) or "items" not in body:
            raise APIError(400, "Missing required parameter: 'items'.", param="items",
                           code="missing_required_parameter")
        added = _items(emulator, body["items"])
        conversation.items.extend(added)
        page = copy.deepcopy(added)
        return JSONAnswer({"object": "list", "data": page, "first_id": page[0]["id"] if page else "",
                           "last_id": page[-1]["id"] if page else "", "has_more": False})

    def get_item(request: Request, body: Any) -> JSONAnswer:
        item = _get(emulator, cid(request)).item(request.path_params["item_id"])
        return JSONAnswer(copy.deepcopy(item))

    def delete_item(request: Request, body: Any) -> JSONAnswer:
        conversation = _get(emulator, cid(request))
        conversation.items.remove(conversation.item(request.path_params["item_id"]))
        return JSONAnswer(conversation.to_json())

    base, items = "/conversations/{conversation_id}", "/conversations/{conversation_id}/items"
    return [
        Route("/conversations", api(create), methods=["POST"]),
        Route(base, api(retrieve), methods=["GET"]),
        Route(base, api(update), methods=["POST"]),
        Route(base, api(delete), methods=["DELETE"]),
        Route(items, api(list_items), methods=["GET"]),
        Route(items, api(add_items), methods=["POST"]),
        Route(items + "/{item_id}", api(get_item), methods=["GET"]),
        Route(items + "/{item_id}", api(delete_item), methods=["DELETE"]),
    ]
