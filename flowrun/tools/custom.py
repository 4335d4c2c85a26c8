"""Custom tools: the model's input is free-form text (``custom_tool_call`` items), not JSON
arguments. ``{custom: {python: mod:fn}}`` calls ``fn(text)``; ``{custom: {command: [...]}}``
runs the program with the text on stdin. The result goes back as a
``custom_tool_call_output``; an exception, a failing program or a timeout becomes
``{"error": "..."}`` text the model can react to. A ``grammar`` (Lark or a regular
expression) is sent as the tool's ``format``, so the model's text follows it.

Each call is recorded in ``steps.X.tool_calls`` (``kind: custom``, the masked input,
output or error, duration).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from ..errors import ExecutionError
from . import register_item, register_tool
from .command import CommandFailed, _kill_group, parse_stdout, resolve_argv
from .functions import (RECORD_OUTPUT_CHARS, ToolFailure, _as_output, _inline_name, load_callable,
                        run_in_thread)

Invoke = Callable[[str], Awaitable[Any]]


async def run_with_stdin(argv: list[str], cwd: Path, text: str) -> str:
    """Run ``argv`` with ``text`` on stdin; its stdout. A non-zero exit is CommandFailed."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=str(cwd), start_new_session=True)
    except OSError as exc:
        raise CommandFailed(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
    try:
        stdout, stderr = await proc.communicate(text.encode("utf-8"))
    finally:
        if proc.returncode is None:
            _kill_group(proc)
            try:
                await asyncio.shield(proc.wait())
            except asyncio.CancelledError:
                pass
    if proc.returncode != 0:
        tail = stderr.decode("utf-8", "replace").strip()[-2000:]
        raise CommandFailed(f"the command exited with status {proc.returncode}" + (f"; stderr: {tail}" if tail else ""))
    return parse_stdout(stdout)


def tool_param(name: str, options: Any) -> dict[str, Any]:
    """The request's tool entry."""
    entry: dict[str, Any] = {"type": "custom", "name": name}
    if options.description:
        entry["description"] = options.description
    if options.grammar is not None:
        entry["format"] = {"type": "grammar", "syntax": options.grammar.syntax,
                           "definition": options.grammar.definition}
    return entry


@register_tool("custom")
async def build_custom(sc: Any, name: str, tool: Any) -> list[dict[str, Any]]:
    options = tool.custom
    if options.python is not None:
        name = _inline_name(name, "custom", options.python.partition(":")[2])
        try:
            fn = load_callable(options.python, sc.base_dir)
        except ValueError as exc:
            raise ExecutionError(f"tool {name!r} ({options.python}): {exc}", sc.step_id) from None
        is_async = inspect.iscoroutinefunction(fn)

        async def invoke(text: str) -> Any:
            result = await fn(text) if is_async else await run_in_thread(fn, text)
            return await result if inspect.isawaitable(result) else result
    else:
        name = _inline_name(name, "custom", Path(options.command[-1]).stem)
        try:
            argv = resolve_argv(list(options.command), sc.base_dir)
        except FileNotFoundError as exc:
            raise ExecutionError(f"tool {name!r}: {exc}", sc.step_id) from None
        base_dir = sc.base_dir

        async def invoke(text: str) -> Any:
            return await run_with_stdin(argv, base_dir, text)

    customs = sc.state.setdefault("custom_tools", {})
    if name in customs:
        raise ExecutionError(f"two custom tools in this step are named {name!r}", sc.step_id)
    customs[name] = (invoke, options.timeout)
    return [tool_param(name, options)]


@register_item("custom_tool_call")
async def on_custom_tool_call(sc: Any, item: dict[str, Any], response: dict[str, Any]) -> list[dict[str, Any]]:
    redactor = sc.run.redactor
    name, call_id, text = item.get("name") or "", item.get("call_id"), item.get("input") or ""
    entry: dict[str, Any] = {"name": name, "kind": "custom", "call_id": call_id,
                             "turn": max(1, len(sc.result.response_ids)), "input": redactor.text(text)}
    started = time.monotonic()
    found = sc.state.get("custom_tools", {}).get(name)
    try:
        if found is None:
            known = ", ".join(sorted(sc.state.get("custom_tools", {}))) or "none"
            raise CommandFailed(f"unknown custom tool {name!r}; the custom tools you can call are: {known}")
        invoke, timeout = found
        sc.status("running", f"calling {name}")
        try:
            result = await asyncio.wait_for(invoke(text), timeout)
        except asyncio.TimeoutError:
            raise CommandFailed(f"the tool did not finish within {timeout:g}s and was stopped") from None
        output = _as_output(result)
        entry["output"] = redactor.text(output)[:RECORD_OUTPUT_CHARS]
    except Exception as exc:  # the tool's own failure goes to the model, never fails the step
        message = str(exc) if isinstance(exc, (CommandFailed, ToolFailure)) else f"the tool raised {type(exc).__name__}: {exc}"
        message = redactor.text(message)
        output, entry["error"] = json.dumps({"error": message}, ensure_ascii=False), message
    entry["duration_s"] = round(time.monotonic() - started, 4)
    sc.result.tool_calls.append(entry)
    return [{"type": "custom_tool_call_output", "call_id": call_id, "output": output}]
