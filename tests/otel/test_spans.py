"""Spans of real runs on the emulator (the real SDK over HTTP), caught by the SDK's
in-memory exporter: the tree, names and attributes of the GenAI conventions, message
content only on request and masked, errors, retries and hosted tools."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

from flowkit import record, run_flow, write

TOOLS_PY = '''
def weather(city: str) -> dict:
    """Weather for a city."""
    return {"city": city, "temp": 21}
'''

PROBE_PY = '''
import json, os, sys
sys.stdin.read()
print(json.dumps({"traceparent": os.environ.get("TRACEPARENT")}))
'''

FLOW = f"""
name: traced
defaults: {{model: gpt-4.1, retries: 0}}
tools:
  weather: {{python: "tools:weather"}}
  probe:
    command: [{json.dumps(sys.executable)}, probe.py]
    description: Reports the trace context it was started with.
steps:
  ask:
    instructions: You answer weather questions.
    input: Weather in Paris?
    tools: [weather, probe]
  other:
    input: Something else
  explain:
    for_each: ["a", "b"]
    input: "Explain {{{{ item }}}}"
outputs:
  text: "{{{{ steps.ask.text }}}}"
"""

CALLS = {"function_calls": [{"name": "weather", "arguments": {"city": "Paris"}, "call_id": "call_w"},
                            {"name": "probe", "arguments": {}, "call_id": "call_p"}]}


def setup(tmp_path: Path, emu) -> None:
    write(tmp_path / "tools.py", TOOLS_PY)
    write(tmp_path / "probe.py", PROBE_PY)
    emu.script({"steps": {"ask": [CALLS, {"default_rule": True}]}})


def hex_id(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def content_keys(span) -> set[str]:
    return {k for k in span.attributes if k in (
        "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
        "gen_ai.tool.definitions", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result")}


def test_a_run_with_tools_makes_the_convention_span_tree(tmp_path, emu, spans):
    setup(tmp_path, emu)
    result = run_flow(tmp_path, emu, FLOW)
    assert result.status == "succeeded", result.error
    rec = record(result)

    root = spans.one("invoke_workflow traced")
    assert root.parent is None
    assert root.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert root.attributes["gen_ai.workflow.name"] == "traced"
    assert root.attributes["gen_ai.provider.name"] == "openai"
    assert root.attributes["flowrun.run.id"] == result.run_id
    assert root.attributes["flowrun.run.status"] == "succeeded"
    assert {s.context.trace_id for s in spans.all} == {root.context.trace_id}

    # the parallel steps hang off the run; the for_each items off their step
    ask, other, explain = (spans.one("invoke_agent ask"), spans.one("invoke_agent other"),
                           spans.one("step explain"))
    for step in (ask, other, explain):
        assert spans.parent(step) is root
    assert ask.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert ask.attributes["gen_ai.agent.name"] == "ask"
    assert ask.attributes["flowrun.step.status"] == "succeeded"
    items = spans.named("invoke_agent explain")
    assert sorted(s.attributes["flowrun.step.index"] for s in items) == [0, 1]
    assert all(spans.parent(s) is explain for s in items)
    assert explain.attributes["flowrun.step.items"] == 2

    # a client span per model turn, under its step
    chats = sorted((s for s in spans.children(ask) if s.name == "chat gpt-4.1"), key=lambda s: s.start_time)
    assert len(chats) == 2
    assert [c.attributes["gen_ai.response.id"] for c in chats] == rec["steps"]["ask"]["response_ids"]
    port = urlsplit(emu.base_url).port
    for chat in chats:
        a = chat.attributes
        assert chat.kind.name == "CLIENT"
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.provider.name"] == "openai"
        assert a["gen_ai.request.model"] == "gpt-4.1" and a["gen_ai.response.model"] == "gpt-4.1"
        assert a["server.address"] == "127.0.0.1" and a["server.port"] == port
        assert a["gen_ai.conversation.id"] == f"{result.run_id}/ask"
        assert a["openai.api.type"] == "responses"
    assert chats[0].attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert chats[1].attributes["gen_ai.response.finish_reasons"] == ("stop",)
    usage = rec["steps"]["ask"]["usage"]
    assert sum(c.attributes["gen_ai.usage.input_tokens"] for c in chats) == usage["input_tokens"]
    assert sum(c.attributes["gen_ai.usage.output_tokens"] for c in chats) == usage["output_tokens"]
    assert ask.attributes["gen_ai.usage.input_tokens"] == usage["input_tokens"]
    item_convs = sorted(c.attributes["gen_ai.conversation.id"] for s in items for c in spans.children(s))
    assert item_convs == [f"{result.run_id}/explain.0", f"{result.run_id}/explain.1"]

    # execute_tool spans between the two turns, under the step
    weather, probe = spans.one("execute_tool weather"), spans.one("execute_tool probe")
    for tool, call_id, kind in ((weather, "call_w", "python"), (probe, "call_p", "command")):
        assert spans.parent(tool) is ask
        assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
        assert tool.attributes["gen_ai.tool.type"] == "function"
        assert tool.attributes["gen_ai.tool.call.id"] == call_id
        assert tool.attributes["flowrun.tool.kind"] == kind
        assert chats[0].end_time <= tool.start_time <= tool.end_time <= chats[1].start_time
    assert weather.attributes["gen_ai.tool.description"] == "Weather for a city."

    # the command tool ran inside its span's trace context
    out = json.loads(next(c for c in rec["steps"]["ask"]["tool_calls"] if c["name"] == "probe")["output"])
    version, trace_id, parent_id, flags = out["traceparent"].split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled
    assert trace_id == hex_id(ask.context.trace_id, 32)
    assert parent_id == hex_id(probe.context.span_id, 16)

    for span in spans.all:  # content is opt-in
        assert not content_keys(span), span.name


def test_content_is_recorded_on_request_and_masked(tmp_path, emu, content_spans):
    secret = "tok-5f3a9c1d2e7b"
    write(tmp_path / "tools.py", TOOLS_PY)
    emu.script({"steps": {"ask": [
        {"function_calls": [{"name": "weather", "arguments": {"city": secret}, "call_id": "call_s"}]},
        {"default_rule": True}]}})
    result = run_flow(tmp_path, emu, """
