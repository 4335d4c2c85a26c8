"""Function calling checks and a reply kind for the emulator, as the service behaves.

**Checks** (every ``POST /responses``, on the whole conversation: history reached through
``previous_response_id`` plus the new input), answered with 400 before a reply is chosen:

* every ``function_call_output`` names the ``call_id`` of a ``function_call`` earlier in
  the conversation - else ``No tool call found for function call output with call_id X.``;
* every ``function_call`` has its ``function_call_output`` - else
  ``No tool output found for function call X.`` (a client that continues without
  answering a call, or resends a conversation with a call but not its output);
* a function tool sent with ``strict: true`` has a strict-mode schema: every object has
  ``additionalProperties: false`` and lists all its properties in ``required``, no
  ``default`` keyword (Azure refuses it) and no keywords beside a ``$ref``.
  (``strict`` left out is not checked: the service then decides for itself.)

**Reply kind** ``default_rule`` - ``{default_rule: true}`` in a script answers with the
model's default rule, e.g. ``[emulator] tool results: ...`` after function outputs, so a
script can call functions and then show what they returned::

    steps:
      weather:
        - function_calls: [{name: get_weather, arguments: {city: Paris}}]
        - default_rule: true
"""
from __future__ import annotations

from typing import Any, Literal

from .errors import APIError
from .model import TURN_CHECKS, Turn, default_reply, register_kind


def check_call_outputs(turn: Turn) -> None:
    calls: set[str] = set()
    pending: list[str] = []
    for item in turn.conversation:
        kind = item.get("type")
        if kind == "function_call":
            calls.add(item.get("call_id"))
            pending.append(item.get("call_id"))
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if call_id not in calls:
                raise APIError(400, f"No tool call found for function call output with call_id {call_id}.",
                               param="input")
            pending = [p for p in pending if p != call_id]
    if pending:
        raise APIError(400, f"No tool output found for function call {pending[0]}.", param="input")


def _strict_problem(node: Any, context: tuple[Any, ...]) -> str | None:
    if not isinstance(node, dict):
        return None
    where = f"In context={context!r}, "
    if "$ref" in node and len(node) > 1:
        others = sorted(k for k in node if k != "$ref")
        return f"{where}$ref cannot have keywords {set(others)!r}."
    if "default" in node:
        return f"{where}'default' is not permitted."
    kind = node.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if "object" in kinds or "properties" in node:
        if node.get("additionalProperties") is not False:
            return f"{where}'additionalProperties' is required to be supplied and to be false."
        props = node.get("properties") or {}
        missing = [k for k in props if k not in (node.get("required") or [])]
        if missing:
            return (f"{where}'required' is required to be supplied and to be an array including "
                    f"every key in properties. Missing '{missing[0]}'.")
        for key, sub in props.items():
            problem = _strict_problem(sub, (*context, "properties", key))
            if problem:
                return problem
    if isinstance(node.get("items"), dict):
        problem = _strict_problem(node["items"], (*context, "items"))
        if problem:
            return problem
    for index, sub in enumerate(node.get("anyOf") or []):
        problem = _strict_problem(sub, (*context, "anyOf", index))
        if problem:
            return problem
    for defs in ("$defs", "definitions"):
        for key, sub in (node.get(defs) or {}).items():
            problem = _strict_problem(sub, (*context, defs, key))
            if problem:
                return problem
    return None


def check_strict_schemas(turn: Turn) -> None:
    for index, tool in enumerate(turn.request.get("tools") or []):
        if tool.get("type") != "function" or tool.get("strict") is not True:
            continue
        problem = _strict_problem(tool.get("parameters") or {"type": "object"}, ())
        if problem:
            raise APIError(400, f"Invalid schema for function '{tool.get('name')}': {problem}",
                           param=f"tools[{index}].parameters", code="invalid_function_parameters")


TURN_CHECKS.extend([check_call_outputs, check_strict_schemas])
register_kind("default_rule", lambda value, turn: default_reply(turn), Literal[True])
