"""Message content for spans (opt-in): Responses input and output items in the GenAI
conventions' message shapes (``gen_ai.input.messages``, ``gen_ai.output.messages``,
``gen_ai.system_instructions``), as JSON text masked by the run's redactor.

Each message is ``{"role", "parts": [...]}``; parts are ``text``, ``tool_call``,
``tool_call_response``, ``reasoning``, ``uri`` / ``file`` (images and files, never their
bytes), or the item's own type for what has no conventional shape. Long strings inside
items (screenshots, file data) are cut; the whole text is masked, then cut to
:data:`MAX_CONTENT` characters.
"""

from __future__ import annotations

import json
from typing import Any

MAX_CONTENT = 32_000  # characters per attribute
MAX_STRING = 2_000  # characters per string inside an item of no conventional shape

_TEXT_PARTS = ("input_text", "output_text", "text", "summary_text", "reasoning_text")


def _parse(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def _shorten(value: Any) -> Any:
    if isinstance(value, str):
        if value.startswith("data:"):  # an inline screenshot, image or file: never its bytes
            return f"data:(inline, {len(value)} characters)"
        return value if len(value) <= MAX_STRING else f"{value[:200]}... [{len(value)} characters]"
    if isinstance(value, dict):
        return {k: _shorten(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v) for v in value]
    return value


def _part(part: Any) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "content": part}
    kind = part.get("type", "")
    if kind in _TEXT_PARTS:
        return {"type": "text", "content": part.get("text", "")}
    if kind == "refusal":
        return {"type": "text", "content": part.get("refusal", "")}
    if kind == "input_image":
        url = part.get("image_url") or ""
        if part.get("file_id"):
            return {"type": "file", "modality": "image", "file_id": part["file_id"]}
        return {"type": "uri", "modality": "image",
                "uri": "data:(inline image)" if url.startswith("data:") else url}
    if kind == "input_file":
        if part.get("file_id"):
            return {"type": "file", "modality": "document", "file_id": part["file_id"]}
        if part.get("file_url"):
            return {"type": "uri", "modality": "document", "uri": part["file_url"]}
        return {"type": "file", "modality": "document", "file_id": part.get("filename") or "(inline file)"}
    return {"type": kind or "generic", **_shorten({k: v for k, v in part.items() if k != "type"})}


def _message(item: dict[str, Any]) -> dict[str, Any]:
    """One input or output item as a message."""
    kind = item.get("type") or "message"
    if kind == "message":
        content = item.get("content")
        parts = [_part(content)] if isinstance(content, str) else [_part(p) for p in content or []]
        return {"role": item.get("role", "user"), "parts": parts}
    if kind in ("function_call", "custom_tool_call"):
        return {"role": "assistant", "parts": [{
            "type": "tool_call", "id": item.get("call_id"), "name": item.get("name"),
            "arguments": _parse(item.get("arguments", item.get("input")))}]}
    if kind in ("function_call_output", "custom_tool_call_output"):
        return {"role": "tool", "parts": [{
            "type": "tool_call_response", "id": item.get("call_id"),
            "result": _parse(_shorten(item.get("output")))}]}
    if kind == "reasoning":
        text = " ".join(p.get("text", "") for p in item.get("summary") or [] if isinstance(p, dict))
        return {"role": "assistant", "parts": [{"type": "reasoning", "content": text}]}
    role = "tool" if kind.endswith("_output") else "assistant"
    return {"role": role, "parts": [{"type": kind, **_shorten(
        {k: v for k, v in item.items() if k not in ("type", "encrypted_content")})}]}


def input_messages(value: Any) -> list[dict[str, Any]]:
    """The request's ``input`` (text or items) as messages, in the order sent."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "parts": [{"type": "text", "content": value}]}]
    return [_message(item) for item in value if isinstance(item, dict)]


def output_messages(response: dict[str, Any], finish_reason: str) -> list[dict[str, Any]]:
    """The response's output as one assistant message (one choice) with every part."""
    parts: list[dict[str, Any]] = []
    for item in response.get("output") or []:
        if isinstance(item, dict):
            parts.extend(_message(item)["parts"])
    return [{"role": "assistant", "parts": parts, "finish_reason": finish_reason}]


def system_instructions(instructions: Any) -> list[dict[str, Any]] | None:
    if isinstance(instructions, str) and instructions:
        return [{"type": "text", "content": instructions}]
    if isinstance(instructions, list):
        return [p for m in input_messages(instructions) for p in m["parts"]]
    return None


def as_attribute(value: Any, redactor: Any) -> str:
    """JSON text for a span attribute: masked first, then cut."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return redactor.truncate(text, MAX_CONTENT, marker="... [truncated]")
