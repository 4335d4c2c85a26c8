"""The hosted side of remote MCP: the emulator connects to the real MCP server named in a
request's ``{"type": "mcp"}`` tool (streamable HTTP, with the tool's ``headers``), lists
its tools and calls them, as the service does.

The scripted model decides *which* tool it calls; everything else is real::

    steps:
      answer:
        - mcp_call: {server_label: docs, name: search_docs, arguments: {query: keys}}
        - text: "Here is what the docs say."     # the model's reply after the call

``mcp_call`` takes ``name``, ``arguments`` (an object or a JSON string), ``server_label``
(may be left out when the request has one MCP tool) and ``text`` (the model's message
after the call; ``{output}`` in it is replaced by the call's output) - or a list of those
for several calls in one response. For each server the emulator:

1. lists the tools (``tools/list``) and, unless the conversation already holds an
   ``mcp_list_tools`` item for that ``server_label``, emits one with the tools that
   ``allowed_tools`` lets through (a list of names or ``{tool_names, read_only}``);
   a failure (a 401 from a wrong token, a server that is down, no MCP SDK) is an
   ``mcp_list_tools`` item whose ``error`` carries the server's message;
2. for a tool the model may not see (filtered out by ``allowed_tools``, or unknown), emits
   an ``mcp_call`` with an ``mcp_protocol_error`` - the server is not contacted;
3. when ``require_approval`` asks for it (``always``, the default; ``never``;
   ``{always: {tool_names}, never: {tool_names}}``, tools in neither list need approval),
   emits an ``mcp_approval_request`` and stops there: the response ends without a message;
4. otherwise calls the tool and emits an ``mcp_call`` with ``output`` (the text content),
   or with ``error`` (``mcp_tool_execution_error`` for a result flagged ``isError``,
   ``mcp_protocol_error`` for a JSON-RPC error, ``http_error`` for an HTTP failure), then
   the model's message (``text``, or ``[emulator] mcp results: OUT1; OUT2``).

A request whose input ends with ``mcp_approval_response`` items is answered in two
parts (:data:`~.service.BEFORE_REPLY`): first the service performs each approved call
(``mcp_call`` with ``approval_request_id``) and skips each denied one, then the model
replies - the next script entry; when that entry is an ``mcp_call`` naming one of the
calls just answered (the last entry of a list repeats), or no entry applies, the reply is
its ``text`` or the results summary (``[emulator] mcp results: ...``; a denied call reads
``NAME was not approved``). An
answer whose ``approval_request_id`` matches no request in the conversation is a 400.
The answers are kept with ``request_id`` as well as ``approval_request_id``, because the
response-side schema (``MCPApprovalResponseResource``) requires both.

Header values appear in no item or error message here, and the journal masks
credential-looking ones (:mod:`.journal`).
The ``mcp`` SDK is imported only when a server is contacted (extra ``flowrun[mcp]``).
"""
from __future__ import annotations

import json
from typing import Any, Awaitable, Callable, Union

from pydantic import BaseModel, ConfigDict

from .errors import APIError
from .events import ADDED_FORMS, ITEM_EVENTS, chunks
from .model import DEFAULT_RULES, Turn, message_item, new_id, register_kind
from .service import BEFORE_REPLY

SETTLED = "mcp_settled"  # Turn.extras key: what the approval answers of this request did
TIMEOUT_S = 30.0
_ANSWER_TYPES = ("mcp_approval_response", "function_call_output", "custom_tool_call_output",
                 "computer_call_output")
SDK_MISSING = ("the flowrun emulator cannot reach MCP servers: the MCP SDK is not installed "
               "(pip install 'flowrun[mcp]')")


class McpCallSpec(BaseModel):
    """One scripted MCP tool call."""

    model_config = ConfigDict(extra="forbid")
    name: str
    arguments: Union[dict[str, Any], str] = {}
    server_label: str | None = None
    text: str | None = None


McpCallPayload = Union[McpCallSpec, list[McpCallSpec]]


class McpFailure(Exception):
    """Talking to the MCP server failed; ``error`` is an MCPToolCallError object."""

    def __init__(self, error: dict[str, Any]):
        self.error = error
        super().__init__(error.get("message") or "MCP failure")

    @property
    def text(self) -> str:
        if self.error.get("type") == "http_error":
            return f"HTTP {self.error['code']} {self.error['message']}"
        return str(self.error.get("message"))


