"""The scripted deterministic model: conversation in, output items out.

Default rule (used when no script entry applies), checked in this order:

1. **Forced tool call.** If ``tool_choice`` is ``"required"`` (first function tool) or
   ``{"type": "function", "name": N}`` and the conversation does not end with a
   ``function_call_output``, the output is one ``function_call`` whose ``arguments`` are
   the JSON instance (rule below) of that function's ``parameters`` schema.
2. **Structured output.** If ``text.format.type`` is ``json_schema``, the reply text is
   ``json.dumps(instance)`` of a deterministic instance of ``text.format.schema``:
   objects get all their properties, in schema order; a string is the name of the
   property holding it (``"value"`` at the root, the array's name for array items) and,
   inside arrays, gets `` 1``, `` 2`` appended per item; formats ``date``, ``date-time``,
   ``email``, ``uri``, ``uuid`` get fixed valid values; integers ``1``; numbers ``1.0``
   (both clamped into ``minimum``/``maximum``); booleans ``true``; ``null`` ``null``;
   arrays have 2 items (clamped to ``minItems``/``maxItems``); ``enum`` takes its first
   value, ``const`` its value; ``anyOf``/``oneOf``/type lists take the first non-null
   alternative; ``allOf`` parts are merged; ``$ref`` to ``#/$defs/X`` or
   ``#/definitions/X`` is followed (recursion stops at depth 8 with ``null``/``[]``/``{}``).
3. **Tool results.** If the conversation ends with ``function_call_output`` items, the
   reply is ``"[emulator] tool results: " + "; ".join(outputs)`` over that trailing run
   of outputs, in order (list-valued outputs contribute their text parts joined by " ").
4. **Echo.** Otherwise ``"[emulator] turn {n}: {text}"`` where ``n`` is the number of
   ``user`` messages in the whole conversation (history reached through
   ``previous_response_id`` included) and ``text`` is the last user message's content:
   ``input_text`` parts joined by a space, an image part as ``[image]``, a file part as
   ``[file NAME]`` (or ``[file]``).

Extensions may add default rules after rule 1 (:data:`DEFAULT_RULES`, e.g. image
generation in :mod:`.images`), describe content parts differently (:data:`PART_DESCRIBERS`,
e.g. PDFs in :mod:`.inputs_report`) and check requests (:data:`TURN_CHECKS`).

With ``text.format.type == "json_object"``, the text from rule 3 or 4 is wrapped as
``{"reply": TEXT}``. Replies are one assistant ``message`` with one ``output_text``.

Usage is deterministic: ``tokens(s) = floor(words(s) * 1.3 + 0.5)`` with
``words = len(s.split())``; ``input_tokens`` counts ``instructions`` plus the text of
every conversation item, ``output_tokens`` the text of the output items; cached and
reasoning token counts are 0.

Scripted replies are dispatched through :data:`REPLY_KINDS`. A later module adds a kind
with one line: ``register_kind("mcp_call", handler, PayloadType)``; ``handler(value, turn)``
returns (or awaits to) a list of output items, or raises :class:`~.errors.APIError`.
"""
from __future__ import annotations

import copy
import inspect
import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .errors import APIError

Item = dict[str, Any]
Handler = Callable[[Any, "Turn"], Union[list[Item], Awaitable[list[Item]]]]


def new_id(prefix: str) -> str:
    """An id in the service's format, e.g. ``resp_<32 hex>``."""
    return f"{prefix}_{uuid.uuid4().hex}"


# ---------------------------------------------------------------- extension hooks

TURN_CHECKS: list[Callable[["Turn"], None]] = []
"""Run when the emulator builds the :class:`Turn` of a request, before a reply is chosen;
a check may raise :class:`~.errors.APIError` (e.g. 400 for an undecodable image)."""
PART_DESCRIBERS: dict[str, Callable[[dict[str, Any]], "str | None"]] = {}
"""Content part type -> the text the model "sees" for it (None: the built-in text)."""
DEFAULT_RULES: list[Callable[["Turn"], "list[Item] | None"]] = []
"""Extra default rules, tried in order after rule 1; the first non-None answer wins."""


# ---------------------------------------------------------------- the turn


