"""The emulator's hosted MCP side over raw HTTP: items, streaming events and listings all
conform to the OpenAPI spec; approval answers, filters and failures behave as documented."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import httpx2
import pytest
from flowkit import parse_sse, spec_errors
from hosted_mcp_kit import TOKEN  # type: ignore[import-not-found]
from mcp_docs_fixture import REFUSAL  # type: ignore[import-not-found]

from flowrun.emulator.conformance import load_subset
from flowrun.emulator.hosted_mcp import allowed, needs_approval
from flowrun.tools.mcp import require_approval_param

SCHEMAS = load_subset()["components"]["schemas"]
EVENT_SCHEMA = {SCHEMAS[r["$ref"].rsplit("/", 1)[-1]]["properties"]["type"]["enum"][0]: r["$ref"].rsplit("/", 1)[-1]
                for r in SCHEMAS["ResponseStreamEvent"]["anyOf"]}


@pytest.fixture
def http(emu):
    with httpx2.Client(base_url=emu.server.url, timeout=30) as client:
        yield client


def tool(url: str, token: str | None = TOKEN, **extra) -> dict:
    out = {"type": "mcp", "server_label": "docs", "server_url": url, **extra}
    if token is not None:
        out["headers"] = {"Authorization": f"Bearer {token}"}
    return out


def post(http, tools, input_, stream=False, **extra):
    body = {"model": "gpt-4.1", "input": input_, "tools": tools, "metadata": {"flowrun_step": "s"}, **extra}
    if stream:
        body["stream"] = True
    r = http.post("/v1/responses", json=body)
    assert r.status_code == 200, r.text
    if not stream:
        assert spec_errors("Response", r.json()) == []
        return r.json(), None
    events = parse_sse(r.text)
    for event in events:
        assert spec_errors("ResponseStreamEvent", event) == [], event
        assert spec_errors(EVENT_SCHEMA[event["type"]], event) == [], event
    assert events[-1]["type"] == "response.completed"
    return events[-1]["response"], [e["type"] for e in events]


FETCH = {"mcp_call": {"name": "fetch_page", "arguments": {"page": "api-keys"}}}


@pytest.mark.parametrize("stream", [False, True])
def test_approval_round_trip_conforms(http, emu, docs, stream):
    emu.script({"steps": {"s": [FETCH]}})
    tools = [tool(docs.url)]
    first, events = post(http, tools, "rotate?", stream)
    listing, request = first["output"]
    assert listing["type"] == "mcp_list_tools" and listing["server_label"] == "docs"
    assert [t["name"] for t in listing["tools"]] == ["search_docs", "fetch_page", "delete_page"]
    assert listing["tools"][0]["input_schema"]["properties"] == {"query": {"title": "Query", "type": "string"}}
    assert listing["tools"][0]["annotations"] == {"readOnlyHint": True}
    assert request["type"] == "mcp_approval_request" and request["name"] == "fetch_page"
    assert json.loads(request["arguments"]) == {"page": "api-keys"}
    assert docs.calls == []  # nothing called before the approval
    if stream:
        assert events[2:5] == ["response.output_item.added", "response.mcp_list_tools.in_progress",
                               "response.mcp_list_tools.completed"]

    answer = {"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": True}
    second, events = post(http, tools, [answer], stream, previous_response_id=first["id"])
    call, message = second["output"]
    assert call["type"] == "mcp_call" and call["approval_request_id"] == request["id"]
    assert call["status"] == "completed" and call["error"] is None
    assert call["output"].startswith("# api-keys")
    assert message["content"][0]["text"].startswith("[emulator] mcp results: # api-keys")
    assert docs.called("fetch_page") == [{"tool": "fetch_page", "arguments": {"page": "api-keys"},
                                          "authorized": True}]
    if stream:
        first_item = events[2:events.index("response.output_item.done") + 1]
        deltas = first_item.count("response.mcp_call_arguments.delta")
        assert deltas >= 1
        assert first_item == ["response.output_item.added", "response.mcp_call.in_progress",
                              *["response.mcp_call_arguments.delta"] * deltas,
                              "response.mcp_call_arguments.done", "response.mcp_call.completed",
                              "response.output_item.done"]
    # the echoed approval answer carries request_id as well (response-side schema)
    items = http.get(f"/v1/responses/{second['id']}/input_items", params={"order": "asc"}).json()
    assert spec_errors("ResponseItemList", items) == []
    echoed = [i for i in items["data"] if i["type"] == "mcp_approval_response"]
    assert echoed[0]["request_id"] == echoed[0]["approval_request_id"] == request["id"]


def test_a_denied_answer_skips_the_call(http, emu, docs):
    emu.script({"steps": {"s": [FETCH, {"text": "ok, I will not."}]}})
    tools = [tool(docs.url)]
    first, _ = post(http, tools, "rotate?")
    answer = {"type": "mcp_approval_response", "approval_request_id": first["output"][1]["id"],
              "approve": False, "reason": "no"}
    second, _ = post(http, tools, [answer], previous_response_id=first["id"])
    assert [i["type"] for i in second["output"]] == ["message"]
    assert second["output"][0]["content"][0]["text"] == "ok, I will not."
    assert docs.calls == []


@pytest.mark.parametrize("stream", [False, True])
def test_failures_conform_and_carry_the_servers_message(http, emu, docs, stream):
    emu.script({"steps": {"s": [FETCH]}})
    refused, events = post(http, [tool(docs.url, token="wrong-token")], "x", stream)
    listing = refused["output"][0]
    assert listing["type"] == "mcp_list_tools" and listing["tools"] == []
    assert listing["error"] == f"Error retrieving tool list: HTTP 401 Unauthorized: {REFUSAL}"
    if stream:
        assert "response.mcp_list_tools.failed" in events

    emu.script({"steps": {"s": [FETCH]}})
    failed, events = post(http, [tool(docs.url, token=None, require_approval="never")], "x", stream)
    listing, call, message = failed["output"]
    assert call["status"] == "failed" and call["output"] is None
    assert call["error"]["type"] == "mcp_tool_execution_error"
    assert "needs the header Authorization" in call["error"]["content"][0]["text"]
    assert "fetch_page failed" in message["content"][0]["text"]
    if stream:
        assert "response.mcp_call.failed" in events


def test_an_unreachable_server_is_a_listing_error(http, emu):
    emu.script({"steps": {"s": [FETCH]}})
    out, _ = post(http, [tool("http://127.0.0.1:9/mcp")], "x")
    assert "could not reach the MCP server at http://127.0.0.1:9/mcp" in out["output"][0]["error"]


def test_filtered_and_unknown_tools_are_not_called(http, emu, docs):
    emu.script({"steps": {"s": [{"mcp_call": [{"name": "delete_page", "arguments": {"page": "x"}},
                                              {"name": "no_such_tool"}]}]}})
    out, _ = post(http, [tool(docs.url, allowed_tools={"read_only": True}, require_approval="never")], "x")
    listing, filtered, unknown, _ = out["output"]
    assert [t["name"] for t in listing["tools"]] == ["search_docs"]
    assert filtered["error"]["type"] == "mcp_protocol_error"
    assert "not in the tool's allowed_tools" in filtered["error"]["message"]
    assert "the server has no such tool" in unknown["error"]["message"]
    assert docs.calls == []


def test_the_listing_is_emitted_once_per_conversation(http, emu, docs):
    search = {"mcp_call": {"name": "search_docs", "arguments": {"query": "keys"}}}
    emu.script({"steps": {"s": [search]}})
    tools = [tool(docs.url, require_approval="never")]
    first, _ = post(http, tools, "x")
    second, _ = post(http, tools, "again", previous_response_id=first["id"])
    assert [i["type"] for i in first["output"]] == ["mcp_list_tools", "mcp_call", "message"]
    assert [i["type"] for i in second["output"]] == ["mcp_call", "message"]


def test_bad_scripts_and_answers_are_400(http, emu, docs):
    emu.script({"steps": {"s": [{"mcp_call": {"server_label": "other", "name": "x"}}]}})
    body = {"model": "m", "input": "x", "tools": [tool(docs.url)], "metadata": {"flowrun_step": "s"}}
    r = http.post("/v1/responses", json=body)
    assert r.status_code == 400 and "no MCP tool with that server_label" in r.json()["error"]["message"]
    answer = {"type": "mcp_approval_response", "approval_request_id": "mcpr_nope", "approve": True}
    r = http.post("/v1/responses", json={**body, "input": [answer]})
    assert r.status_code == 400 and "mcpr_nope" in r.json()["error"]["message"]


def test_without_the_mcp_sdk_the_emulator_says_what_to_install(tmp_path):
    code = textwrap.dedent("""
        import asyncio, json, sys
        sys.modules["mcp"] = None          # as if the mcp extra were not installed
        import flowrun.emulator
        from flowrun.emulator import Emulator
        assert "httpx2" not in sys.modules
        emu = Emulator(script={"default": [{"mcp_call": {"name": "search_docs"}}]})
        body = {"model": "m", "input": "x", "tools": [
            {"type": "mcp", "server_label": "docs", "server_url": "http://127.0.0.1:9/mcp"}]}
        answer = asyncio.run(emu.create_response(body))
        print(json.dumps(answer.body["output"][0]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    listing = json.loads(proc.stdout)
    assert listing["type"] == "mcp_list_tools"
    assert "the MCP SDK is not installed (pip install 'flowrun[mcp]')" in listing["error"]


# --------------------------------------------------------------------------- rules


SEARCH = {"name": "search_docs", "annotations": {"readOnlyHint": True}}
DELETE = {"name": "delete_page", "annotations": {"destructiveHint": True}}


def test_approval_and_filter_rules():
    assert needs_approval({}, SEARCH) and needs_approval({"require_approval": "always"}, SEARCH)
    assert not needs_approval({"require_approval": "never"}, SEARCH)
    by_name = {"require_approval": {"never": {"tool_names": ["search_docs"]}}}
    assert not needs_approval(by_name, SEARCH) and needs_approval(by_name, DELETE)
    read_only = {"require_approval": {"never": {"read_only": True}}}
    assert not needs_approval(read_only, SEARCH) and needs_approval(read_only, DELETE)
    assert allowed({}, DELETE) and not allowed({"allowed_tools": ["search_docs"]}, DELETE)
    assert allowed({"allowed_tools": {"read_only": True}}, SEARCH)
    assert not allowed({"allowed_tools": {"read_only": True}}, DELETE)


def test_require_approval_parameter():
    from flowrun.spec import RequireApprovalByName

    assert require_approval_param("never") == "never"
    assert require_approval_param(RequireApprovalByName(always=["a"], never=["b", "c"])) == {
        "always": {"tool_names": ["a"]}, "never": {"tool_names": ["b", "c"]}}
    assert require_approval_param(RequireApprovalByName()) == "always"
