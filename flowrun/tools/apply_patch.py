"""The ``apply_patch`` tool: the model sends file edits (``apply_patch_call`` items with a
``create_file``, ``update_file`` or ``delete_file`` operation and a V4A diff); flowrun
applies each inside the step's workspace and answers with an ``apply_patch_call_output``:
``completed`` with what was done, or ``failed`` with the exact reason (a path that leaves
the workspace, a file that does not exist, context lines that are not in the file), so
the model can send a corrected patch. Nothing is written when an operation fails.

Each call is recorded in ``steps.X.tool_calls`` (``kind: apply_patch``, the operation's
type and path, its status and output).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..v4a import DiffError, apply_update, create_text
from ..workspace import PathRefused, Workspace, open_workspace
from . import register_item, register_tool

RECORD_DIFF_CHARS = 20_000


@register_tool("apply_patch")
async def build_apply_patch(sc: Any, name: str, tool: Any) -> list[dict[str, Any]]:
    open_workspace(sc)
    sc.state.setdefault("workspace_tools", set()).add("apply_patch")
    return [{"type": "apply_patch"}]


def apply_operation(ws: Workspace, op: dict[str, Any]) -> str:
    """Apply one operation; the message for the model. Raises PathRefused / DiffError."""
    kind, path = op.get("type"), op.get("path")
    if not isinstance(path, str):
        raise PathRefused("the operation has no path")
    if kind == "create_file":
        ws.path(path)
        if ws.exists(path):
            raise PathRefused(f"{path!r} already exists; use update_file to change it")
        ws.write_text(path, create_text(op.get("diff") or ""))
        return f"Created {path}"
    if kind == "update_file":
        old = ws.read_text(path)
        new, move_to = apply_update(old, op.get("diff") or "")
        if move_to:
            ws.path(move_to)
            if ws.exists(move_to):
                raise PathRefused(f"cannot move {path!r} to {move_to!r}: it already exists")
            ws.write_text(move_to, new)
            ws.delete(path)
            return f"Updated {path} and moved it to {move_to}"
        ws.write_text(path, new)
        return f"Updated {path}"
    if kind == "delete_file":
        ws.delete(path)
        return f"Deleted {path}"
    raise PathRefused(f"unknown operation type {kind!r} (create_file, update_file or delete_file)")


@register_item("apply_patch_call")
async def on_apply_patch_call(sc: Any, item: dict[str, Any], response: dict[str, Any]) -> list[dict[str, Any]]:
    op = item.get("operation") or {}
    call_id = item.get("call_id")
    started = time.monotonic()
    if "apply_patch" not in sc.state.get("workspace_tools", ()):
        status, output = "failed", "apply_patch is not one of this step's tools"
    else:
        ws = open_workspace(sc)
        try:
            output = await asyncio.to_thread(apply_operation, ws, op)
            status = "completed"
        except (PathRefused, DiffError) as exc:
            status, output = "failed", f"{op.get('type')} {op.get('path')!r} was not applied: {exc}"
        except OSError as exc:
            status, output = "failed", f"{op.get('type')} {op.get('path')!r} was not applied: {exc.strerror or exc}"
    redactor = sc.run.redactor
    diff = redactor.text(op.get("diff") or "")
    entry: dict[str, Any] = {
        "name": "apply_patch", "kind": "apply_patch", "call_id": call_id,
        "turn": max(1, len(sc.result.response_ids)),
        "operation": {"type": op.get("type"), "path": op.get("path")},
        "status": status, "duration_s": round(time.monotonic() - started, 4),
    }
    if diff:
        entry["operation"]["diff"] = diff[:RECORD_DIFF_CHARS]
    entry["output" if status == "completed" else "error"] = redactor.text(output)
    sc.result.tool_calls.append(entry)
    sc.status("running", f"apply_patch: {redactor.text(output).splitlines()[0]}")
    return [{"type": "apply_patch_call_output", "call_id": call_id, "status": status,
             "output": redactor.text(output)}]