# --------------------------------------------------------------------------- items


def list_item(label: str, tools: list[dict[str, Any]], error: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": new_id("mcpl"), "type": "mcp_list_tools", "server_label": label,
                            "tools": tools}
    if error is not None:
        item["error"] = error
    return item


def approval_item(label: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": new_id("mcpr"), "type": "mcp_approval_request", "server_label": label,
            "name": name, "arguments": arguments}


def call_item(label: str, name: str, arguments: str, *, output: str | None = None,
              error: dict[str, Any] | None = None, approval_request_id: str | None = None) -> dict[str, Any]:
    return {"id": new_id("mcp"), "type": "mcp_call", "server_label": label, "name": name,
            "arguments": arguments, "output": output, "error": error,
            "status": "failed" if error is not None else "completed",
            "approval_request_id": approval_request_id}


def protocol_error(code: int, message: str) -> dict[str, Any]:
    return {"type": "mcp_protocol_error", "code": code, "message": message}


# --------------------------------------------------------------------------- the request's MCP tools


def mcp_tools(turn: Turn) -> list[dict[str, Any]]:
    return [t for t in turn.request.get("tools") or [] if isinstance(t, dict) and t.get("type") == "mcp"]


def find_server(turn: Turn, label: str | None) -> dict[str, Any]:
    """The request's MCP tool with ``server_label`` (the only one when ``label`` is None)."""
    tools = mcp_tools(turn)
    labels = ", ".join(repr(t.get("server_label")) for t in tools) or "none"
    if label is None:
        if len(tools) == 1:
            return tools[0]
        raise APIError(400, "flowrun emulator script: mcp_call needs server_label when the request has "
                       f"{len(tools)} MCP tools (server labels: {labels}).", param="tools")
    for tool in tools:
        if tool.get("server_label") == label:
            if not tool.get("server_url"):
                raise APIError(400, f"The MCP tool {label!r} has no server_url; the flowrun emulator "
                               "cannot use connectors.", param="tools")
            return tool
    raise APIError(400, f"flowrun emulator script: the model calls MCP server {label!r}, but the request "
                   f"offers no MCP tool with that server_label (server labels: {labels}).", param="tools")


def _matches(tool_filter: Any, tool: dict[str, Any], empty: bool) -> bool:
    """Whether an ``MCPToolFilter`` (``tool_names``, ``read_only``) selects ``tool``;
    a filter with neither criterion selects ``empty``."""
    if not isinstance(tool_filter, dict):
        return empty
    names, read_only = tool_filter.get("tool_names"), tool_filter.get("read_only")
    if names is None and read_only is None:
        return empty
    if names is not None and tool["name"] not in names:
        return False
    hint = bool((tool.get("annotations") or {}).get("readOnlyHint"))
    return read_only is None or hint == read_only


def allowed(server: dict[str, Any], tool: dict[str, Any]) -> bool:
    rule = server.get("allowed_tools")
    if rule is None:
        return True
    if isinstance(rule, list):
        return tool["name"] in rule
    return _matches(rule, tool, empty=True)


def needs_approval(server: dict[str, Any], tool: dict[str, Any]) -> bool:
    rule = server.get("require_approval")
    if rule is None or rule == "always":
        return True
    if rule == "never":
        return False
    if isinstance(rule, dict):
        if _matches(rule.get("always"), tool, empty=False):
            return True
        if _matches(rule.get("never"), tool, empty=False):
            return False
    return True


def _arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _arguments_value(text: str) -> Any:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        raise McpFailure(protocol_error(-32602, f"The arguments are not valid JSON: {text[:200]!r}")
                         ) from None
    if not isinstance(value, dict):
        raise McpFailure(protocol_error(-32602, "The arguments must be a JSON object."))
    return value


# --------------------------------------------------------------------------- talking to the server


def _leaf(exc: BaseException) -> BaseException:
    """The first real exception inside (nested) exception groups."""
    while getattr(exc, "exceptions", None):
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    return exc


