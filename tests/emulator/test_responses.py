"""Core Responses API behaviour through the real openai SDK over HTTP."""
from __future__ import annotations

import json

import openai
import pytest
from flowkit import assert_conforms
from pydantic import BaseModel


@pytest.mark.asyncio
async def test_default_rule_echoes_last_user_text(aclient):
    r = await aclient.responses.create(model="gpt-4.1", input="hello world")
    assert r.output_text == "[emulator] turn 1: hello world"
    assert r.status == "completed" and r.object == "response"
    assert r.id.startswith("resp_") and r.output[0].id.startswith("msg_")
    assert isinstance(r.created_at, (int, float))
    # tokens = floor(words * 1.3 + 0.5): 2 input words, 5 output words
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (3, 7, 10)


@pytest.mark.asyncio
async def test_previous_response_id_delivers_history(aclient):
    first = await aclient.responses.create(model="gpt-4.1", input="one")
    second = await aclient.responses.create(model="gpt-4.1", input="two", previous_response_id=first.id)
    third = await aclient.responses.create(
        model="gpt-4.1", input=[{"role": "user", "content": "three"}], previous_response_id=second.id)
    assert second.output_text == "[emulator] turn 2: two"
    assert third.output_text == "[emulator] turn 3: three"
    assert third.previous_response_id == second.id
    items = await aclient.responses.input_items.list(third.id)  # default order: desc
    texts = [(i.role, (i.content[0].text)) for i in items.data]
    assert texts == [("user", "three"), ("assistant", "[emulator] turn 2: two"), ("user", "two"),
                     ("assistant", "[emulator] turn 1: one"), ("user", "one")]


@pytest.mark.asyncio
async def test_manual_chaining_with_store_false(aclient):
    inputs = [{"type": "message", "role": "user", "content": "first"}]
    r = await aclient.responses.create(model="gpt-4.1", input=inputs, store=False)
    inputs += [item.model_dump(exclude_none=True) for item in r.output]
    inputs.append({"role": "user", "type": "message", "content": "second"})
    r2 = await aclient.responses.create(model="gpt-4.1", input=inputs, store=False)
    assert r2.output_text == "[emulator] turn 2: second"


@pytest.mark.asyncio
async def test_store_false_keeps_nothing(aclient):
    r = await aclient.responses.create(model="gpt-4.1", input="secret", store=False)
    assert r.output_text == "[emulator] turn 1: secret"
    with pytest.raises(openai.NotFoundError) as info:
        await aclient.responses.retrieve(r.id)
    assert info.value.status_code == 404
    with pytest.raises(openai.NotFoundError) as info:
        await aclient.responses.create(model="gpt-4.1", input="more", previous_response_id=r.id)
    assert "Previous response" in info.value.message and info.value.param == "previous_response_id"


def test_retrieve_and_delete(client):
    r = client.responses.create(model="gpt-4.1", input="keep me", metadata={"k": "v"})
    got = client.responses.retrieve(r.id)
    assert got.id == r.id and got.output_text == r.output_text and got.metadata == {"k": "v"}
    assert client.responses.delete(r.id) is None
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(r.id)


def test_input_items_pagination(client, http):
    r = client.responses.create(model="gpt-4.1", input=[
        {"role": "user", "content": f"m{i}"} for i in range(5)])
    page = client.responses.input_items.list(r.id, order="asc", limit=2)
    assert [i.content[0].text for i in page.data] == ["m0", "m1"]
    assert page.has_more is True and page.first_id == page.data[0].id and page.last_id == page.data[1].id
    rest = client.responses.input_items.list(r.id, order="asc", limit=10, after=page.last_id)
    assert [i.content[0].text for i in rest.data] == ["m2", "m3", "m4"] and rest.has_more is False
    desc = client.responses.input_items.list(r.id, limit=1)
    assert desc.data[0].content[0].text == "m4"
    bad = http.get(f"/v1/responses/{r.id}/input_items", params={"limit": 0})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"
    assert http.get("/v1/responses/resp_nope/input_items").status_code == 404


def test_azure_v1_prefix(server, http):
    azure = openai.OpenAI(base_url=server.azure_base_url, api_key="azure-key", max_retries=0,
                          default_query={"api-version": "preview"})
    r = azure.responses.create(model="gpt-4o", input="via azure")
    assert r.output_text == "[emulator] turn 1: via azure"
    assert azure.responses.retrieve(r.id).id == r.id
    entries = http.get("/_emulator/requests").json()
    assert [e["path"] for e in entries] == ["/openai/v1/responses", f"/openai/v1/responses/{r.id}"]
    assert "api-version=preview" in entries[0]["query"]


def test_journal_records_requests_without_credentials(server, http):
    c = openai.OpenAI(base_url=server.base_url, api_key="sk-very-secret", max_retries=0,
                      default_headers={"api-key": "azure-secret", "X-Custom-Token": "tok-secret",
                                       "X-Trace-Id": "trace-1"})
    c.responses.create(model="gpt-4.1", input="first", tools=[
        {"type": "mcp", "server_label": "docs", "server_url": "https://example.com/mcp",
         "headers": {"Authorization": "Bearer mcp-secret", "X-Region": "eu"}, "require_approval": "never"}],
        tool_choice="none")
    c.responses.create(model="gpt-4.1", input="second")
    entries = http.get("/_emulator/requests").json()
    assert [e["method"] for e in entries] == ["POST", "POST"]
    assert [e["path"] for e in entries] == ["/v1/responses", "/v1/responses"]
    assert entries[0]["body"]["input"] == "first" and entries[1]["body"]["input"] == "second"
    assert entries[0]["time"] <= entries[1]["time"] and isinstance(entries[0]["time"], float)
    headers = entries[0]["headers"]
    assert "user-agent" in headers and headers["content-type"] == "application/json"
    assert "x-trace-id" not in headers  # only allowlisted headers keep values
    dumped = json.dumps(entries).lower()
    for secret in ("sk-very-secret", "azure-secret", "tok-secret", "mcp-secret", "authorization\": \"bearer"):
        assert secret not in dumped
    assert entries[0]["body"]["tools"][0]["headers"]["X-Region"] == "eu"
    assert http.delete("/_emulator/requests").json() == {"deleted": 2}
    assert http.get("/_emulator/requests").json() == []


