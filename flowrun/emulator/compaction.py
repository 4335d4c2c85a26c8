"""Compaction on the emulator: ``context_management`` on ``POST /responses`` and
``POST /responses/compact``.

- A request with ``context_management: [{type: compaction, compact_threshold: N}]`` whose
  context (instructions and every item the model sees) is more than N tokens gets a
  ``compaction`` item first in its output: ``encrypted_content`` sealed by this emulator
  (:func:`.reasoning.seal`), standing for everything the model saw.
- Whatever the request, the model's context starts at the latest ``compaction`` item in
  it (reached through ``previous_response_id``, a Conversation or sent as input): what
  came before is not seen, nor counted in ``input_tokens``. A compaction item counts no
  tokens. One this emulator did not seal is a 400.
- ``POST /responses/compact`` (``{model, input, previous_response_id, instructions}``)
  answers a ``response.compaction`` object whose ``output`` is one compaction item
  standing for the whole context (the spec's ``CompactResource.output`` holds output
  items only, so user messages are not repeated there).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from .conformance import problems
from .errors import APIError
from .model import TURN_CHECKS, Turn, count_tokens, item_text, new_id
from .reasoning import seal, unseal
from .server import register_routes
from .service import AFTER_REPLY, JSONAnswer
from .state import normalize_input

COMPACTION = "compaction"


def context_tokens(instructions: Any, items: list[dict[str, Any]]) -> int:
    tokens = count_tokens(instructions) if isinstance(instructions, str) else 0
    return tokens + sum(count_tokens(item_text(i)) for i in items)


def compaction_item(items: list[dict[str, Any]]) -> dict[str, Any]:
    users = sum(1 for i in items if i.get("type", "message") == "message" and i.get("role") == "user")
    return {"id": new_id("cmp"), "type": COMPACTION,
            "encrypted_content": seal(COMPACTION, {"items": len(items), "user_messages": users})}


def _threshold(request: dict[str, Any]) -> int | None:
    for entry in request.get("context_management") or []:
        if entry.get("type") == COMPACTION:
            return entry.get("compact_threshold") or 200_000
    return None


def _trim(turn: Turn) -> None:
    """Check compaction items sent back; start the context at the latest one; mark the
    turn for compaction when it passes the request's threshold."""
    latest = None
    for index, item in enumerate(turn.conversation):
        if item.get("type") == COMPACTION:
            if unseal(COMPACTION, item.get("encrypted_content")) is None:
                raise APIError(400, f"The encrypted content of compaction item {item.get('id')} "
                               "could not be verified.", param="input", code="invalid_encrypted_content")
            latest = index
    if latest:
        del turn.conversation[:latest]
    threshold = _threshold(turn.request)
    if threshold is not None and context_tokens(turn.request.get("instructions"), turn.conversation) > threshold:
        turn.extras["compact"] = True


def _compact(turn: Turn, response: dict[str, Any]) -> None:
    if turn.extras.get("compact"):
        response["output"].insert(0, compaction_item(turn.conversation))


TURN_CHECKS.append(_trim)
AFTER_REPLY.append(_compact)


@register_routes
def _routes(emulator: Any, api: Any) -> list[BaseRoute]:
    def compact(request: Request, body: Any) -> JSONAnswer:
        found = problems("CompactResponseMethodPublicBody", body, request=True)
        if found:
            raise APIError(400, f"Invalid request body: {found[0]}", code="invalid_value")
        history = emulator.store.history(body.get("previous_response_id"))
        items = history + normalize_input(body.get("input"), emulator.store)
        tokens = context_tokens(body.get("instructions"), items)
        return JSONAnswer({
            "id": new_id("resp"), "object": "response.compaction", "created_at": int(time.time()),
            "output": [compaction_item(items)],
            "usage": {"input_tokens": tokens, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                      "output_tokens": 0, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": tokens},
        })

    return [Route("/responses/compact", api(compact), methods=["POST"])]
