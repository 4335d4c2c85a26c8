"""Unit tests of the pure parts: schema instances, chunking, journal redaction, ids."""
from __future__ import annotations

from jsonschema import Draft202012Validator

from flowrun.emulator.events import chunks
from flowrun.emulator.journal import Journal
from flowrun.emulator.model import Turn, count_tokens, default_reply, instance_from_schema


def test_instance_handles_refs_anyof_allof_and_bounds():
    schema = {
        "$defs": {"node": {"type": "object", "properties": {
            "label": {"type": "string", "minLength": 8},
            "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 1}}}},
        "type": "object",
        "properties": {
            "tree": {"$ref": "#/$defs/node"},
            "maybe": {"type": ["null", "integer"], "maximum": 0},
            "merged": {"allOf": [{"type": "object", "properties": {"a": {"type": "boolean"}}},
                                 {"properties": {"b": {"const": "fixed"}}}]},
            "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "minItems": 2},
            "email": {"type": "string", "format": "email"},
            "choice": {"oneOf": [{"type": "null"}, {"type": "string", "enum": ["x", "y"]}]},
            "three": {"type": "array", "items": {"type": "integer"}, "minItems": 3},
        },
    }
    value = instance_from_schema(schema)
    assert value["tree"]["label"] == "labelxxx"
    assert value["tree"]["children"][0]["label"].startswith("label")
    assert value["maybe"] == 0 and value["merged"] == {"a": True, "b": "fixed"}
    assert value["pair"] == ["pair 1", 1.0] and value["email"] == "email@example.com"
    assert value["choice"] == "x" and value["three"] == [1, 1, 1]
    assert not list(Draft202012Validator(schema).iter_errors(value))


def test_token_count_rule():
    assert [count_tokens(t) for t in ("", "a", "a b", "a b c d e", None)] == [0, 1, 3, 7, 0]


def test_default_rule_counts_only_user_messages():
    turn = Turn({"model": "m"}, [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "sys"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "b"}]},
        {"type": "message", "role": "user", "content": "c"},
    ])
    assert default_reply(turn)[0]["content"][0]["text"] == "[emulator] turn 2: c"


def test_chunks_rejoin_and_are_bounded():
    text = "one two  three\nfour " * 10
    pieces = chunks(text)
    assert "".join(pieces) == text and 1 < len(pieces) <= 8
    assert chunks("") == [] and chunks("single") == ["single"]


def test_journal_drops_credentials():
    journal = Journal()
    journal.record("POST", "/v1/responses", {"tools": [{"type": "mcp", "authorization": "tok",
                                                        "headers": {"X-Api-Key": "k", "X-Mode": "m"}}]},
                   [("Authorization", "Bearer x"), ("api-key", "y"), ("Ocp-Apim-Subscription-Key", "z"),
                    ("Cookie", "c"), ("Content-Type", "application/json"), ("X-Ms-Client-Request-Id", "r")], 1.0)
    entry = journal.entries()[0]
    assert entry["headers"] == {"content-type": "application/json", "x-ms-client-request-id": "r"}
    tool = entry["body"]["tools"][0]
    assert tool["authorization"] == "<redacted>" and tool["headers"] == {"X-Api-Key": "<redacted>", "X-Mode": "m"}


def test_request_relaxations_are_narrow():
    import pytest

    from flowrun.emulator.conformance import check_request
    from flowrun.emulator.errors import APIError

    approval = {"type": "mcp_approval_response", "approve": True, "approval_request_id": "mcpr_1"}
    check_request({"model": "m", "previous_response_id": "resp_1", "input": [approval]})
    with pytest.raises(APIError) as info:
        check_request({"model": "m", "input": [{k: v for k, v in approval.items() if k != "approve"}]})
    assert "approve" in info.value.message
    check_request({"model": "m", "input": "x", "tools": [{"type": "function", "name": "f", "parameters": {}}]})
    with pytest.raises(APIError) as info:  # parameters stays required
        check_request({"model": "m", "input": "x", "tools": [{"type": "function", "name": "f"}]})
    assert info.value.param == "tools[0]" and "parameters" in info.value.message