def _body_message(text: str) -> str:
    """The server's message in an HTTP error body (JSON-RPC error, OAuth error, or text)."""
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:500]
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        for key in ("error_description", "message", "detail"):
            if isinstance(data.get(key), str) and data[key]:
                return data[key]
        if isinstance(err, str) and err:
            return err
    return " ".join(text.split())[:500]


class Session:
    """An open MCP session: the SDK client, and the last HTTP error the server answered."""

    def __init__(self, client: Any, refused: dict[str, Any]):
        self.client = client
        self.refused = refused

    def http_error(self) -> dict[str, Any] | None:
        """The server's own refusal (the MCP client replaces it by a generic error)."""
        if not self.refused:
            return None
        r = self.refused
        detail = f"{r['reason']}: {r['message']}" if r["message"] else str(r["reason"])
        return {"type": "http_error", "code": r["status"], "message": detail}


async def with_server(server: dict[str, Any], work: Callable[[Session], Awaitable[Any]]) -> Any:
    """Open an MCP session to the request's ``server`` (its ``server_url``, ``headers``
    and ``authorization``) and run ``work(session)``; any failure becomes :class:`McpFailure`."""
    try:
        import httpx2
        from mcp import Client, MCPError
        from mcp.client.streamable_http import streamable_http_client
    except ImportError:
        raise McpFailure(protocol_error(-32000, SDK_MISSING)) from None

    url = server["server_url"]
    headers = dict(server.get("headers") or {})
    if server.get("authorization"):
        headers["Authorization"] = f"Bearer {server['authorization']}"
    refused: dict[str, Any] = {}

    async def watch(response: Any) -> None:
        if response.request.method != "POST":
            return
        if response.status_code >= 400:
            await response.aread()
            refused.update(status=response.status_code, reason=response.reason_phrase,
                           message=_body_message(response.text))
        else:
            refused.clear()

    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(TIMEOUT_S),
                              event_hooks={"response": [watch]})
    try:
        async with http:
            async with Client(streamable_http_client(url, http_client=http),
                              read_timeout_seconds=TIMEOUT_S) as client:
                return await work(Session(client, refused))
    except Exception as exc:
        leaf = _leaf(exc)
        if isinstance(leaf, McpFailure):
            raise leaf from None
        http_error = Session(None, refused).http_error()
        if http_error is not None:
            raise McpFailure(http_error) from None
        if isinstance(leaf, MCPError):
            raise McpFailure(protocol_error(leaf.code, leaf.message)) from None
        if isinstance(leaf, httpx2.HTTPError):
            raise McpFailure(protocol_error(-32000, f"could not reach the MCP server at {url}: "
                                            f"{type(leaf).__name__}: {leaf}")) from None
        raise McpFailure(protocol_error(-32000, f"{type(leaf).__name__}: {leaf}")) from None


async def _list_tools(session: Session) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        page = await session.client.list_tools(cursor=cursor)
        for tool in page.tools:
            entry: dict[str, Any] = {"name": tool.name, "description": tool.description,
                                     "input_schema": tool.input_schema or {"type": "object"}}
            if tool.annotations is not None:
                entry["annotations"] = tool.annotations.model_dump(by_alias=True, exclude_none=True)
            tools.append(entry)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _content_text(blocks: list[Any]) -> str:
    parts = []
    for block in blocks:
        if getattr(block, "type", None) == "text":
            parts.append(block.text)
        else:
            parts.append(json.dumps(block.model_dump(mode="json", by_alias=True, exclude_none=True)))
    return "\n".join(parts)


async def _call(session: Session, label: str, name: str, arguments: str,
                approval_request_id: str | None = None) -> dict[str, Any]:
    from mcp import MCPError

    try:
        result = await session.client.call_tool(name, _arguments_value(arguments))
    except McpFailure as failure:
        return call_item(label, name, arguments, error=failure.error, approval_request_id=approval_request_id)
    except MCPError as exc:
        error = session.http_error() or protocol_error(exc.code, exc.message)
        return call_item(label, name, arguments, error=error, approval_request_id=approval_request_id)
    if result.is_error:
        content = [b.model_dump(mode="json", by_alias=True, exclude_none=True) for b in result.content]
        return call_item(label, name, arguments, approval_request_id=approval_request_id,
                         error={"type": "mcp_tool_execution_error", "content": content})
    text = _content_text(result.content)
    if not text and result.structured_content is not None:
        text = json.dumps(result.structured_content)
    return call_item(label, name, arguments, output=text, approval_request_id=approval_request_id)


