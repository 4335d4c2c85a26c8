"""Reasoning models on the emulator: ``reasoning`` items, their summaries and
``encrypted_content``, and the check the service makes on a manual (``store: false``) chain.

- A reasoning model (``o1``/``o3``/``o4-mini``... and the ``gpt-5`` family) answers with a
  ``reasoning`` item before its output. Its ``summary`` has one ``summary_text`` when the
  request asks (``reasoning.summary``: ``auto``/``concise``/``detailed``), else it is empty.
  Its tokens (``tokens("Reasoning about: TEXT")``, TEXT the last user text, or "the tool
  results") are ``output_tokens_details.reasoning_tokens`` and part of ``output_tokens``.
- ``include: [reasoning.encrypted_content]`` adds ``encrypted_content``: a sealed token
  (:func:`seal`) only this emulator process can open.
- Sent back as input, a reasoning item must carry ``encrypted_content`` this emulator
  sealed (else 400), or be stored (else 404, as for any unknown item id).
- A ``function_call`` produced by a ``store: false`` response after a reasoning item
  cannot be sent back without that reasoning item: 400 ``Item 'fc_...' of type
  'function_call' was provided without its required 'reasoning' item: 'rs_...'.``
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from typing import Any

from .errors import APIError
from .model import TURN_CHECKS, Turn, count_tokens, new_id
from .service import AFTER_REPLY, RESET_HOOKS

ENCRYPTED = "reasoning.encrypted_content"
REASONING_MODEL = re.compile(r"^(o\d|gpt-5)", re.IGNORECASE)
_KEY = secrets.token_bytes(32)


def seal(kind: str, payload: dict[str, Any]) -> str:
    """An opaque token of ``payload`` (readable back only by :func:`unseal`)."""
    body = base64.urlsafe_b64encode(json.dumps({"k": kind, **payload}).encode()).decode()
    mac = hmac.new(_KEY, body.encode(), hashlib.sha256).hexdigest()[:32]
    return f"emu1.{body}.{mac}"


def unseal(kind: str, token: Any) -> dict[str, Any] | None:
    """The payload of a token :func:`seal` made for ``kind``, or None."""
    if not isinstance(token, str) or token.count(".") != 2:
        return None
    tag, body, mac = token.split(".")
    good = hmac.new(_KEY, body.encode(), hashlib.sha256).hexdigest()[:32]
    if tag != "emu1" or not hmac.compare_digest(mac, good):
        return None
    payload = json.loads(base64.urlsafe_b64decode(body))
    return payload if payload.pop("k", None) == kind else None


def is_reasoning_model(model: Any) -> bool:
    return isinstance(model, str) and bool(REASONING_MODEL.match(model))


def _links(emulator: Any) -> dict[str, str]:
    """Output item id -> the reasoning item it needs (``store: false`` responses)."""
    links = getattr(emulator, "_reasoning_links", None)
    if links is None:
        links = emulator._reasoning_links = {}
    return links


def _reason(turn: Turn, response: dict[str, Any]) -> None:
    output = response.get("output") or []
    if not is_reasoning_model(turn.request.get("model")) or any(i.get("type") == "reasoning" for i in output):
        return
    settings = turn.request.get("reasoning") or {}
    thought = f"Reasoning about: {turn.last_user_text if not turn.trailing_tool_outputs else 'the tool results'}"
    item: dict[str, Any] = {"id": new_id("rs"), "type": "reasoning", "summary": []}
    if settings.get("summary") or settings.get("generate_summary"):
        item["summary"] = [{"type": "summary_text", "text": f"**Planning the answer**\n\n{thought}"}]
    if ENCRYPTED in (turn.request.get("include") or []):
        item["encrypted_content"] = seal("reasoning", {"id": item["id"], "thought": thought})
    output.insert(0, item)
    usage = response.get("usage")
    if usage:
        tokens = count_tokens(thought)
        usage["output_tokens_details"]["reasoning_tokens"] += tokens
        usage["output_tokens"] += tokens
        usage["total_tokens"] += tokens
    if turn.request.get("store") is False:
        links = _links(turn.emulator)
        for produced in output[1:]:
            if produced.get("type") == "function_call":
                links[produced["id"]] = item["id"]


def _check_chain(turn: Turn) -> None:
    raw = turn.request.get("input")
    if not isinstance(raw, list):
        return
    sent = set()
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            continue
        if item.get("type") == "reasoning":
            _check_reasoning_item(turn, item, index)
            sent.add(item.get("id"))
        needed = _links(turn.emulator).get(item.get("id") or "")
        if needed is not None and needed not in sent:
            raise APIError(400, f"Item '{item['id']}' of type '{item.get('type')}' was provided "
                           f"without its required 'reasoning' item: '{needed}'.", param=f"input[{index}]")


def _check_reasoning_item(turn: Turn, item: dict[str, Any], index: int) -> None:
    content = item.get("encrypted_content")
    if content is not None:
        opened = unseal("reasoning", content)
        if opened is None or opened.get("id") != item.get("id"):
            raise APIError(400, f"The encrypted content for item {item.get('id')} could not be verified.",
                           param=f"input[{index}].encrypted_content", code="invalid_encrypted_content")
        return
    try:
        turn.emulator.store.find_item(item.get("id") or "")
    except APIError:
        raise APIError(404, f"Item with id '{item.get('id')}' not found. Items are not persisted when "
                       "`store` is set to false. Try again with `store` set to true, or remove this "
                       "item from your input.", param=f"input[{index}]", code="not_found") from None


TURN_CHECKS.append(_check_chain)
AFTER_REPLY.append(_reason)
RESET_HOOKS.append(lambda emulator: _links(emulator).clear())
