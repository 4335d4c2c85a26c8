"""Workspace tools in the emulator: scripted ``apply_patch_call``, ``shell_call``,
``local_shell_call`` and ``custom_tool_call`` replies, and the checks the service makes on
their outputs.

**Reply kinds** (each takes one call or a list of calls, returned as parallel items)::

    steps:
      fix:
        - shell_call: {commands: ["pytest -q"], timeout_ms: 60000}   # or just "pytest -q"
        - apply_patch_call:
            type: update_file                 # create_file / update_file / delete_file
            path: calc.py
            diff: "@@ def add(a, b):\\n-    return a - b\\n+    return a + b\\n"
        - local_shell_call: {command: [pytest, -q]}                   # api: local_shell
        - custom_tool_call: {name: set_version, input: "1.2.3"}
        - default_rule: true                  # "[emulator] tool results: ..." of the outputs

The request must offer the tool (``apply_patch``, ``shell``, ``local_shell``, or the
``custom`` tool of that name), else 400. A custom tool's scripted ``input`` is checked
against the tool's grammar from the request (``regex``: the whole input must match;
``lark``: it must parse, with the optional ``lark`` package); a mismatch is a 400 naming
the script entry, since the real model's output always follows the grammar.

**Checks** on every ``POST /responses`` (conversation = history plus new input): every
call has its output and every output names an earlier call (``No tool output found for
shell call X.``); a ``shell_call_output`` has one entry per command of its call; a
custom tool's grammar compiles (``Invalid grammar ...``).

**Default rule**: when the conversation ends with ``apply_patch_call_output`` or
``shell_call_output`` items, the reply is ``[emulator] tool results: `` followed by, per
output, ``STATUS: OUTPUT`` (apply_patch) or ``exit N: STDOUT`` per command (shell).
"""
from __future__ import annotations

import json
import re
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from .conformance import problems
from .errors import APIError
from .events import ADDED_FORMS, ITEM_EVENTS, chunks
from .model import DEFAULT_RULES, TURN_CHECKS, Turn, new_id, register_kind

# call type -> (output type, key naming the call in the output, words for messages)
PAIRS = {
    "apply_patch_call": ("apply_patch_call_output", "call_id", "apply patch"),
    "shell_call": ("shell_call_output", "call_id", "shell"),
    "local_shell_call": ("local_shell_call_output", "id", "local shell"),
    "custom_tool_call": ("custom_tool_call_output", "call_id", "custom tool"),
}


def _tools(turn: Turn, kind: str) -> list[dict[str, Any]]:
    return [t for t in turn.request.get("tools") or [] if t.get("type") == kind]


def _need_tool(turn: Turn, kind: str) -> None:
    if not _tools(turn, kind):
        raise APIError(400, f"The script answers with a {kind} call, but the request has no {kind} tool.",
                       param="tools")


# ---------------------------------------------------------------- apply_patch


class PatchSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["create_file", "update_file", "delete_file"]
    path: str = Field(min_length=1)
    diff: str | None = None
    call_id: str | None = None


def patch_reply(specs: Union[PatchSpec, list[PatchSpec]], turn: Turn) -> list[dict[str, Any]]:
    _need_tool(turn, "apply_patch")
    out = []
    for spec in specs if isinstance(specs, list) else [specs]:
        op: dict[str, Any] = {"type": spec.type, "path": spec.path}
        if spec.type != "delete_file":
            op["diff"] = spec.diff or ""
        found = problems("ApplyPatchToolCall", {"type": "apply_patch_call", "id": "apc_x", "call_id": "c",
                                                "status": "completed", "operation": op})
        if found:
            raise APIError(400, f"The scripted apply_patch_call is not valid: {found[0]}")
        out.append({"type": "apply_patch_call", "id": new_id("apc"), "call_id": spec.call_id or new_id("call"),
                    "status": "completed", "operation": op})
    return out


# ---------------------------------------------------------------- shell


class ShellSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    commands: list[str] = Field(min_length=1)
    timeout_ms: int | None = Field(None, ge=1)
    max_output_length: int | None = Field(None, ge=1)
    call_id: str | None = None