# --------------------------------------------------------------------------- the model's side


def _listed(conversation: list[dict[str, Any]], label: str) -> bool:
    return any(i.get("type") == "mcp_list_tools" and i.get("server_label") == label and not i.get("error")
               for i in conversation)


def summary(results: list[dict[str, Any]]) -> str:
    """The model's default reply after MCP calls: ``[emulator] mcp results: ...``."""
    parts = []
    for r in results:
        if r.get("type") == "mcp_list_tools":
            parts.append(f"listing the tools of {r['server_label']} failed: {r['error']}")
        elif r.get("denied"):
            parts.append(f"{r['name']} was not approved")
        elif r.get("error") is not None:
            parts.append(f"{r['name']} failed: {_error_text(r['error'])}")
        else:
            parts.append(str(r.get("output") or ""))
    return "[emulator] mcp results: " + "; ".join(parts)


def _error_text(error: dict[str, Any]) -> str:
    if error.get("message"):
        return str(error["message"])
    content = error.get("content") or []
    return " ".join(c.get("text", "") for c in content if isinstance(c, dict)) or json.dumps(content)


def _reply_text(specs: list[McpCallSpec], results: list[dict[str, Any]]) -> str:
    text = next((s.text for s in specs if s.text is not None), None)
    if text is None:
        return summary(results)
    outputs = "\n".join(str(r.get("output")) for r in results if r.get("output") is not None)
    return text.replace("{output}", outputs)


async def _serve(turn: Turn, label: str, server: dict[str, Any],
                 specs: list[McpCallSpec]) -> tuple[list[dict[str, Any]], bool]:
    """List the tools of one server and make the scripted calls; (items, waiting for approval)."""
    out: list[dict[str, Any]] = []
    done: list[McpCallSpec] = []
    waiting = False
    listed = False

    async def work(session: Session) -> None:
        nonlocal waiting, listed
        every = await _list_tools(session)
        offered = [t for t in every if allowed(server, t)]
        listed = True
        if not _listed(turn.conversation, label):
            out.append(list_item(label, offered))
        for spec in specs:
            arguments = _arguments_text(spec.arguments)
            tool = next((t for t in offered if t["name"] == spec.name), None)
            if tool is None:
                why = ("it is not in the tool's allowed_tools" if any(t["name"] == spec.name for t in every)
                       else "the server has no such tool")
                out.append(call_item(label, spec.name, arguments, error=protocol_error(
                    -32602, f"Tool {spec.name!r} is not available on MCP server {label!r}: {why}.")))
            elif needs_approval(server, tool):
                out.append(approval_item(label, spec.name, arguments))
                waiting = True
            else:
                out.append(await _call(session, label, spec.name, arguments))
            done.append(spec)

    try:
        await with_server(server, work)
    except McpFailure as failure:
        if not listed:
            error = f"Error retrieving tool list: {failure.text}"
            out.append(list_item(label, [], error))
        else:
            for spec in specs[len(done):]:
                out.append(call_item(label, spec.name, _arguments_text(spec.arguments), error=failure.error))
    return out, waiting


async def mcp_call_reply(value: Any, turn: Turn) -> list[dict[str, Any]]:
    """The ``mcp_call`` reply kind (module docstring)."""
    specs: list[McpCallSpec] = value if isinstance(value, list) else [value]
    settled = turn.extras.get(SETTLED)
    if settled is not None and any(r.get("name") == spec.name for r in settled for spec in specs):
        # this request answered the approvals this entry asked for (the entry repeats as
        # the last of its list); the calls ran or were skipped before this reply: report
        return [message_item(_reply_text(specs, settled))]
    groups: dict[str, tuple[dict[str, Any], list[McpCallSpec]]] = {}
    for spec in specs:
        server = find_server(turn, spec.server_label)
        groups.setdefault(server["server_label"], (server, []))[1].append(spec)
    output: list[dict[str, Any]] = []
    waiting = False
    for label, (server, group) in groups.items():
        items, wait = await _serve(turn, label, server, group)
        output.extend(items)
        waiting = waiting or wait
    if not waiting:
        results = [i for i in output if i["type"] == "mcp_call" or i.get("error")]
        output.append(message_item(_reply_text(specs, results)))
    return output


