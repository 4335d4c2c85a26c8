"""Output and input items of the Responses API as the report shows them: one small view
per item type (text, code and logs, tool arguments and outputs, approvals, images), the
raw item kept as a collapsible tree, large payloads (base64 images, encrypted reasoning)
replaced by a short note."""

from __future__ import annotations

import json
from typing import Any

from ..secrets import Redactor
from .embed import Embedder

PAYLOAD_CHARS = 300
"""A string longer than this under a payload key (or any data URL) is replaced by a note."""
PAYLOAD_KEYS = frozenset({"result", "file_data", "encrypted_content", "image_url", "partial_image_b64"})
MAX_TREE_TEXT = 20_000
"""Characters of one string kept in a tree."""


def strip_payloads(value: Any, redactor: Redactor, key: str | None = None) -> Any:
    """``value`` masked, with base64 payloads noted instead of kept and long text cut
    (masked before it is cut)."""
    if isinstance(value, str):
        if (key in PAYLOAD_KEYS and len(value) > PAYLOAD_CHARS) or (
                value.startswith("data:") and len(value) > PAYLOAD_CHARS):
            kind = value[5:value.find(";")] if value.startswith("data:") and ";" in value[:80] else "data"
            return f"[{kind}, {len(value):,} characters, not shown]"
        return redactor.truncate(value, MAX_TREE_TEXT, marker=" ... [cut]")
    if isinstance(value, dict):
        return {k: strip_payloads(v, redactor, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strip_payloads(v, redactor, key) for v in value]
    return value


def _json_text(text: Any) -> Any:
    """Function arguments / outputs: parsed when they are JSON, else the text."""
    if isinstance(text, str):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def message_text(item: dict[str, Any]) -> str:
    parts = []
    for part in item.get("content") or []:
        if isinstance(part, dict):
            if part.get("type") in ("output_text", "input_text", "text"):
                parts.append(part.get("text") or "")
            elif part.get("type") == "refusal":
                parts.append("[refusal] " + (part.get("refusal") or ""))
    if isinstance(item.get("content"), str):
        parts.append(item["content"])
    return "\n".join(parts)


def input_parts(value: Any, embed: Embedder, redactor: Redactor) -> list[dict[str, Any]]:
    """A request's ``input`` as parts: ``{role, text}``, ``{role, image}``, ``{role, file}``,
    or ``{role, item}`` (any other item, as a tree)."""
    if isinstance(value, str):
        return [{"role": "user", "text": redactor.text(value)}]
    out: list[dict[str, Any]] = []
    for item in value or []:
        if not isinstance(item, dict):
            continue
        role = item.get("role") or item.get("type") or "item"
        content = item.get("content")
        if item.get("type", "message") == "message" and isinstance(content, str):
            out.append({"role": role, "text": redactor.text(content)})
            continue
        if item.get("type", "message") == "message" and isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                kind = part.get("type")
                if kind in ("input_text", "output_text", "text"):
                    out.append({"role": role, "text": redactor.text(part.get("text") or "")})
                elif kind == "input_image":
                    url = part.get("image_url")
                    if isinstance(url, str) and url.startswith("data:"):
                        out.append({"role": role, "image": embed.data_url(url, "input image")})
                    else:
                        out.append({"role": role, "note": "image " + str(url or part.get("file_id"))})
                elif kind == "input_file":
                    name = part.get("filename") or part.get("file_id") or part.get("file_url") or "file"
                    out.append({"role": role, "note": f"file {redactor.text(str(name))}"})
                else:
                    out.append({"role": role, "item": strip_payloads(part, redactor)})
            continue
        out.append({"role": role, "item": strip_payloads(item, redactor)})
    return out


def item_view(item: dict[str, Any], ctx: dict[str, Any], embed: Embedder, redactor: Redactor) -> dict[str, Any]:
    """One output item: ``{type, title, text?, code?, logs?, args?, output?, error?,
    decision?, image?, raw}``. ``ctx``: the step's tool calls by call id, approvals by
    request id and saved images by item id."""
    kind = str(item.get("type") or "item")
    view: dict[str, Any] = {"type": kind, "title": kind.replace("_", " ")}
    if kind == "message":
        view["title"] = "message"
        view["text"] = redactor.text(message_text(item))
    elif kind == "reasoning":
        summary = [s.get("text", "") for s in item.get("summary") or [] if isinstance(s, dict)]
        view["text"] = redactor.text("\n".join(summary)) if summary else "(no summary)"
    elif kind in ("function_call", "custom_tool_call"):
        view["title"] = f"{'function' if kind == 'function_call' else 'custom tool'} {item.get('name')}"
        view["args"] = strip_payloads(_json_text(item.get("arguments", item.get("input"))), redactor)
        call = ctx["calls"].get(item.get("call_id"))
        if call is not None:
            record = call.get("record") or {}
            if record.get("error"):
                view["error"] = redactor.text(record["error"])
            elif call.get("output") is not None or record.get("output") is not None:
                view["output"] = strip_payloads(_json_text(call.get("output") or record.get("output")), redactor)
            if record.get("duration_s") is not None:
                view["duration"] = record["duration_s"]
            if record.get("kind"):
                view["title"] += f" ({record['kind']})"
        elif kind == "function_call":
            view["note"] = "no output recorded (the call did not finish)"
    elif kind == "mcp_call":
        view["title"] = f"MCP {item.get('server_label')}.{item.get('name')}"
        view["args"] = strip_payloads(_json_text(item.get("arguments")), redactor)
        if item.get("error"):
            view["error"] = redactor.text(str(item["error"]))
        else:
            view["output"] = strip_payloads(_json_text(item.get("output")), redactor)
    elif kind == "mcp_list_tools":
        names = [t.get("name") for t in item.get("tools") or [] if isinstance(t, dict)]
        view["title"] = f"MCP {item.get('server_label')}: listed tools"
        view["text"] = ", ".join(map(str, names)) or "(none)"
    elif kind == "mcp_approval_request":
        view["title"] = f"MCP approval request {item.get('server_label')}.{item.get('name')}"
        view["args"] = strip_payloads(_json_text(item.get("arguments")), redactor)
        entry = ctx["approvals"].get(item.get("id"))
        if entry is not None:
            view["decision"] = {"decision": entry.get("decision"), "by": entry.get("decided_by"),
                                "message": redactor.text(entry.get("message") or "")}
        else:
            view["note"] = "no decision recorded"
    elif kind == "code_interpreter_call":
        view["title"] = "code interpreter"
        view["code"] = redactor.text(item.get("code") or "")
        logs, images = [], []
        for out in item.get("outputs") or []:
            if not isinstance(out, dict):
                continue
            if out.get("type") == "logs":
                logs.append(out.get("logs") or "")
            elif out.get("type") == "image" and isinstance(out.get("url"), str) and out["url"].startswith("data:"):
                images.append(embed.data_url(out["url"], "code interpreter image"))
        view["logs"] = redactor.text("\n".join(logs))
        if images:
            view["images"] = images
    elif kind == "image_generation_call":
        view["title"] = "image generation"
        saved = ctx["images"].get(item.get("id"))
        if saved is not None:
            view["image"] = embed.image(saved.get("path"), saved.get("revised_prompt"))
        if item.get("revised_prompt"):
            view["text"] = redactor.text(item["revised_prompt"])
    elif kind == "web_search_call":
        action = item.get("action") or {}
        view["title"] = "web search"
        view["text"] = redactor.text(str(action.get("query") or action.get("url") or action.get("type") or ""))
    elif kind == "file_search_call":
        view["title"] = "file search"
        view["text"] = redactor.text("; ".join(map(str, item.get("queries") or [])))
    elif kind == "computer_call":
        view["title"] = "computer action"
        view["args"] = strip_payloads(item.get("action") or item.get("actions"), redactor)
    view["raw"] = strip_payloads(item, redactor)
    return view