def _shell_shorthand(value: Any) -> Any:
    if isinstance(value, str):
        return {"commands": [value]}
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return {"commands": value}
    return value


def shell_reply(value: Any, turn: Turn) -> list[dict[str, Any]]:
    _need_tool(turn, "shell")
    specs = value if isinstance(value, list) and value and not all(isinstance(v, str) for v in value) else [value]
    out = []
    for raw in specs:
        spec = raw if isinstance(raw, ShellSpec) else ShellSpec.model_validate(_shell_shorthand(raw))
        out.append({"type": "shell_call", "id": new_id("sh"), "call_id": spec.call_id or new_id("call"),
                    "action": {"commands": list(spec.commands), "timeout_ms": spec.timeout_ms,
                               "max_output_length": spec.max_output_length},
                    "status": "completed", "environment": {"type": "local"}})
    return out


class LocalShellSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: list[str] = Field(min_length=1)
    timeout_ms: int | None = Field(None, ge=1)
    env: dict[str, str] = Field(default_factory=dict)
    call_id: str | None = None


def local_shell_reply(specs: Union[LocalShellSpec, list[LocalShellSpec]], turn: Turn) -> list[dict[str, Any]]:
    _need_tool(turn, "local_shell")
    return [{"type": "local_shell_call", "id": new_id("lsh"), "call_id": s.call_id or new_id("call"),
             "action": {"type": "exec", "command": list(s.command), "env": dict(s.env), "timeout_ms": s.timeout_ms},
             "status": "completed"}
            for s in (specs if isinstance(specs, list) else [specs])]


# ---------------------------------------------------------------- custom tools and grammars


class CustomCallSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    input: str
    call_id: str | None = None


def grammar_problem(syntax: str, definition: str, text: str | None = None) -> str | None:
    """Why ``definition`` does not compile, or (given ``text``) why ``text`` does not
    follow it; None when all is well."""
    if syntax == "regex":
        try:
            pattern = re.compile(definition)
        except re.error as exc:
            return f"Invalid grammar definition (regex): {exc}"
        if text is not None and pattern.fullmatch(text) is None:
            return f"the input {text[:80]!r} does not match the regular expression {definition[:80]!r}"
        return None
    try:
        import lark
    except ImportError:
        return ("a lark grammar needs the lark package in the emulator (pip install 'flowrun[grammar]')"
                if text is not None else None)
    try:
        parser = lark.Lark(definition, start="start")
    except lark.exceptions.LarkError as exc:
        return f"Invalid grammar definition (lark): {str(exc).strip().splitlines()[0]}"
    if text is not None:
        try:
            parser.parse(text)
        except lark.exceptions.LarkError as exc:
            return f"the input {text[:80]!r} does not follow the lark grammar: {str(exc).strip().splitlines()[0]}"
    return None


def custom_reply(specs: Union[CustomCallSpec, list[CustomCallSpec]], turn: Turn) -> list[dict[str, Any]]:
    out = []
    for spec in specs if isinstance(specs, list) else [specs]:
        tool = next((t for t in _tools(turn, "custom") if t.get("name") == spec.name), None)
        if tool is None:
            raise APIError(400, f"The script calls custom tool {spec.name!r}, but the request has no "
                           "custom tool of that name.", param="tools")
        fmt = tool.get("format") or {"type": "text"}
        if fmt.get("type") == "grammar":
            problem = grammar_problem(fmt.get("syntax", ""), fmt.get("definition", ""), spec.input)
            if problem:
                raise APIError(400, f"The scripted custom_tool_call for {spec.name!r} breaks the tool's "
                               f"grammar: {problem}", code="script_grammar_mismatch")
        out.append({"type": "custom_tool_call", "id": new_id("ctc"), "call_id": spec.call_id or new_id("call"),
                    "name": spec.name, "input": spec.input})
    return out