@dataclass
class Turn:
    """Everything the model sees for one request."""

    request: dict[str, Any]
    conversation: list[Item]  # history + this request's input, normalized, with ids
    emulator: Any = None  # the Emulator, for kinds that need server state (files, ...)
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.emulator is not None:  # a request being served: run the extension checks
            for check in TURN_CHECKS:
                check(self)

    @property
    def metadata(self) -> dict[str, Any]:
        return self.request.get("metadata") or {}

    @property
    def step(self) -> str | None:
        return self.metadata.get("flowrun_step")

    @property
    def item(self) -> str | None:
        return self.metadata.get("flowrun_item")

    @property
    def user_messages(self) -> list[Item]:
        return [i for i in self.conversation if i.get("type", "message") == "message" and i.get("role") == "user"]

    @property
    def last_user_text(self) -> str:
        users = self.user_messages
        return message_text(users[-1]) if users else ""

    @property
    def trailing_tool_outputs(self) -> list[Item]:
        out: list[Item] = []
        for item in reversed(self.conversation):
            if item.get("type") not in ("function_call_output", "custom_tool_call_output"):
                break
            out.append(item)
        return out[::-1]

    @property
    def text_format(self) -> dict[str, Any]:
        return ((self.request.get("text") or {}).get("format")) or {"type": "text"}

    @property
    def function_tools(self) -> list[dict[str, Any]]:
        return [t for t in self.request.get("tools") or [] if t.get("type") == "function"]


def part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    kind = part.get("type")
    describe = PART_DESCRIBERS.get(kind)
    if describe is not None:
        described = describe(part)
        if described is not None:
            return described
    if kind in ("input_text", "output_text", "text"):
        return part.get("text", "")
    if kind == "refusal":
        return part.get("refusal", "")
    if kind == "input_image":
        return "[image]"
    if kind == "input_file":
        return f"[file {part['filename']}]" if part.get("filename") else "[file]"
    return ""


def message_text(item: Item) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    return " ".join(t for t in (part_text(p) for p in content or []) if t)


