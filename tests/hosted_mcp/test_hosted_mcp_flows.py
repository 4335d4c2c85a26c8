"""Remote MCP end to end: flowrun (real openai SDK over HTTP) -> the emulator (the hosted
side, using the MCP SDK) -> a real MCP server on loopback."""

from __future__ import annotations

import json

from flowkit import Recorder, files_text, record, run_flow, spec_errors
from hosted_mcp_kit import TOKEN, docs_flow  # type: ignore[import-not-found]
from mcp_docs_fixture import REFUSAL  # type: ignore[import-not-found]

FETCH = {"mcp_call": {"server_label": "docs", "name": "fetch_page", "arguments": {"page": "api-keys"}}}


def _no_token_anywhere(result, emu):
    for path, text in files_text(result.run_dir).items():
        assert TOKEN not in text, f"the token leaked into {path}"
    assert TOKEN not in json.dumps(emu.journal())


def test_request_carries_the_tool_definition(tmp_path, emu, docs, token_env):
    emu.script({"steps": {"ask": [{"text": "no tools needed"}]}})
    flow = docs_flow(docs.url, server_label="internal_docs", allowed_tools=["search_docs", "fetch_page"],
                     require_approval={"never": ["search_docs"], "always": ["fetch_page"]},
                     approve=["fetch_page"])
    result = run_flow(tmp_path, emu, flow)
    assert result.status == "succeeded", result.to_json()
    (body,) = emu.bodies()
    # the journal masks the credential header; the emulator accepted the body (spec-checked)
    assert body["tools"] == [{
        "type": "mcp", "server_label": "internal_docs", "server_url": docs.url,
        "headers": {"Authorization": "<redacted>"},
        "allowed_tools": ["search_docs", "fetch_page"],
        "require_approval": {"always": {"tool_names": ["fetch_page"]},
                             "never": {"tool_names": ["search_docs"]}},
    }]
    assert spec_errors("MCPTool", body["tools"][0]) == []
    assert docs.calls == []  # nothing called: the model did not use the tool
    _no_token_anywhere(result, emu)


def test_policy_approves_and_the_call_really_runs(tmp_path, emu, docs, token_env):
    emu.script({"steps": {"ask": [FETCH, {"text": "Rotate it in Settings."}]}})
    result = run_flow(tmp_path, emu, docs_flow(docs.url, approve=["fetch_page"]))
    assert result.status == "succeeded", result.to_json()
    assert docs.called("fetch_page") == [{"tool": "fetch_page", "arguments": {"page": "api-keys"},
                                          "authorized": True}]
    step = result.steps["ask"].result
    assert step.text == "Rotate it in Settings."
    (approval,) = step.approvals
    assert approval["decision"] == "approved" and approval["decided_by"] == "policy"
    assert approval["server"] == "docs" and approval["tool"] == "fetch_page"
    assert approval["arguments"] == {"page": "api-keys"}
    assert isinstance(approval["time"], float)
    listing, call = step.tool_calls
    assert listing == {"type": "mcp_list_tools", "kind": "mcp", "server": "docs",
                       "tools": ["search_docs", "fetch_page", "delete_page"]}
    assert call["type"] == "mcp_call" and call["name"] == "fetch_page"
    assert call["output"].startswith("# api-keys\nRotate a key")
    assert call["approval_request_id"] == approval["approval_request_id"]
    # the approval went back chained to the first response
    first, second = emu.bodies()
    assert second["previous_response_id"] == step.response_ids[0]
    assert second["input"] == [{"type": "mcp_approval_response", "approve": True,
                                "approval_request_id": approval["approval_request_id"]}]
    rec = record(result)["steps"]["ask"]
    assert rec["approvals"][0]["decided_by"] == "policy"
    assert [c["type"] for c in rec["tool_calls"]] == ["mcp_list_tools", "mcp_call"]
    _no_token_anywhere(result, emu)