def test_health_and_unknown_route(http):
    assert http.get("/_emulator/health").json()["status"] == "ok"
    r = http.post("/v1/chat/completions", json={})
    assert r.status_code == 404
    assert_conforms("ErrorResponse", r.json())
    assert "Invalid URL" in r.json()["error"]["message"]


def test_non_conforming_request_is_rejected(client, http):
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gpt-4.1", input="x", extra_body={"temperature": "hot"})
    assert info.value.status_code == 400 and info.value.param == "temperature"
    assert "temperature" in info.value.message
    r = http.post("/v1/responses", json={"model": "gpt-4.1", "input": [{"role": "robot", "content": "hi"}]})
    assert r.status_code == 400
    assert_conforms("ErrorResponse", r.json())
    assert r.json()["error"]["param"] == "input[0].role" and "robot" in r.json()["error"]["message"]
    r = http.post("/v1/responses", json={"model": "gpt-4.1", "input": "x", "temprature": 1})
    assert r.status_code == 400 and r.json()["error"]["message"] == "Unknown parameter: 'temprature'."
    r = http.post("/v1/responses", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = http.post("/v1/responses", json={"input": "no model"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    # rejected requests are still journaled, and create nothing
    assert len(http.get("/_emulator/requests").json()) == 5
    assert http.get("/_emulator/health").json()["responses"] == 0


def test_function_tool_without_strict_is_accepted(client):
    tool = {"type": "function", "name": "get_weather", "parameters": {
        "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}
    r = client.responses.create(model="gpt-4.1", input="weather?", tools=[tool])
    assert r.output_text == "[emulator] turn 1: weather?"  # default rule never calls tools unasked
    assert r.tools[0].strict is True


SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "risks": {"type": "array", "items": {"type": "string"}},
        "score": {"type": "integer", "minimum": 3},
        "ratio": {"type": "number"},
        "ok": {"type": "boolean"},
        "level": {"type": "string", "enum": ["low", "high"]},
        "owner": {"$ref": "#/$defs/person"},
        "note": {"anyOf": [{"type": "null"}, {"type": "string"}]},
        "when": {"type": "string", "format": "date"},
    },
    "required": ["title", "risks", "score", "ratio", "ok", "level", "owner", "note", "when"],
    "additionalProperties": False,
    "$defs": {"person": {"type": "object", "properties": {"name": {"type": "string"}},
                         "required": ["name"], "additionalProperties": False}},
}


def test_structured_output_from_schema(client):
    from jsonschema import Draft202012Validator
    r = client.responses.create(model="gpt-4.1", input="analyse", text={"format": {
        "type": "json_schema", "name": "analysis", "schema": SCHEMA, "strict": True}})
    data = json.loads(r.output_text)
    assert data == {"title": "title", "risks": ["risks 1", "risks 2"], "score": 3, "ratio": 1.0, "ok": True,
                    "level": "low", "owner": {"name": "name"}, "note": "note", "when": "2024-01-01"}
    assert not list(Draft202012Validator(SCHEMA).iter_errors(data))


def test_structured_output_with_sdk_parse(client):
    class Person(BaseModel):
        name: str
        age: int
        tags: list[str]

    r = client.responses.parse(model="gpt-4.1", input="who?", text_format=Person)
    assert r.output_parsed == Person(name="name", age=1, tags=["tags 1", "tags 2"])


def test_json_object_format_wraps_reply(client):
    r = client.responses.create(model="gpt-4.1", input="hi", text={"format": {"type": "json_object"}})
    assert json.loads(r.output_text) == {"reply": "[emulator] turn 1: hi"}


def test_forced_tool_choice_and_tool_results_rule(client):
    tool = {"type": "function", "name": "lookup", "strict": True, "parameters": {
        "type": "object", "properties": {"company": {"type": "string"}}, "required": ["company"],
        "additionalProperties": False}}
    r = client.responses.create(model="gpt-4.1", input="ticker?", tools=[tool],
                                tool_choice={"type": "function", "name": "lookup"})
    call = r.output[0]
    assert call.type == "function_call" and call.name == "lookup" and json.loads(call.arguments) == {"company": "company"}
    assert call.id.startswith("fc_") and call.call_id.startswith("call_")
    r2 = client.responses.create(model="gpt-4.1", previous_response_id=r.id, tools=[tool], input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "CTSO"},
        {"type": "function_call_output", "call_id": call.call_id, "output": [{"type": "input_text", "text": "42"}]}])
    assert r2.output_text == "[emulator] tool results: CTSO; 42"


def test_image_and_file_parts_in_user_text(client):
    r = client.responses.create(model="gpt-4.1", input=[{"role": "user", "content": [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
        {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}]}])
    assert r.output_text == "[emulator] turn 1: look [image] [file a.pdf]"


def test_raw_httpx_post_returns_conforming_response(http):
    r = http.post("/v1/responses", json={"model": "gpt-4.1", "input": "raw"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert_conforms("Response", r.json())
