"""The ``shell`` tool: the model asks for commands (``shell_call`` items, or
``local_shell_call`` with ``api: local_shell``); flowrun runs them in the step's workspace
under the step's policy and sends back what they printed and how they ended.

For each command, in order: the policy check (:mod:`.shell_policy`; outside ``allow`` the
command is refused - or, with ``approve: ask`` in an interactive run, asked about), the
program looked up on the policy's PATH, then the run (:mod:`.shell_run`: own process
group, exactly the policy's environment, no network and no writes outside the workspace
where the platform allows it, killed with its group at the timeout). A refused command
never starts; the model gets exit code 126 and the reason on stderr.

Output is masked with the run's redactor (secrets in ``env`` included) before it is cut
to ``max_output`` characters (head and tail kept), both for the model and for the record.
Every command, its exit status, its output and the isolation in force go into
``steps.X.tool_calls`` (``kind: shell``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..ask import ask_yes_no
from ..secrets import Redactor
from ..store import safe_name
from ..workspace import open_workspace
from . import register_item, register_tool
from .shell_policy import DEFAULT_PATH, Refused, plan, prefixes, resolve_program
from .shell_run import Completed, isolation, run_isolated

REFUSED_EXIT = 126


@register_tool("shell")
async def build_shell(sc: Any, name: str, tool: Any) -> list[dict[str, Any]]:
    ws = open_workspace(sc)
    policy = tool.shell
    env = {k: str(sc.render(v)) for k, v in policy.env.items()}  # secrets register as masked
    tmp = sc.run.store.dir / "tmp" / safe_name(sc.key, "step")
    tmp.mkdir(parents=True, exist_ok=True)
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOME", str(tmp))
    env.setdefault("TMPDIR", str(tmp))
    sc.state["shell"] = {"policy": policy, "env": env, "tmp": tmp, "allowed": prefixes(policy.allow),
                         "workspace": ws}
    sc.state.setdefault("workspace_tools", set()).add("shell")
    if policy.api == "local_shell":
        return [{"type": "local_shell"}]
    return [{"type": "shell"}]


def mask_and_cap(redactor: Redactor, text: str, limit: int, dropped: int = 0) -> str:
    """``text`` with secrets masked, then cut to ``limit`` characters (head and tail kept).

    A NUL marks where the capture already dropped ``dropped`` bytes; both sides are masked
    on their own and trimmed there by the longest secret's length, so no part of a secret
    cut by the capture survives."""
    head, cut, tail = text.partition("\x00")
    head = redactor.text(head)
    if not cut:
        if len(head) <= limit:
            return head
        half = limit // 2
        return head[:half] + _omitted(len(head) - limit) + head[len(head) - (limit - half):]
    tail, edge = redactor.text(tail), redactor.longest
    if edge:
        head, tail = head[: max(0, len(head) - edge)], tail[edge:]
    half = limit // 2
    omitted = dropped + max(0, len(head) - half) + max(0, len(tail) - (limit - half))
    return head[:half] + _omitted(omitted) + tail[max(0, len(tail) - (limit - half)):]


def _omitted(count: int) -> str:
    return f"\n[... about {count} characters omitted ...]\n"


async def _approved(sc: Any, shown: str, reason: str) -> bool:
    policy = sc.state["shell"]["policy"]
    if policy.approve != "ask" or not sc.run.interactive:
        return False
    return await ask_yes_no(sc.run, f"step {sc.key}: run this command in the workspace?",
                            {"command": shown, "not allowed because": reason,
                             "workspace": str(sc.state["shell"]["workspace"].root)})


async def run_one(sc: Any, command: Any, timeout: float, limit: int) -> dict[str, Any]:
    """Run one command under the policy; its record entry (masked, capped)."""
    state = sc.state["shell"]
    policy, env, ws = state["policy"], state["env"], state["workspace"]
    redactor = sc.run.redactor
    shown = command if isinstance(command, str) else json.dumps(command)
    entry: dict[str, Any] = {"command": redactor.text(shown)}
    try:
        try:
            planned = plan(command, policy, state["allowed"])
        except Refused as exc:
            if not await _approved(sc, shown, str(exc)):
                raise
            entry["approved"] = "user"
            planned = plan(command, policy.model_copy(update={"allow": ["*"]}), None)
        argv = resolve_program(planned.argv, env["PATH"], ws.root)
    except Refused as exc:
        reason = redactor.text(str(exc))
        entry.update(refused=reason, exit_code=REFUSED_EXIT, stdout="", stderr=f"flowrun: refused: {reason}")
        return entry
    done: Completed = await run_isolated(argv, ws.root, env, [ws.root, state["tmp"]], timeout)
    out_text, out_dropped = done.stdout.text()
    err_text, err_dropped = done.stderr.text()
    entry["stdout"] = mask_and_cap(redactor, out_text, limit, out_dropped)
    entry["stderr"] = mask_and_cap(redactor, err_text, limit, err_dropped)
    entry["duration_s"] = round(done.duration, 4)
    if done.timed_out:
        entry["timed_out"] = True
        entry["stderr"] += f"\nflowrun: the command ran past its {timeout:g}s timeout; its process group was killed"
    else:
        entry["exit_code"] = done.exit_code if done.exit_code is not None else -1
    return entry


def _limits(sc: Any, action: dict[str, Any]) -> tuple[float, int]:
    policy = sc.state["shell"]["policy"]
    timeout, limit = policy.timeout, policy.max_output
    asked_ms = action.get("timeout_ms")
    if isinstance(asked_ms, int) and asked_ms > 0:
        timeout = min(timeout, asked_ms / 1000)
    asked_len = action.get("max_output_length")
    if isinstance(asked_len, int) and asked_len > 0:
        limit = min(limit, asked_len)
    return timeout, limit


def _record(sc: Any, item: dict[str, Any], entries: list[dict[str, Any]], started: float) -> None:
    sc.result.tool_calls.append({
        "name": "shell", "kind": "shell", "call_id": item.get("call_id"),
        "turn": max(1, len(sc.result.response_ids)), "commands": entries,
        "isolation": isolation().describe(), "duration_s": round(time.monotonic() - started, 4),
    })
    failed = [e for e in entries if e.get("exit_code") not in (0, None) or e.get("timed_out")]
    sc.status("running", f"shell: {len(entries)} command{'s' if len(entries) != 1 else ''}"
              + (f", {len(failed)} failed or refused" if failed else ""))


def _not_offered(sc: Any) -> str | None:
    if "shell" not in sc.state.get("workspace_tools", ()):
        return "shell is not one of this step's tools"
    return None


@register_item("shell_call")
async def on_shell_call(sc: Any, item: dict[str, Any], response: dict[str, Any]) -> list[dict[str, Any]]:
    action = item.get("action") or {}
    started = time.monotonic()
    commands = action.get("commands") or []
    problem = _not_offered(sc)
    if problem:
        entries = [{"command": str(c), "refused": problem, "exit_code": REFUSED_EXIT, "stdout": "",
                    "stderr": f"flowrun: refused: {problem}"} for c in commands]
    else:
        timeout, limit = _limits(sc, action)
        entries = [await run_one(sc, str(c), timeout, limit) for c in commands]
        _record(sc, item, entries, started)
    output = []
    for e in entries:
        outcome = {"type": "timeout"} if e.get("timed_out") else {"type": "exit", "exit_code": e["exit_code"]}
        output.append({"stdout": e["stdout"], "stderr": e["stderr"], "outcome": outcome})
    return [{"type": "shell_call_output", "call_id": item.get("call_id"), "output": output,
             "max_output_length": action.get("max_output_length")}]


@register_item("local_shell_call")
async def on_local_shell_call(sc: Any, item: dict[str, Any], response: dict[str, Any]) -> list[dict[str, Any]]:
    action = item.get("action") or {}
    started = time.monotonic()
    problem = _not_offered(sc)
    if problem:
        entry = {"command": json.dumps(action.get("command")), "refused": problem, "exit_code": REFUSED_EXIT,
                 "stdout": "", "stderr": f"flowrun: refused: {problem}"}
    else:
        timeout, limit = _limits(sc, action)
        entry = await run_one(sc, list(action.get("command") or []), timeout, limit)
        _record(sc, item, [entry], started)
    text = entry["stdout"] + (("\n" if entry["stdout"] else "") + entry["stderr"] if entry["stderr"] else "")
    result = {"output": text, "metadata": {"exit_code": entry.get("exit_code"),
                                           "timed_out": bool(entry.get("timed_out")),
                                           "duration_seconds": entry.get("duration_s", 0)}}
    return [{"type": "local_shell_call_output", "id": item.get("call_id"),
             "output": json.dumps(result, ensure_ascii=False)}]