def test_policy_denies_tools_not_listed(tmp_path, emu, docs, token_env):
    emu.script({"steps": {"ask": [FETCH]}})  # the entry repeats: the model then reports
    result = run_flow(tmp_path, emu, docs_flow(docs.url, approve=["search_docs"]))
    assert result.status == "succeeded", result.to_json()
    assert docs.called("fetch_page") == []  # denied: the server never saw the call
    step = result.steps["ask"].result
    (approval,) = step.approvals
    assert (approval["decision"], approval["decided_by"]) == ("denied", "policy")
    assert "approve: policy" in approval["message"]
    answer = emu.bodies()[1]["input"][0]
    assert answer["approve"] is False and answer["reason"]
    assert step.text == "[emulator] mcp results: fetch_page was not approved"
    assert [c["type"] for c in step.tool_calls] == ["mcp_list_tools"]


def test_approve_all_and_none(tmp_path, emu, docs, token_env):
    emu.script({"steps": {"ask": [FETCH]}})
    everything = run_flow(tmp_path / "all", emu, docs_flow(docs.url, approve="all"))
    assert everything.steps["ask"].result.approvals[0]["decision"] == "approved"
    assert len(docs.called("fetch_page")) == 1
    emu.script({"steps": {"ask": [FETCH]}})
    nothing = run_flow(tmp_path / "none", emu, docs_flow(docs.url, approve="none"))
    assert nothing.steps["ask"].result.approvals[0]["decision"] == "denied"
    assert len(docs.called("fetch_page")) == 1


def test_no_policy_and_not_interactive_denies_and_says_how_to_allow(tmp_path, emu, docs, token_env):
    emu.script({"steps": {"ask": [FETCH, {"text": "I could not read the page."}]}})
    hooks = Recorder()
    result = run_flow(tmp_path, emu, docs_flow(docs.url), hooks=hooks)
    assert result.status == "succeeded", result.to_json()
    assert docs.called("fetch_page") == []
    (approval,) = result.steps["ask"].result.approvals
    assert (approval["decision"], approval["decided_by"]) == ("denied", "default")
    message = approval["message"]
    assert "approve: [fetch_page]" in message and "--interactive" in message
    assert message in hooks.details()  # shown as the step's detail in the live view
    assert record(result)["steps"]["ask"]["approvals"][0]["message"] == message


def test_calls_without_approval_run_in_the_same_response(tmp_path, emu, docs, token_env):
    emu.script({"steps": {"ask": [{"mcp_call": {
        "name": "search_docs", "arguments": {"query": "rotate"}, "text": "Found: {output}"}}]}})
    flow = docs_flow(docs.url, require_approval={"never": ["search_docs"]})
    result = run_flow(tmp_path, emu, flow)
    assert result.status == "succeeded", result.to_json()
    step = result.steps["ask"].result
    assert step.approvals == [] and len(step.response_ids) == 1
    assert step.text == "Found: 2 pages match 'rotate': api-keys, rotation"
    assert docs.called("search_docs") == [{"tool": "search_docs", "arguments": {"query": "rotate"},
                                           "authorized": False}]


def test_allowed_tools_filter_what_the_model_sees_and_can_call(tmp_path, emu, docs, token_env):
    emu.script({"steps": {"ask": [{"mcp_call": {"name": "delete_page", "arguments": {"page": "x"}}}]}})
    flow = docs_flow(docs.url, allowed_tools=["search_docs"], require_approval="never")
    result = run_flow(tmp_path, emu, flow)
    assert result.status == "failed"
    step = result.steps["ask"].result
    assert step.tool_calls[0] == {"type": "mcp_list_tools", "kind": "mcp", "server": "docs",
                                  "tools": ["search_docs"]}
    assert "delete_page" in step.error and "allowed_tools" in step.error
    assert docs.called("delete_page") == []  # never reached the server


