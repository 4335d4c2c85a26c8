"""Reading a response: its text, refusals, reasoning summary, and structured output.

``output_schema`` is sent as a strict ``text.format`` json_schema. Strict mode wants every
object closed and every property required, so :func:`strict_schema` closes objects and
makes optional properties nullable (``null`` joins their ``type`` and any ``enum``); the
parsed result is validated against it.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

from .errors import OutputError


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` that the strict structured-output mode accepts."""
    out = copy.deepcopy(schema)
    _close(out)
    return out


def _close(node: Any) -> None:
    if isinstance(node, list):
        for n in node:
            _close(n)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "object" or "properties" in node:
        props = node.setdefault("properties", {})
        required = set(node.get("required", []))
        for name, sub in props.items():
            if name not in required and isinstance(sub, dict):
                t = sub.get("type")
                if isinstance(t, str) and t != "null":
                    sub["type"] = [t, "null"]
                elif isinstance(t, list) and "null" not in t:
                    sub["type"] = [*t, "null"]
                if isinstance(sub.get("enum"), list) and None not in sub["enum"]:
                    sub["enum"] = [*sub["enum"], None]  # else the enum still forbids null
        node["required"] = list(props)
        node.setdefault("additionalProperties", False)
    for key, value in node.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            for sub in value.values():
                _close(sub)
        elif isinstance(value, (dict, list)) and key not in ("enum", "const", "default"):
            _close(value)


def text_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": {
            "type": "json_schema",
            "name": "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:64],
            "schema": strict_schema(schema),
            "strict": True,
        }
    }


def output_text(response: dict[str, Any]) -> str:
    """All ``output_text`` of the response's messages, joined."""
    parts = []
    for item in response.get("output") or []:
        if item.get("type") == "message":
            for c in item.get("content") or []:
                if c.get("type") == "output_text":
                    parts.append(c.get("text", ""))
    return "".join(parts)


def refusal(response: dict[str, Any]) -> str | None:
    for item in response.get("output") or []:
        if item.get("type") == "message":
            for c in item.get("content") or []:
                if c.get("type") == "refusal":
                    return c.get("refusal") or "refused"
    return None


def reasoning_summary(response: dict[str, Any]) -> str | None:
    texts = []
    for item in response.get("output") or []:
        if item.get("type") == "reasoning":
            for s in item.get("summary") or []:
                if s.get("text"):
                    texts.append(s["text"])
    return "\n".join(texts) or None


def parse_structured(
    text: str, schema: dict[str, Any], step_id: str, redact: Callable[[str], str] = str
) -> Any:
    """Parse and validate a structured output; any problem is an :class:`OutputError`.
    ``redact`` masks secrets in the quoted text (before it is shortened)."""
    import jsonschema

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OutputError(
            f"structured output is not valid JSON ({exc.msg} at char {exc.pos}): {redact(text)[:200]!r}",
            step_id,
        ) from None
    try:
        jsonschema.validate(value, strict_schema(schema))
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise OutputError(
            f"structured output does not match output_schema at {where}: {exc.message}", step_id
        ) from None
    return value