def _custom_events(item: dict[str, Any], index: int) -> list[dict[str, Any]]:
    base = {"item_id": item["id"], "output_index": index}
    events = [{"type": "response.custom_tool_call_input.delta", **base, "delta": piece}
              for piece in chunks(item["input"])]
    events.append({"type": "response.custom_tool_call_input.done", **base, "input": item["input"]})
    return events


# ---------------------------------------------------------------- checks


def check_pairs(turn: Turn) -> None:
    calls: dict[str, dict[str, Any]] = {}
    pending: list[tuple[str, str]] = []
    outputs = {out: (call, key, words) for call, (out, key, words) in PAIRS.items()}
    for item in turn.conversation:
        kind = item.get("type")
        if kind in PAIRS:
            calls[item.get("call_id")] = item
            pending.append((item.get("call_id"), PAIRS[kind][2]))
        elif kind in outputs:
            call_type, key, words = outputs[kind]
            call_id = item.get(key)
            call = calls.get(call_id)
            if call is None or call.get("type") != call_type:
                raise APIError(400, f"No {words} call found for output with call_id {call_id}.", param="input")
            if kind == "shell_call_output":
                want = len((call.get("action") or {}).get("commands") or [])
                got = len(item.get("output") or [])
                if want != got:
                    raise APIError(400, f"The shell_call_output for {call_id} has {got} output entries; "
                                   f"its call ran {want} command{'s' if want != 1 else ''}.", param="input")
            pending = [p for p in pending if p[0] != call_id]
    if pending:
        call_id, words = pending[0]
        raise APIError(400, f"No tool output found for {words} call {call_id}.", param="input")


def check_grammars(turn: Turn) -> None:
    for index, tool in enumerate(turn.request.get("tools") or []):
        fmt = tool.get("format") if tool.get("type") == "custom" else None
        if isinstance(fmt, dict) and fmt.get("type") == "grammar":
            problem = grammar_problem(fmt.get("syntax", ""), fmt.get("definition", ""))
            if problem:
                raise APIError(400, problem, param=f"tools[{index}].format.definition", code="invalid_grammar")


# ---------------------------------------------------------------- default rule


def _trailing(turn: Turn) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in reversed(turn.conversation):
        if item.get("type") not in ("apply_patch_call_output", "shell_call_output", "function_call_output",
                                    "custom_tool_call_output"):
            break
        out.append(item)
    return out[::-1]


def _describe(item: dict[str, Any]) -> str:
    if item.get("type") == "apply_patch_call_output":
        return f"{item.get('status')}: {item.get('output') or ''}".strip()
    if item.get("type") == "shell_call_output":
        parts = []
        for entry in item.get("output") or []:
            outcome = entry.get("outcome") or {}
            status = "timeout" if outcome.get("type") == "timeout" else f"exit {outcome.get('exit_code')}"
            text = (entry.get("stdout") or "").strip() or (entry.get("stderr") or "").strip()
            parts.append(f"{status}: {text}")
        return " | ".join(parts)
    output = item.get("output")
    return output if isinstance(output, str) else json.dumps(output)


def workspace_results_rule(turn: Turn) -> list[dict[str, Any]] | None:
    trailing = _trailing(turn)
    if not any(i.get("type") in ("apply_patch_call_output", "shell_call_output") for i in trailing):
        return None
    from .model import message_item

    return [message_item("[emulator] tool results: " + "; ".join(_describe(i) for i in trailing))]


register_kind("apply_patch_call", patch_reply, Union[PatchSpec, list[PatchSpec]])
register_kind("shell_call", shell_reply, Union[str, list[str], ShellSpec, list[ShellSpec]])
register_kind("local_shell_call", local_shell_reply, Union[LocalShellSpec, list[LocalShellSpec]])
register_kind("custom_tool_call", custom_reply, Union[CustomCallSpec, list[CustomCallSpec]])
ITEM_EVENTS["custom_tool_call"] = _custom_events
ADDED_FORMS["custom_tool_call"] = lambda item: {**item, "input": ""}
TURN_CHECKS.extend([check_pairs, check_grammars])
DEFAULT_RULES.append(workspace_results_rule)