def test_a_wrong_token_fails_the_step_with_the_servers_message(tmp_path, emu, docs, monkeypatch):
    wrong = "tok-wrong-0a1b2c3d"
    monkeypatch.setenv("DOCS_TOKEN", wrong)
    emu.script({"steps": {"ask": [FETCH]}})
    result = run_flow(tmp_path, emu, docs_flow(docs.url, approve="all"))
    assert result.status == "failed"
    error = result.steps["ask"].error
    assert "401" in error and REFUSAL in error, error
    assert error.startswith("MCP server 'docs': Error retrieving tool list: HTTP 401 Unauthorized")
    assert error.endswith("check the headers of tool 'docs' (and the secrets they read)")
    assert docs.calls == []
    listing = result.steps["ask"].result.tool_calls[0]
    assert listing["type"] == "mcp_list_tools" and REFUSAL in listing["error"]
    for path, text in files_text(result.run_dir).items():
        assert wrong not in text, path
    assert wrong not in json.dumps(emu.journal())


def test_a_missing_token_fails_the_protected_tool_with_its_message(tmp_path, emu, docs, token_env):
    emu.script({"steps": {"ask": [FETCH]}})
    flow = docs_flow(docs.url, headers={}, require_approval="never")
    result = run_flow(tmp_path, emu, flow)
    assert result.status == "failed"
    error = result.steps["ask"].error
    assert "fetch_page" in error and "needs the header Authorization" in error, error
    assert docs.called("fetch_page") == [{"tool": "fetch_page", "arguments": {"page": "api-keys"},
                                          "authorized": False}]


def test_store_false_resends_the_conversation(tmp_path, emu, docs, token_env):
    emu.script({"steps": {"ask": [FETCH, {"text": "done"}]}})
    result = run_flow(tmp_path, emu, docs_flow(docs.url, approve=["fetch_page"], step="    store: false\n"))
    assert result.status == "succeeded", result.to_json()
    assert len(docs.called("fetch_page")) == 1
    second = emu.bodies()[1]
    assert "previous_response_id" not in second
    kinds = [i.get("type", "message") for i in second["input"]]
    assert kinds == ["message", "mcp_list_tools", "mcp_approval_request", "mcp_approval_response"]
    assert result.steps["ask"].result.text == "done"


def test_streaming_records_the_same(tmp_path, emu, docs, token_env):
    emu.script({"steps": {"ask": [FETCH, {"text": "streamed"}]}})
    result = run_flow(tmp_path, emu, docs_flow(docs.url, approve="all", step="    stream: true\n"))
    assert result.status == "succeeded", result.to_json()
    step = result.steps["ask"].result
    assert step.text == "streamed"
    assert [c["type"] for c in step.tool_calls] == ["mcp_list_tools", "mcp_call"]
    assert len(docs.called("fetch_page")) == 1


def test_headers_with_literal_credentials_are_masked_too(tmp_path, emu, docs):
    # no secrets: a token written in the flow (X-Docs-Token is not a header the redactor
    # knows by name) is still masked wherever flowrun writes
    emu.script({"steps": {"ask": [{"mcp_call": {"name": "fetch_page", "arguments": {"page": "p"}}}]}})
    headers = {"Authorization": "Bearer " + TOKEN, "X-Docs-Token": TOKEN}
    flow = docs_flow(docs.url, headers=headers, require_approval="never")
    result = run_flow(tmp_path, emu, flow.replace("secrets: [DOCS_TOKEN]\n", ""))
    assert result.status == "succeeded", result.to_json()
    assert docs.called("fetch_page")[0]["authorized"] is True
    _no_token_anywhere(result, emu)


def test_background_mode_answers_approvals_too(tmp_path, emu, docs, token_env):
    emu.script({"steps": {"ask": [FETCH, {"text": "done in the background"}]}})
    flow = docs_flow(docs.url, approve=["fetch_page"], step="    background: true\n    poll_interval: 0.05\n")
    result = run_flow(tmp_path, emu, flow)
    assert result.status == "succeeded", result.to_json()
    assert result.steps["ask"].result.text == "done in the background"
    assert len(docs.called("fetch_page")) == 1
    assert all(body.get("background") for body in emu.bodies())
