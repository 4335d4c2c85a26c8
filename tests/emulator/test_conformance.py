"""Everything the emulator answers validates against the OpenAPI schemas (jsonschema)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from flowkit import REPO, SUBSET, assert_conforms, parse_sse

SPEC = REPO.parent / "shared" / "specs" / "openai-openapi.yml"
SCHEMAS = json.loads(SUBSET.read_text())["components"]["schemas"]
EVENT_SCHEMA = {SCHEMAS[ref["$ref"].rsplit("/", 1)[-1]]["properties"]["type"]["enum"][0]: ref["$ref"].rsplit("/", 1)[-1]
                for ref in SCHEMAS["ResponseStreamEvent"]["anyOf"]}

SCRIPT = {"steps": {
    "calls": [{"function_calls": [{"name": "f", "arguments": {"a": 1}}, {"name": "g", "arguments": "{bad"}]}],
    "refuse": [{"refusal": "no"}],
    "fail": [{"error": {"status": 500, "message": "boom"}}],
}}
TOOLS = [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}},
         {"type": "function", "name": "g", "strict": False, "parameters": None, "description": "g"},
         {"type": "mcp", "server_label": "docs", "server_url": "https://example.com/mcp",
          "require_approval": "never", "headers": {"X-Region": "eu"}}]
STRUCTURED = {"format": {"type": "json_schema", "name": "x", "strict": True, "schema": {
    "type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}}},
    "required": ["a"], "additionalProperties": False}}}
BODIES = {
    "text": {"input": "hello", "instructions": "be brief", "temperature": 0.2, "max_output_tokens": 50},
    "calls": {"input": "call", "tools": TOOLS, "metadata": {"flowrun_step": "calls"}, "tool_choice": "auto",
              "parallel_tool_calls": True},
    "refuse": {"input": "x", "metadata": {"flowrun_step": "refuse"}},
    "structured": {"input": "x", "text": STRUCTURED},
    "reasoning": {"input": "x", "reasoning": {"effort": "low", "summary": "auto"},
                  "include": ["reasoning.encrypted_content"], "store": False},
}


@pytest.fixture
def scripted(http, load_script):
    load_script(SCRIPT)
    return http


def _post(http, body, **extra):
    return http.post("/v1/responses", json={"model": "gpt-4.1", **body, **extra})


def _check_events(events):
    assert [e["sequence_number"] for e in events] == sorted(e["sequence_number"] for e in events)
    for event in events:
        assert_conforms("ResponseStreamEvent", event)
        assert_conforms(EVENT_SCHEMA[event["type"]], event)


@pytest.mark.parametrize("name", sorted(BODIES))
def test_json_and_stream_answers_conform(scripted, name):
    r = _post(scripted, BODIES[name])
    assert r.status_code == 200, r.text
    assert_conforms("Response", r.json())
    s = _post(scripted, BODIES[name], stream=True)
    assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(s.text)
    assert events[-1]["type"] == "response.completed"
    _check_events(events)


def test_chained_response_and_input_items_conform(scripted):
    first = _post(scripted, BODIES["calls"]).json()
    calls = [o for o in first["output"] if o["type"] == "function_call"]
    second = _post(scripted, {"previous_response_id": first["id"], "tools": TOOLS, "input": [
        {"type": "function_call_output", "call_id": c["call_id"], "output": "done"} for c in calls]
        + [{"role": "assistant", "content": "noted"}, {"role": "developer", "content": "go on"}]})
    assert second.status_code == 200, second.text
    assert_conforms("Response", second.json())
    for order in ("asc", "desc"):
        items = scripted.get(f"/v1/responses/{second.json()['id']}/input_items", params={"order": order})
        assert items.status_code == 200
        assert_conforms("ResponseItemList", items.json())
    assert {i["type"] for i in items.json()["data"]} == {"message", "function_call", "function_call_output"}


def test_background_answers_conform(scripted):
    queued = _post(scripted, {"input": "bg"}, background=True).json()
    assert queued["status"] == "queued"
    assert_conforms("Response", queued)
    cancelled = scripted.post(f"/v1/responses/{queued['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert_conforms("Response", cancelled)
    s = _post(scripted, {"input": "bg stream"}, background=True, stream=True)
    events = parse_sse(s.text)
    assert [e["type"] for e in events[:3]] == ["response.created", "response.queued", "response.in_progress"]
    _check_events(events)
    replay = parse_sse(scripted.get(f"/v1/responses/{events[0]['response']['id']}",
                                    params={"stream": "true", "starting_after": 5}).text)
    assert replay == events[6:]
    failed = parse_sse(_post(scripted, {"input": "x", "metadata": {"flowrun_step": "fail"}},
                             background=True, stream=True).text)
    assert failed[-1]["type"] == "response.failed" and failed[-1]["response"]["error"]["message"] == "boom"
    _check_events(failed)
    rid = failed[0]["response"]["id"]
    got = scripted.get(f"/v1/responses/{rid}").json()
    assert got["status"] == "failed"
    assert_conforms("Response", got)


def test_error_answers_conform(scripted):
    answers = [
        _post(scripted, {"input": "x", "metadata": {"flowrun_step": "fail"}}),   # scripted 500
        _post(scripted, {"input": 5}),                                           # 400 schema
        scripted.get("/v1/responses/resp_missing"),                              # 404
        scripted.delete("/v1/responses/resp_missing"),
        scripted.post("/v1/responses/resp_missing/cancel"),
        scripted.get("/v1/responses/resp_missing/input_items"),
    ]
    scripted.post("/_emulator/faults", json={"spec": "429:retry_after=3"})
    answers.append(_post(scripted, {"input": "x"}))
    assert [a.status_code for a in answers] == [500, 400, 404, 404, 404, 404, 429]
    for answer in answers:
        assert answer.headers["content-type"] == "application/json"
        assert_conforms("ErrorResponse", answer.json())
        assert_conforms("Error", answer.json()["error"])
    assert int(answers[-1].headers["retry-after"]) >= 1


def test_request_checks_are_fast(scripted):
    from flowrun.emulator.conformance import check_request
    body = {"model": "gpt-4.1", **BODIES["calls"]}
    check_request(body)
    start = time.perf_counter()
    for _ in range(200):
        check_request(body)
    assert (time.perf_counter() - start) / 200 < 0.005


@pytest.mark.skipif(not SPEC.exists(), reason="shared OpenAPI spec not available")
def test_subset_is_up_to_date(tmp_path):
    out = tmp_path / "subset.json"
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_openapi_subset.py"), str(SPEC), "--out", str(out)],
                   check=True, capture_output=True)
    assert out.read_text() == SUBSET.read_text(), "run scripts/build_openapi_subset.py to refresh the subset"
    assert {"CreateResponse", "Response", "ResponseStreamEvent", "ResponseItemList", "ErrorResponse"} <= set(SCHEMAS)