register_kind("mcp_call", mcp_call_reply, McpCallPayload)


# --------------------------------------------------------------------------- approval answers


def _trailing_answers(conversation: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answers = []
    for item in reversed(conversation):
        if item.get("type") not in _ANSWER_TYPES:
            break
        if item.get("type") == "mcp_approval_response":
            answers.append(item)
    return answers[::-1]


async def settle_approvals(turn: Turn) -> list[dict[str, Any]] | None:
    """Before the model replies: run the calls the request's approval answers allow."""
    answers = _trailing_answers(turn.conversation)
    if not answers:
        return None
    asked = {i.get("id"): i for i in turn.conversation if i.get("type") == "mcp_approval_request"}
    settled: list[dict[str, Any]] = []
    approved: dict[str, tuple[dict[str, Any], list[tuple[dict[str, Any], dict[str, Any]]]]] = {}
    for answer in answers:
        request_id = answer.get("approval_request_id")
        answer.setdefault("request_id", request_id)  # the response-side schema requires it too
        request = asked.get(request_id)
        if request is None:
            raise APIError(400, f"No MCP approval request with id {request_id!r} in this conversation.",
                           param="input", code="invalid_approval_request_id")
        if not answer.get("approve"):
            settled.append({"name": request["name"], "server_label": request["server_label"], "denied": True})
            continue
        server = find_server(turn, request["server_label"])
        approved.setdefault(request["server_label"], (server, []))[1].append((request, answer))
    output: list[dict[str, Any]] = []
    for label, (server, pairs) in approved.items():
        items: list[dict[str, Any]] = []

        async def work(session: Session) -> None:
            for request, _ in pairs:
                items.append(await _call(session, label, request["name"], request["arguments"],
                                         request["id"]))

        try:
            await with_server(server, work)
        except McpFailure as failure:
            for request, _ in pairs[len(items):]:
                items.append(call_item(label, request["name"], request["arguments"], error=failure.error,
                                       approval_request_id=request["id"]))
        output.extend(items)
    settled.extend(output)
    turn.extras[SETTLED] = settled
    return output


def _after_approvals(turn: Turn) -> list[dict[str, Any]] | None:
    """Default rule: after approval answers, the model summarizes what the calls gave."""
    settled = turn.extras.get(SETTLED)
    return [message_item(summary(settled))] if settled is not None else None


BEFORE_REPLY.append(settle_approvals)
DEFAULT_RULES.append(_after_approvals)


# --------------------------------------------------------------------------- streaming


def _list_events(item: dict[str, Any], index: int) -> list[dict[str, Any]]:
    base = {"item_id": item["id"], "output_index": index}
    end = "failed" if item.get("error") else "completed"
    return [{"type": "response.mcp_list_tools.in_progress", **base},
            {"type": f"response.mcp_list_tools.{end}", **base}]


def _call_events(item: dict[str, Any], index: int) -> list[dict[str, Any]]:
    base = {"item_id": item["id"], "output_index": index}
    events: list[dict[str, Any]] = [{"type": "response.mcp_call.in_progress", **base}]
    events += [{"type": "response.mcp_call_arguments.delta", **base, "delta": piece}
               for piece in chunks(item["arguments"])]
    events.append({"type": "response.mcp_call_arguments.done", **base, "arguments": item["arguments"]})
    end = "failed" if item.get("error") is not None else "completed"
    events.append({"type": f"response.mcp_call.{end}", **base})
    return events


def _list_added(item: dict[str, Any]) -> dict[str, Any]:
    added = {**item, "tools": []}
    added.pop("error", None)
    return added


def _call_added(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "status": "in_progress", "arguments": "", "output": None, "error": None}


ITEM_EVENTS["mcp_list_tools"] = _list_events
ITEM_EVENTS["mcp_call"] = _call_events
ADDED_FORMS["mcp_list_tools"] = _list_added
ADDED_FORMS["mcp_call"] = _call_added
