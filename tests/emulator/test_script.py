"""Scripted replies: per-step lists, match, repetition, every reply kind."""
from __future__ import annotations

import json
import time

import openai
import pytest
from flowkit import assert_conforms

from flowrun.emulator import Emulator, EmulatorServer, ScriptError, load_script as load_file


def step(name, item=None):
    meta = {"flowrun_step": name}
    if item is not None:
        meta["flowrun_item"] = str(item)
    return meta


def test_entries_are_used_in_order_and_last_repeats(client, load_script):
    load_script({"steps": {"a": ["first", "second"]}, "default": ["fallback"]})
    texts = [client.responses.create(model="m", input="q", metadata=step("a")).output_text for _ in range(4)]
    assert texts == ["first", "second", "second", "second"]
    assert client.responses.create(model="m", input="q", metadata=step("other")).output_text == "fallback"
    assert client.responses.create(model="m", input="q").output_text == "fallback"


def test_match_regex_and_fallbacks(client, load_script):
    load_script({"steps": {"a": [{"match": "(?i)contoso", "text": "about contoso"},
                                 {"match": "fabrikam", "text": "about fabrikam"}]}})
    ask = lambda text: client.responses.create(model="m", input=text, metadata=step("a")).output_text  # noqa: E731
    assert ask("Tell me about fabrikam") == "about fabrikam"   # last entry: repeats
    assert ask("Tell me about CONTOSO") == "about contoso"     # used once
    assert ask("contoso again") == "[emulator] turn 1: contoso again"  # no entry left matches -> default rule
    assert ask("fabrikam again") == "about fabrikam"


def test_fan_out_item_keys(client, load_script):
    load_script({"steps": {"explain[1]": ["item one"], "explain": ["any item"]}})
    assert client.responses.create(model="m", input="x", metadata=step("explain", 1)).output_text == "item one"
    assert client.responses.create(model="m", input="x", metadata=step("explain", 0)).output_text == "any item"


def test_function_calls_then_answer(client, load_script):
    load_script({"steps": {"ticker": [
        {"function_calls": [{"name": "lookup", "arguments": {"company": "Contoso"}},
                            {"name": "lookup", "arguments": "{not json", "call_id": "call_raw"}]},
        {"text": "CTSO"}]}})
    tools = [{"type": "function", "name": "lookup", "strict": False,
              "parameters": {"type": "object", "properties": {"company": {"type": "string"}}}}]
    r = client.responses.create(model="m", input="ticker?", tools=tools, metadata=step("ticker"))
    calls = [o for o in r.output if o.type == "function_call"]
    assert len(calls) == 2 and all(c.id.startswith("fc_") for c in calls)
    assert json.loads(calls[0].arguments) == {"company": "Contoso"} and calls[0].call_id.startswith("call_")
    assert calls[1].arguments == "{not json" and calls[1].call_id == "call_raw"
    r2 = client.responses.create(model="m", previous_response_id=r.id, tools=tools, metadata=step("ticker"),
                                 input=[{"type": "function_call_output", "call_id": c.call_id, "output": "x"}
                                        for c in calls])
    assert r2.output_text == "CTSO"
    items = client.responses.input_items.list(r2.id, order="asc").data
    assert [i.type for i in items] == ["message", "function_call", "function_call", "function_call_output",
                                       "function_call_output"]


def test_refusal_and_output_kinds(client, load_script):
    load_script({"default": [{"refusal": "No."}, {"output": {"risks": ["a"], "extra": 1}}]})
    r = client.responses.create(model="m", input="x")
    assert r.output[0].content[0].type == "refusal" and r.output[0].content[0].refusal == "No."
    schema = {"type": "object", "properties": {"risks": {"type": "array", "items": {"type": "string"}}},
              "required": ["risks"], "additionalProperties": False}
    r = client.responses.create(model="m", input="x", text={"format": {
        "type": "json_schema", "name": "r", "schema": schema, "strict": True}})
    # scripted output is returned as written, even when it violates the requested schema
    assert json.loads(r.output_text) == {"risks": ["a"], "extra": 1}


def test_scripted_error_with_retry_after(server, load_script):
    load_script({"default": [{"error": {"status": 429, "message": "slow down", "retry_after": 2}}, "ok"]})
    c = openai.OpenAI(base_url=server.base_url, api_key="t", max_retries=0)
    with pytest.raises(openai.RateLimitError) as info:
        c.responses.create(model="m", input="x")
    err = info.value
    assert err.status_code == 429 and err.response.headers["retry-after"] == "2"
    assert err.response.headers["retry-after-ms"] == "2000"
    assert err.body["message"] == "slow down" and err.code == "rate_limit_exceeded"
    assert_conforms("ErrorResponse", err.response.json())
    assert c.responses.create(model="m", input="x").output_text == "ok"


def test_sdk_retries_scripted_server_errors(server, http, load_script):
    load_script({"default": [{"error": {"status": 500, "retry_after": 0.01}},
                             {"error": {"status": 429, "retry_after": 0.01}}, "recovered"]})
    c = openai.OpenAI(base_url=server.base_url, api_key="t", max_retries=2)
    assert c.responses.create(model="m", input="x").output_text == "recovered"
    assert len(http.get("/_emulator/requests").json()) == 3


def test_delay_ms(client, load_script):
    load_script({"default": [{"text": "late", "delay_ms": 150}, "soon"]})
    start = time.monotonic()
    assert client.responses.create(model="m", input="x").output_text == "late"
    assert time.monotonic() - start >= 0.15
    start = time.monotonic()
    client.responses.create(model="m", input="x")
    assert time.monotonic() - start < 0.15


def test_bad_script_is_rejected_with_reason(http):
    r = http.post("/_emulator/script", json={"steps": {"a": [{"txt": "typo"}]}})
    assert r.status_code == 400 and "unknown reply kind 'txt'" in r.json()["error"]["message"]
    r = http.post("/_emulator/script", json={"steps": {"a": [{"text": "x", "refusal": "y"}]}})
    assert r.status_code == 400 and "exactly one kind" in r.json()["error"]["message"]


def test_script_file_and_constructor(tmp_path):
    path = tmp_path / "script.yaml"
    path.write_text("steps:\n  s:\n    - text: from file\n")
    assert load_file(path).steps["s"][0].value == "from file"
    with EmulatorServer(Emulator(script=path)) as server:
        c = openai.OpenAI(base_url=server.base_url, api_key="t", max_retries=0)
        assert c.responses.create(model="m", input="x", metadata=step("s")).output_text == "from file"
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  s:\n    - error: {status: 200}\n")
    with pytest.raises(ScriptError) as info:
        load_file(bad)
    assert "bad.yaml" in str(info.value) and "steps.s.0" in str(info.value)