name: secretive
defaults: {model: gpt-4.1}
tools:
  weather: {python: "tools:weather"}
steps:
  ask:
    instructions: "Never repeat {{ secrets.DOCS_TOKEN }}."
    input: "Use {{ secrets.DOCS_TOKEN }} for the weather in Paris."
    tools: [weather]
""", environ={"DOCS_TOKEN": secret})
    assert result.status == "succeeded", result.error
    spans = content_spans
    for span in spans.all:
        for value in span.attributes.values():
            assert secret not in str(value), span.name
    first, second = sorted(spans.named("chat gpt-4.1"), key=lambda s: s.start_time)
    assert json.loads(first.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Use *** for the weather in Paris."}]}]
    assert json.loads(first.attributes["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "Never repeat ***."}]
    assert json.loads(first.attributes["gen_ai.tool.definitions"])[0]["name"] == "weather"
    out = json.loads(first.attributes["gen_ai.output.messages"])
    assert out[0]["role"] == "assistant" and out[0]["finish_reason"] == "tool_calls"
    assert {"type": "tool_call", "id": "call_s", "name": "weather", "arguments": {"city": "***"}} in out[0]["parts"]
    sent_back = json.loads(second.attributes["gen_ai.input.messages"])
    assert sent_back == [{"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_s",
                                                     "result": {"city": "***", "temp": 21}}]}]
    final = json.loads(second.attributes["gen_ai.output.messages"])[0]
    assert final["finish_reason"] == "stop" and final["parts"][0]["type"] == "text"
    tool = spans.one("execute_tool weather")
    assert json.loads(tool.attributes["gen_ai.tool.call.arguments"]) == {"city": "***"}
    assert json.loads(tool.attributes["gen_ai.tool.call.result"]) == {"city": "***", "temp": 21}


def test_a_failed_model_call_marks_the_chain_of_spans(tmp_path, emu, spans):
    emu.faults("400x1")
    result = run_flow(tmp_path, emu, """
name: failing
steps:
  ask:
    input: Hello
""")
    assert result.status == "failed"
    chat, step, root = spans.one("chat gpt-4.1"), spans.one("invoke_agent ask"), spans.one("invoke_workflow failing")
    assert chat.attributes["error.type"] == "400"
    assert chat.status.status_code.name == "ERROR"
    assert step.status.status_code.name == "ERROR" and step.attributes["flowrun.step.status"] == "failed"
    assert step.attributes["error.type"] == "RequestRejected"
    assert root.status.status_code.name == "ERROR" and root.attributes["flowrun.run.status"] == "failed"
    assert "gen_ai.response.id" not in chat.attributes


def test_one_client_span_covers_the_retries_of_a_turn(tmp_path, emu, spans):
    emu.faults("500x1")
    result = run_flow(tmp_path, emu, """
name: retried
steps:
  ask:
    input: Hello
    retries: {max: 2, initial_delay: 0.01}
""")
    assert result.status == "succeeded", result.error
    assert len(emu.posts("ask")) == 2
    chat = spans.one("chat gpt-4.1")
    assert chat.status.status_code.name == "UNSET"
    assert chat.attributes["gen_ai.response.id"] == record(result)["steps"]["ask"]["response_id"]


def test_reasoning_and_cached_tokens(tmp_path, emu, spans):
    write(tmp_path / "tools.py", TOOLS_PY)
    emu.script({"steps": {"ask": [
        {"function_calls": [{"name": "weather", "arguments": {"city": "Oslo"}, "call_id": "c1"}]},
        {"default_rule": True}]}})
    result = run_flow(tmp_path, emu, """
name: thinking
defaults: {model: o4-mini}
tools:
  weather: {python: "tools:weather"}