def output_text(output: Any) -> str:
    """Text of a tool output: a string, or a list of content parts."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return " ".join(t for t in (part_text(p) for p in output) if t)
    return json.dumps(output)


def item_text(item: Item) -> str:
    """All text in an item, for token counting."""
    kind = item.get("type", "message")
    if kind == "message":
        return message_text(item)
    parts = [item.get(k) for k in ("arguments", "input", "code", "name")]
    if "output" in item:
        parts.append(output_text(item["output"]))
    return " ".join(p for p in parts if isinstance(p, str))


# ---------------------------------------------------------------- output items


def message_item(text: str) -> Item:
    return {"id": new_id("msg"), "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def refusal_item(text: str) -> Item:
    return {"id": new_id("msg"), "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "refusal", "refusal": text}]}


def function_call_item(name: str, arguments: Any, call_id: str | None = None) -> Item:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": new_id("fc"), "type": "function_call", "status": "completed", "name": name,
            "arguments": args, "call_id": call_id or new_id("call")}


# ---------------------------------------------------------------- schema instances


def instance_from_schema(schema: Any, root: Any = None, name: str = "value",
                         suffix: str = "", depth: int = 0) -> Any:
    """A deterministic instance of a JSON Schema (see the module docstring, rule 2)."""
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return None
    if depth > 8 and ("$ref" in schema or schema.get("type") in ("object", "array")):
        return {"array": [], "object": {}}.get(schema.get("type")) if "$ref" not in schema else None
    if "const" in schema:
        return copy.deepcopy(schema["const"])
    if schema.get("enum"):
        return copy.deepcopy(schema["enum"][0])
    if "$ref" in schema:
        target = _resolve(schema["$ref"], root)
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        merged = {**target, **rest} if rest else target
        return instance_from_schema(merged, root, name, suffix, depth + 1)
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            options = [o for o in schema[key] if not (isinstance(o, dict) and o.get("type") == "null")]
            return instance_from_schema((options or schema[key])[0], root, name, suffix, depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {"type": "object", "properties": {}}
        for part in schema["allOf"]:
            part = _resolve(part["$ref"], root) if "$ref" in part else part
            merged["properties"].update(part.get("properties", {}))
            for k, v in part.items():
                if k not in ("properties", "allOf"):
                    merged.setdefault(k, v)
        merged["properties"].update(schema.get("properties", {}))
        return instance_from_schema(merged, root, name, suffix, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        return {prop: instance_from_schema(sub, root, prop, suffix, depth + 1)
                for prop, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        count = max(schema.get("minItems", 0), min(2, schema.get("maxItems", 2)))
        prefix = schema.get("prefixItems") or []
        out = []
        for i in range(max(count, len(prefix))):
            sub = prefix[i] if i < len(prefix) else schema.get("items", {})
            out.append(instance_from_schema(sub, root, name, f"{suffix} {i + 1}", depth + 1))
        return out
    if kind == "string":
        return _string(schema, name + suffix)
    if kind in ("integer", "number"):
        value = _clamp(1, schema)
        return int(math.ceil(value)) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    return None


def _resolve(ref: str, root: Any) -> dict[str, Any]:
    if not ref.startswith("#"):
        raise APIError(400, f"Unsupported $ref {ref!r} in schema (only local refs are supported).")
    node = root
    for part in filter(None, ref[1:].split("/")):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _clamp(value: float, schema: dict[str, Any]) -> float:
    if "minimum" in schema:
        value = max(value, schema["minimum"])
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        value = schema["exclusiveMinimum"] + 1
    if "maximum" in schema:
        value = min(value, schema["maximum"])
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        value = schema["exclusiveMaximum"] - 1
    return value


_FORMATS = {"date": "2024-01-01", "date-time": "2024-01-01T00:00:00Z", "time": "00:00:00",
            "uuid": "00000000-0000-4000-8000-000000000001"}


def _string(schema: dict[str, Any], text: str) -> str:
    fmt = schema.get("format")
    if fmt in _FORMATS:
        return _FORMATS[fmt]
    slug = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "value"
    if fmt == "email":
        return f"{slug}@example.com"
    if fmt in ("uri", "url"):
        return f"https://example.com/{slug}"
    if len(text) < schema.get("minLength", 0):
        text = text + "x" * (schema["minLength"] - len(text))
    if "maxLength" in schema:
        text = text[: schema["maxLength"]]
    return text


# ---------------------------------------------------------------- default rule and usage


def default_reply(turn: Turn) -> list[Item]:
    """The default rule (module docstring)."""
    forced = _forced_function(turn)
    if forced is not None and not turn.trailing_tool_outputs:
        args = instance_from_schema(forced.get("parameters") or {"type": "object"})
        return [function_call_item(forced["name"], args if args is not None else {})]
    for rule in DEFAULT_RULES:
        produced = rule(turn)
        if produced is not None:
            return produced
    fmt = turn.text_format
    if fmt.get("type") == "json_schema":
        return [message_item(json.dumps(instance_from_schema(fmt.get("schema") or {})))]
    outputs = turn.trailing_tool_outputs
    if outputs:
        text = "[emulator] tool results: " + "; ".join(output_text(o.get("output")) for o in outputs)
    else:
        text = f"[emulator] turn {len(turn.user_messages)}: {turn.last_user_text}"
    if fmt.get("type") == "json_object":
        text = json.dumps({"reply": text})
    return [message_item(text)]


def _forced_function(turn: Turn) -> dict[str, Any] | None:
    choice, tools = turn.request.get("tool_choice"), turn.function_tools
    if choice == "required" and tools:
        return tools[0]
    if isinstance(choice, dict) and choice.get("type") == "function":
        return next((t for t in tools if t.get("name") == choice.get("name")), None)
    return None


def count_tokens(text: str | None) -> int:
    return int(math.floor(len((text or "").split()) * 1.3 + 0.5))


def usage(turn: Turn, output: list[Item]) -> dict[str, Any]:
    inp = count_tokens(turn.request.get("instructions") if isinstance(turn.request.get("instructions"), str) else "")
    inp += sum(count_tokens(item_text(i)) for i in turn.conversation)
    out = sum(count_tokens(item_text(i)) for i in output)
    return {"input_tokens": inp, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": out, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": inp + out}


# ---------------------------------------------------------------- reply kinds


@dataclass
class ReplyKind:
    handler: Handler
    adapter: TypeAdapter | None  # validates the script payload at load time


REPLY_KINDS: dict[str, ReplyKind] = {}


def register_kind(name: str, handler: Handler, payload: Any = None) -> None:
    """Register a scripted reply kind; ``payload`` is a type pydantic can validate."""
    REPLY_KINDS[name] = ReplyKind(handler, TypeAdapter(payload) if payload is not None else None)


async def run_kind(name: str, value: Any, turn: Turn) -> list[Item]:
    result = REPLY_KINDS[name].handler(value, turn)
    if inspect.isawaitable(result):
        result = await result
    return list(result)


class FunctionCallSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    arguments: Union[dict[str, Any], list[Any], str] = {}
    call_id: str | None = None


class ErrorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: int = Field(500, ge=400, le=599)
    message: str = "Scripted error from the flowrun emulator."
    retry_after: float | None = None
    type: str | None = None
    code: str | None = None
    param: str | None = None


def _raise(spec: ErrorSpec, turn: Turn) -> list[Item]:
    raise APIError(spec.status, spec.message, type=spec.type, code=spec.code, param=spec.param,
                   retry_after=spec.retry_after)


register_kind("text", lambda text, turn: [message_item(text)], str)
# Structured output is JSON-serialized as given and NOT checked against the request's
# json_schema, so scripts can exercise a flow's handling of non-conforming output.
register_kind("output", lambda value, turn: [message_item(json.dumps(value))], Any)
register_kind("refusal", lambda text, turn: [refusal_item(text)], str)
register_kind("function_calls", lambda calls, turn: [
    function_call_item(c.name, c.arguments, c.call_id) for c in calls], list[FunctionCallSpec])
register_kind("error", _raise, ErrorSpec)
