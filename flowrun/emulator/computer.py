"""Computer use in the emulator: a scripted ``computer`` reply kind, and the checks the
service makes on ``computer_call_output`` inputs.

**Reply kind** ``computer`` - one ``computer_call`` per reply; a step's script lists the
actions in order and ends with the model's final message::

    steps:
      check:
        - computer: {action: {type: click, x: 120, y: 40}}
        - computer:
            action: {type: type, text: "Ada Lovelace"}
            reasoning: "I type the name into the field."    # optional reasoning summary
        - computer:
            action: {type: keypress, keys: [ENTER]}
            pending_safety_checks:                          # the model asks for a human
              - {code: malicious_instructions, message: "The page asks to ignore the task."}
        - text: "Submitted."

``action`` is any ``ComputerAction`` of the OpenAPI spec (click, double_click, drag,
keypress, move, screenshot, scroll, type, wait); it is checked when the script loads,
with the spec's defaults filled in (``button: left`` for click, ``keys: null`` where the
spec lists keys). ``wait`` may carry ``ms``. A safety check's ``id`` is generated when
not given (``cs_...``); ``call_id`` may be fixed. The reply is the ``computer_call``
item (``status: completed``), after a ``reasoning`` item when ``reasoning`` is given.
The request must offer a ``computer_use_preview`` tool (400 otherwise: a model cannot
call a tool it was not given).

**Checks** on every ``POST /responses`` (conversation = history through
``previous_response_id`` plus the new input), answered with 400 before a reply:

* every ``computer_call`` in the conversation has its ``computer_call_output``
  (``No tool output found for computer call X.``), and every output names a
  ``computer_call`` before it (``No computer call found for output with call_id X.``);
* the output of a call in the new input is ``{"type": "computer_screenshot",
  "image_url": "data:image/png;base64,..."}`` whose data decodes to a PNG (or a
  ``file_id`` of an uploaded PNG);
* ``acknowledged_safety_checks`` acknowledges every pending safety check of its call (by
  ``id``) and nothing else.

``current_url`` is not in the OpenAPI schema, but the service reads it (the schema is
open, so the request conforms); it stays in the journal body, and
:func:`computer_log` ``(emulator)`` lists every accepted output, oldest first:
``step``, ``call_id``, ``current_url``, ``width`` / ``height`` of the screenshot,
``acknowledged`` (safety check codes). There are no ``computer_call``-specific streaming
events in the spec: a streamed call is only ``output_item.added`` / ``.done``.
"""
from __future__ import annotations

import base64
import binascii
import struct
import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .conformance import problems
from .errors import APIError
from .files import file_store
from .model import TURN_CHECKS, Turn, new_id, register_kind
from .service import RESET_HOOKS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_DATA_URL = "data:image/png;base64,"
# action type -> defaults the spec expects in a computer_call's action
_ACTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "click": {"button": "left"},
    "double_click": {"keys": None},
}


# ---------------------------------------------------------------- the reply kind


class SafetyCheckSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    code: str
    message: str = ""


class ComputerSpec(BaseModel):
    """The payload of a ``computer`` script entry."""

    model_config = ConfigDict(extra="forbid")
    action: dict[str, Any]
    pending_safety_checks: list[SafetyCheckSpec] = Field(default_factory=list)
    call_id: str | None = None
    reasoning: str | None = None

    @field_validator("action")
    @classmethod
    def _conforming(cls, action: dict[str, Any]) -> dict[str, Any]:
        kind = action.get("type")
        if not isinstance(kind, str):
            raise ValueError("an action needs a type (click, double_click, drag, keypress, move, "
                             "screenshot, scroll, type, wait)")
        filled = dict(action)
        for key, value in _ACTION_DEFAULTS.get(kind, {}).items():
            filled.setdefault(key, value)
        found = problems("LegacyComputerAction", filled)
        if found:
            raise ValueError(f"not a valid computer action: {'; '.join(found[:3])}")
        return filled


def _has_computer_tool(turn: Turn) -> bool:
    return any(t.get("type") == "computer_use_preview" for t in turn.request.get("tools") or [])


def computer_reply(spec: ComputerSpec, turn: Turn) -> list[dict[str, Any]]:
    if not _has_computer_tool(turn):
        raise APIError(400, "The script answers with a computer call, but the request has no "
                       "computer_use_preview tool.", param="tools")
    items: list[dict[str, Any]] = []
    if spec.reasoning is not None:
        items.append({"id": new_id("rs"), "type": "reasoning",
                      "summary": [{"type": "summary_text", "text": spec.reasoning}]})
    checks = [{"id": c.id or new_id("cs"), "code": c.code, "message": c.message}
              for c in spec.pending_safety_checks]
    items.append({"id": new_id("cu"), "type": "computer_call", "call_id": spec.call_id or new_id("call"),
                  "action": dict(spec.action), "pending_safety_checks": checks, "status": "completed"})
    return items