steps:
  ask:
    instructions: You are a careful forecaster who always checks the weather tool first.
    input: Weather in Oslo?
    tools: [weather]
    store: false
""")
    assert result.status == "succeeded", result.error
    usage = record(result)["steps"]["ask"]["usage"]
    chats = spans.named("chat o4-mini")
    reasoning = sum(c.attributes["gen_ai.usage.reasoning.output_tokens"] for c in chats)
    cached = sum(c.attributes["gen_ai.usage.cache_read.input_tokens"] for c in chats)
    assert reasoning == usage["output_tokens_details"]["reasoning_tokens"] > 0
    assert cached == usage["input_tokens_details"]["cached_tokens"] > 0


def test_a_hosted_tool_is_a_span_inside_its_model_call(tmp_path, emu, spans):
    result = run_flow(tmp_path, emu, """
name: searching
steps:
  research:
    input: Contoso quarterly results
    tools: [web_search]
""")
    assert result.status == "succeeded", result.error
    chat = spans.one("chat gpt-4.1")
    search = spans.one("execute_tool web_search")
    assert spans.parent(search) is chat
    assert search.attributes["gen_ai.tool.type"] == "extension"
    response = json.loads(next((result.run_dir / "responses").glob("research*.json")).read_text())
    calls = [i for i in response["output"] if i["type"] == "web_search_call"]
    assert search.attributes["gen_ai.tool.call.id"] == calls[0]["id"]
    assert chat.start_time <= search.start_time <= search.end_time <= chat.end_time


def test_a_run_continues_the_trace_it_was_started_in(tmp_path, emu, spans, monkeypatch):
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    monkeypatch.setenv("TRACEPARENT", f"00-{trace_id}-{parent}-01")
    result = run_flow(tmp_path, emu, "name: child\nsteps:\n  ask:\n    input: Hi\n")
    assert result.status == "succeeded", result.error
    root = spans.one("invoke_workflow child")
    assert hex_id(root.context.trace_id, 32) == trace_id
    assert hex_id(root.parent.span_id, 16) == parent


def test_streamed_and_background_turns_on_azure(tmp_path, emu, spans):
    result = run_flow(tmp_path, emu, """
name: modes
defaults: {model: gpt-4.1-mini}
steps:
  streamed:
    input: Stream this
    stream: true
  later:
    input: Take your time
    background: true
    poll_interval: 50ms
""", provider=emu.azure_provider())
    assert result.status == "succeeded", result.error
    rec = record(result)
    chats = {s.attributes["flowrun.step.id"]: s for s in spans.named("chat gpt-4.1-mini")}
    assert set(chats) == {"streamed", "later"}
    for step, chat in chats.items():
        assert chat.attributes["gen_ai.provider.name"] == "azure.ai.openai"
        assert chat.attributes["gen_ai.response.id"] == rec["steps"][step]["response_id"]
        assert chat.attributes["gen_ai.usage.output_tokens"] == rec["steps"][step]["usage"]["output_tokens"]
    assert chats["streamed"].attributes["gen_ai.request.stream"] is True
    assert "gen_ai.request.stream" not in chats["later"].attributes
    assert spans.one("invoke_agent later").attributes["gen_ai.provider.name"] == "azure.ai.openai"
    assert spans.one("invoke_workflow modes").attributes["gen_ai.provider.name"] == "azure.ai.openai"


def test_custom_and_shell_calls_are_execute_tool_spans(tmp_path, emu, spans):
    write(tmp_path / "tools.py", 'def set_version(text: str) -> str:\n    return "set " + text\n')
    emu.script({"steps": {"fix": [
        {"custom_tool_call": {"name": "version", "input": "1.2.3"}},
        {"shell_call": "echo hello"},
        {"default_rule": True}]}})
    result = run_flow(tmp_path, emu, """
name: workshop
tools:
  version:
    custom: {python: "tools:set_version", description: Sets the version.}
  sh:
    shell: {allow: [echo]}
steps:
  fix:
    workspace: {}
    input: Set the version and say hello.
    tools: [version, sh]
""")
    assert result.status == "succeeded", result.error
    step = spans.one("invoke_agent fix")
    custom, shell = spans.one("execute_tool version"), spans.one("execute_tool shell")
    chats = sorted(spans.named("chat gpt-4.1"), key=lambda s: s.start_time)
    assert len(chats) == 3
    for tool, after in ((custom, chats[1]), (shell, chats[2])):
        assert spans.parent(tool) is step
        assert tool.attributes["gen_ai.tool.type"] == "function"
        assert tool.end_time <= after.start_time
    calls = {c["kind"]: c for c in record(result)["steps"]["fix"]["tool_calls"]}
    assert custom.attributes["flowrun.tool.kind"] == "custom_tool_call"
    assert custom.attributes["gen_ai.tool.call.id"] == calls["custom"]["call_id"]
    assert shell.attributes["flowrun.tool.kind"] == "shell_call"
