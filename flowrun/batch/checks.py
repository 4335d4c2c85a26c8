"""What batch mode cannot run, found before any request (``flowrun validate --batch``,
``flowrun run --dataset --batch``): each refusal names the step, where it is in the file,
why, and what to do.

Refused: computer use (a browser loop, turn by turn), sub-flow steps and flow tools
(they run steps of their own), ``stream: true`` and ``background: true`` (a batch line
is neither), and MCP tools that would need an interactive approval (no approval policy,
approvals required). Run inline (no model request, nothing to batch): ``python:``
steps and everything local a step does (rendering, function and command tools).
"""

from __future__ import annotations

from typing import Any

from ..errors import Problem, SpecError
from ..spec import McpTool, tool_kind

HINT = "run this flow without --batch, or move the step into a flow of its own"


def batch_problems(plan: Any) -> list[Problem]:
    """Why each step that cannot go through the Batch API cannot."""
    flow, source = plan.flow, plan.file.source
    out: list[Problem] = []

    def refuse(path: tuple[Any, ...], why: str, hint: str = HINT) -> None:
        out.append(source.problem(path, f"cannot run in batch mode: {why}", hint))

    if flow.defaults.stream:
        refuse(("defaults", "stream"), "every step streams (stream: true); a batch line is not streamed",
               "set stream: false (or drop it) to use --batch")
    for sid, step in flow.steps.items():
        base = ("steps", sid)
        if step.kind == "computer_use":
            refuse(base + ("computer_use",), f"step {sid!r} is a computer-use agent, which drives a browser "
                                             "turn by turn")
            continue
        if step.kind == "flow":
            refuse(base + ("flow",), f"step {sid!r} runs a sub-flow, whose steps are not batched")
            continue
        if step.stream:
            refuse(base + ("stream",), f"step {sid!r} streams (stream: true); a batch line is not streamed",
                   "drop stream: true to use --batch")
        if step.background:
            refuse(base + ("background",), f"step {sid!r} is a background response; a batch line is not one",
                   "drop background: true to use --batch (a batch is already run in the background)")
        for i, ref in enumerate(step.tools):
            tool = flow.tools.get(ref) if isinstance(ref, str) else ref
            name = ref if isinstance(ref, str) else f"tools[{i}]"
            if tool is None:
                if ref in ("computer_use_preview", "computer"):
                    refuse(base + ("tools", i), f"step {sid!r} uses the computer tool, which needs a browser loop")
                continue
            kind = tool_kind(tool)
            if kind == "flow":
                refuse(base + ("tools", i), f"step {sid!r} uses the flow tool {name!r}, which runs a sub-flow")
            elif isinstance(tool, McpTool) and tool.approve is None and tool.require_approval != "never":
                refuse(base + ("tools", i), f"step {sid!r} uses the MCP tool {name!r}, whose calls need an "
                                            "interactive approval",
                       "give the tool an approval policy (approve: all, none or a list of tools) or "
                       "require_approval: never")
    return out


def check_batchable(plan: Any) -> None:
    """Raise :class:`~flowrun.errors.SpecError` (exit 2) naming every step batch mode refuses."""
    problems = batch_problems(plan)
    if problems:
        raise SpecError(problems)