register_kind("computer", computer_reply, ComputerSpec)


# ---------------------------------------------------------------- screenshots


def png_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of PNG bytes; ValueError if they are not a PNG."""
    if not data.startswith(PNG_SIGNATURE) or len(data) < 33 or data[12:16] != b"IHDR":
        raise ValueError("the image is not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    if not width or not height:
        raise ValueError("the PNG has no pixels")
    return width, height


def _screenshot_png(turn: Turn, output: Any, where: str) -> bytes:
    if not isinstance(output, dict) or output.get("type") != "computer_screenshot":
        raise _bad(f"{where}.output", "expected {\"type\": \"computer_screenshot\", \"image_url\": ...}")
    url, file_id = output.get("image_url"), output.get("file_id")
    if isinstance(url, str) and url:
        if not url.lower().startswith(_PNG_DATA_URL):
            raise _bad(f"{where}.output.image_url", "expected a data URL of a PNG "
                       "(data:image/png;base64,...)")
        try:
            return base64.b64decode(url[len(_PNG_DATA_URL):], validate=True)
        except (binascii.Error, ValueError):
            raise _bad(f"{where}.output.image_url", "the data URL is not valid base64") from None
    if isinstance(file_id, str) and file_id:
        stored = file_store(turn.emulator).get(file_id) if turn.emulator is not None else None
        if stored is None:
            raise _bad(f"{where}.output.file_id", f"no file with id '{file_id}'")
        return stored.data
    raise _bad(f"{where}.output", "a screenshot needs image_url or file_id")


def _bad(where: str, message: str) -> APIError:
    return APIError(400, f"Invalid value for '{where}': {message}", param=where, code="invalid_value")


# ---------------------------------------------------------------- the checks


def check_computer_outputs(turn: Turn) -> None:
    calls: dict[str, dict[str, Any]] = {}
    answered: set[str] = set()
    for item in turn.conversation:
        kind = item.get("type")
        if kind == "computer_call":
            calls[item.get("call_id")] = item
        elif kind == "computer_call_output":
            call_id = item.get("call_id")
            if call_id not in calls:
                raise APIError(400, f"No computer call found for output with call_id {call_id}.",
                               param="input")
            answered.add(call_id)
    missing = [c for c in calls if c not in answered]
    if missing:
        raise APIError(400, f"No tool output found for computer call {missing[0]}.", param="input")

    raw = turn.request.get("input")
    if not isinstance(raw, list):
        return
    entries = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or item.get("type") != "computer_call_output":
            continue
        where = f"input[{index}]"
        data = _screenshot_png(turn, item.get("output"), where)
        try:
            width, height = png_size(data)
        except ValueError as exc:
            raise _bad(f"{where}.output", str(exc)) from None
        call = calls[item["call_id"]]
        pending = {c.get("id"): c for c in call.get("pending_safety_checks") or []}
        acked = item.get("acknowledged_safety_checks") or []
        acked_ids = [a.get("id") for a in acked if isinstance(a, dict)]
        unknown = [a for a in acked_ids if a not in pending]
        if unknown:
            raise _bad(f"{where}.acknowledged_safety_checks",
                       f"safety check '{unknown[0]}' is not pending for call {item['call_id']}")
        unacked = [c for c in pending if c not in acked_ids]
        if unacked:
            check = pending[unacked[0]]
            raise APIError(400, f"Pending safety check '{unacked[0]}' ({check.get('code')}) of computer call "
                           f"{item['call_id']} was not acknowledged; send it back in "
                           "acknowledged_safety_checks to proceed.",
                           param=f"{where}.acknowledged_safety_checks", code="safety_check_not_acknowledged")
        entries.append({"step": turn.step, "item": turn.item, "call_id": item["call_id"],
                        "current_url": item.get("current_url"), "width": width, "height": height,
                        "acknowledged": [pending[a].get("code") for a in acked_ids]})
    if entries and turn.emulator is not None:
        with _lock:
            _log(turn.emulator).extend(entries)


_lock = threading.Lock()


def _log(emulator: Any) -> list[dict[str, Any]]:
    if not hasattr(emulator, "_computer_log"):
        emulator._computer_log = []
    return emulator._computer_log


def computer_log(emulator: Any) -> list[dict[str, Any]]:
    """Every accepted ``computer_call_output``, oldest first (see the module docstring)."""
    with _lock:
        return [dict(e) for e in _log(emulator)]


def _reset(emulator: Any) -> None:
    with _lock:
        _log(emulator).clear()


TURN_CHECKS.append(check_computer_outputs)
RESET_HOOKS.append(_reset)
