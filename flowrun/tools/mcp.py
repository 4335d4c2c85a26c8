"""Remote MCP servers as hosted tools: the service connects to the server and calls its
tools; flowrun configures the tool, answers the service's approval requests, and records
what happened.

- **Request.** A ``tools:`` entry ``{mcp: URL, server_label, headers, allowed_tools,
  require_approval}`` becomes ``{"type": "mcp", "server_label", "server_url", "headers",
  "allowed_tools", "require_approval"}``; per-name approval is sent as
  ``{"always": {"tool_names": [...]}, "never": {"tool_names": [...]}}``.
- **Secrets.** Header values are rendered (``{{ secrets.X }}``) when the step starts. The
  secret itself is already masked by the run's redactor; the whole rendered value of a
  credential-looking header (``Authorization``, ``*token*``, ``*key*``, ...) is registered
  too, so a literal token in a flow file is masked as well.
- **Approvals.** Every ``mcp_approval_request`` item gets an ``mcp_approval_response``
  (sent back in the next turn by the step's tool loop). The decision follows the tool's
  ``approve:`` policy (a list of tool names, ``all`` or ``none``: approve the listed, deny
  the rest); without a policy an interactive run asks the user; otherwise the call is
  denied with a message saying how to allow it. Each decision is kept in
  ``result.approvals`` (server, tool, arguments, decision, decided_by, time) as an audit
  trail.
- **Records and errors.** ``mcp_list_tools`` and ``mcp_call`` items are recorded in
  ``result.tool_calls``. An item carrying an ``error`` fails the step with the server's
  message.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from ..durable import ledger_of
from ..errors import ExecutionError, SecretRefused
from ..spec import McpTool
from ..templating import analyze
from . import register_event, register_item, register_tool

RECORD_OUTPUT_CHARS = 20_000  # of an MCP call's output, kept in the run record
# header names whose values are credentials even when written literally in a flow
_CREDENTIAL_NAME = re.compile(r"auth|key|token|secret|cookie|passw|credential|signature|session", re.I)


@dataclass(frozen=True)
class McpServer:
    """One MCP tool of a step: its name in the flow, its definition, the label sent."""

    name: str
    tool: McpTool
    label: str
    url: str


def _servers(sc: Any) -> dict[str, McpServer]:
    return sc.state.setdefault("mcp_servers", {})


def require_approval_param(value: Any) -> Any:
    """The request's ``require_approval`` for a flow's value."""
    if isinstance(value, str):
        return value
    out: dict[str, Any] = {}
    if value.always:
        out["always"] = {"tool_names": list(value.always)}
    if value.never:
        out["never"] = {"tool_names": list(value.never)}
    return out or "always"


@register_tool("mcp")
async def build_mcp_tool(sc: Any, name: str, tool: McpTool) -> list[dict[str, Any]]:
    label = tool.server_label or name
    url = str(sc.render(tool.mcp))
    entry: dict[str, Any] = {"type": "mcp", "server_label": label, "server_url": url}
    if tool.headers:
        headers: dict[str, str] = {}
        for header, template in tool.headers.items():
            value = str(sc.render(template))
            if _CREDENTIAL_NAME.search(header) or analyze(template).names("secrets"):
                try:
                    sc.run.redactor.add(value, f"header {header!r}")
                except SecretRefused as exc:
                    raise ExecutionError(f"tool {name!r}: {exc}", sc.step_id) from None
            headers[header] = value
        entry["headers"] = headers
    if tool.allowed_tools is not None:
        entry["allowed_tools"] = list(tool.allowed_tools)
    entry["require_approval"] = require_approval_param(tool.require_approval)
    _servers(sc)[label] = McpServer(name, tool, label, url)
    return [entry]


# --------------------------------------------------------------------------- approvals


def _arguments(raw: Any) -> Any:
    """An item's ``arguments`` (a JSON string) as a value, or the text when it is not JSON."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _policy_decision(approve: Any, tool_name: str) -> bool:
    if approve == "all":
        return True
    if approve == "none":
        return False
    return tool_name in approve


def how_to_allow(server: McpServer | None, tool_name: str) -> str:
    flow_tool = server.name if server else "the MCP tool"
    return (f"to allow it, add `approve: [{tool_name}]` (or `approve: all`) to tool "
            f"{flow_tool!r} in the flow, or run with --interactive to be asked")


