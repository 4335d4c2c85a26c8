"""Request options the emulator acts on: reusable prompts and prompt caching.

- **Prompts.** A request with ``prompt: {id, version, variables}`` is answered (default
  rule, after a forced tool call and before structured output, unless the conversation
  ends with tool outputs) with ``[emulator] prompt ID@VERSION (NAME=VALUE, ...)``, then
  `` | turn N: TEXT`` as the echo rule when the request has user input. VERSION is
  ``latest`` when not given; a text variable shows its text, an image ``[image]``, a
  file ``[file NAME]``, in the request's order.
- **Prompt caching.** ``usage.input_tokens_details.cached_tokens`` counts the tokens of
  the longest run of leading context items (instructions first) that an earlier request
  with the same ``prompt_cache_key`` (or, without one, the same model) already sent,
  whole items only. Unlike the service, there is no 1024-token minimum.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .model import DEFAULT_RULES, Turn, count_tokens, item_text, message_item, part_text
from .service import AFTER_REPLY, RESET_HOOKS

MAX_PREFIXES = 100_000


def _value(value: Any) -> str:
    return value if isinstance(value, str) else part_text(value) if isinstance(value, dict) else str(value)


def _prompt_rule(turn: Turn) -> list[dict[str, Any]] | None:
    prompt = turn.request.get("prompt")
    if not isinstance(prompt, dict) or turn.trailing_tool_outputs or turn.text_format.get("type") == "json_schema":
        return None
    variables = prompt.get("variables") or {}
    shown = ", ".join(f"{name}={_value(value)}" for name, value in variables.items())
    text = f"[emulator] prompt {prompt.get('id')}@{prompt.get('version') or 'latest'} ({shown})"
    if turn.user_messages:
        text += f" | turn {len(turn.user_messages)}: {turn.last_user_text}"
    return [message_item(text)]


def _seen(emulator: Any) -> dict[str, set[str]]:
    seen = getattr(emulator, "_prompt_cache", None)
    if seen is None:
        seen = emulator._prompt_cache = {}
    return seen


def _cache(turn: Turn, response: dict[str, Any]) -> None:
    usage = response.get("usage")
    if not usage or turn.emulator is None:
        return
    key = turn.request.get("prompt_cache_key") or f"model:{turn.request.get('model')}"
    seen = _seen(turn.emulator).setdefault(key, set())
    if len(seen) > MAX_PREFIXES:  # a long-lived emulator: forget, as a cache does
        seen.clear()
    instructions = turn.request.get("instructions")
    pieces = [("instructions", instructions if isinstance(instructions, str) else "")]
    pieces += [(f"{i.get('type', 'message')}/{i.get('role', '')}", item_text(i)) for i in turn.conversation]
    digest, cached, hit = hashlib.sha256(), 0, True
    for kind, text in pieces:
        digest.update(f"{kind}\0{text}\0".encode("utf-8", "backslashreplace"))
        prefix = digest.hexdigest()
        if hit and prefix in seen:
            cached += count_tokens(text)
        else:
            hit = False
        seen.add(prefix)
    usage["input_tokens_details"]["cached_tokens"] = min(cached, usage["input_tokens"])


DEFAULT_RULES.append(_prompt_rule)
AFTER_REPLY.append(_cache)
RESET_HOOKS.append(lambda emulator: _seen(emulator).clear())