@register_item("mcp_approval_request")
async def answer_approval(sc: Any, item: dict[str, Any], response: dict[str, Any]) -> list[dict[str, Any]]:
    recorded = ledger_of(sc).approval(item.get("id") or "")
    if recorded is not None:  # decided in an earlier attempt of the run: not asked again
        answer, entry = recorded
        sc.result.approvals.append(entry)
        return [answer]
    label = item.get("server_label", "")
    tool_name = item.get("name", "")
    arguments = _arguments(item.get("arguments"))
    server = _servers(sc).get(label)
    reason: str | None = None
    message: str | None = None
    if server is None:
        approved, decided_by = False, "default"
        reason = f"MCP server {label!r} is not one of this step's tools"
        message = f"denied MCP call {tool_name!r}: {reason}"
    elif server.tool.approve is not None:
        approved, decided_by = _policy_decision(server.tool.approve, tool_name), "policy"
        if not approved:
            reason = "not in the flow's approval policy"
            message = (f"denied MCP call {tool_name!r} on {label!r}: not in the approve: policy "
                       f"of tool {server.name!r}")
    elif sc.run.interactive:
        from ..ask import ask_yes_no

        sc.status("running", f"waiting for approval: {label}.{tool_name}")
        approved = await ask_yes_no(
            sc.run,
            f"step {sc.key}: MCP server {label!r} asks to call tool {tool_name!r}",
            {"server": f"{label} ({server.url})", "tool": tool_name, "arguments": arguments},
        )
        decided_by = "user"
        if not approved:
            reason = "declined by the user"
            message = f"denied MCP call {tool_name!r} on {label!r}: declined at the prompt"
    else:
        approved, decided_by = False, "default"
        reason = "no approval policy, and the run is not interactive"
        message = (f"denied MCP call {tool_name!r} on {label!r}: tool {server.name!r} has no "
                   f"approve: policy and the run is not interactive; {how_to_allow(server, tool_name)}")

    entry: dict[str, Any] = {
        "server": label,
        "tool": tool_name,
        "arguments": sc.run.redactor.deep(arguments),
        "decision": "approved" if approved else "denied",
        "decided_by": decided_by,
        "time": time.time(),
        "approval_request_id": item.get("id"),
    }
    if message:
        entry["message"] = message
        sc.notice(message)
    sc.result.approvals.append(entry)
    sc.status("running", message or f"approved MCP call {label}.{tool_name} ({decided_by})")

    answer: dict[str, Any] = {
        "type": "mcp_approval_response",
        "approval_request_id": item["id"],
        "approve": approved,
    }
    if reason:
        answer["reason"] = reason
    ledger_of(sc).approved(item["id"], sc.state.get("turn", 0), answer, entry)
    return [answer]


# --------------------------------------------------------------------------- records


def error_text(error: Any) -> str:
    """The message of an item's ``error``: a string, or an MCPToolCallError object
    (``mcp_protocol_error`` / ``http_error`` with ``message``, ``mcp_tool_execution_error``
    with ``content``)."""
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        if error.get("message"):
            code = error.get("code")
            prefix = {"http_error": f"HTTP {code} ", "mcp_protocol_error": f"MCP error {code}: "}
            return prefix.get(error.get("type"), "") + str(error["message"])
        content = error.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [c.get("text") for c in content if isinstance(c, dict) and c.get("text")]
            if texts:
                return " ".join(str(t) for t in texts)
        if content is not None:
            return json.dumps(content, ensure_ascii=False)
    return json.dumps(error, ensure_ascii=False, default=str)


@register_item("mcp_list_tools")
async def record_list(sc: Any, item: dict[str, Any], response: dict[str, Any]) -> None:
    label = item.get("server_label", "")
    entry: dict[str, Any] = {
        "type": "mcp_list_tools",
        "kind": "mcp",
        "server": label,
        "tools": [t.get("name") for t in item.get("tools") or [] if isinstance(t, dict)],
    }
    error = item.get("error")
    if error:
        entry["error"] = error_text(error)
    sc.result.tool_calls.append(entry)
    if error:
        text = error_text(error)
        message = f"MCP server {label!r}: " + (
            text if "tool list" in text.lower() else f"listing its tools failed: {text}")
        server = _servers(sc).get(label)
        if server is not None and re.search(r"\b40[13]\b", text):
            message += f"; check the headers of tool {server.name!r} (and the secrets they read)"
        raise ExecutionError(message, sc.step_id)
    return None


@register_item("mcp_call")
async def record_call(sc: Any, item: dict[str, Any], response: dict[str, Any]) -> None:
    label = item.get("server_label", "")
    name = item.get("name", "")
    output = item.get("output")
    if isinstance(output, str):  # masked before it is cut: no part of a secret is kept
        output = sc.run.redactor.truncate(output, RECORD_OUTPUT_CHARS, marker="... [truncated]")
    entry: dict[str, Any] = sc.run.redactor.deep({
        "type": "mcp_call",
        "kind": "mcp",
        "id": item.get("id"),
        "server": label,
        "name": name,
        "arguments": _arguments(item.get("arguments")),
        "output": output,
    })
    if item.get("approval_request_id"):
        entry["approval_request_id"] = item["approval_request_id"]
    error = item.get("error")
    if error:
        entry["error"] = error_text(error)
    sc.result.tool_calls.append(entry)
    if error:
        raise ExecutionError(
            f"MCP server {label!r}: tool {name!r} failed: {error_text(error)}", sc.step_id
        )
    return None


# --------------------------------------------------------------------------- streaming


@register_event("response.mcp_list_tools.in_progress")
def _listing(sc: Any, event: dict[str, Any]) -> None:
    sc.status("running", "listing MCP tools")


@register_event("response.mcp_call.in_progress")
def _calling(sc: Any, event: dict[str, Any]) -> None:
    sc.status("running", "calling an MCP tool")
