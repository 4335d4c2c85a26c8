"""The emulator's function-calling checks, as the service answers them (real SDK, HTTP)."""

from __future__ import annotations

import openai
import pytest

STRICT_TOOL = {"type": "function", "name": "f", "strict": True, "parameters": {
    "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
    "additionalProperties": False}}


def _calls(client, emu):
    emu.script({"default": [{"function_calls": [{"name": "f", "arguments": {"a": "x"}, "call_id": "c1"},
                                                {"name": "f", "arguments": {"a": "y"}, "call_id": "c2"}]},
                            {"default_rule": True}]})
    return client.responses.create(model="m", input="go", tools=[STRICT_TOOL])


def test_every_call_needs_its_output(client, emu):
    first = _calls(client, emu)
    with pytest.raises(openai.BadRequestError, match="No tool output found for function call c2"):
        client.responses.create(model="m", previous_response_id=first.id, tools=[STRICT_TOOL],
                                input=[{"type": "function_call_output", "call_id": "c1", "output": "1"}])
    with pytest.raises(openai.BadRequestError, match="No tool output found for function call c1"):
        client.responses.create(model="m", previous_response_id=first.id, input="never mind")
    answer = client.responses.create(model="m", previous_response_id=first.id, tools=[STRICT_TOOL], input=[
        {"type": "function_call_output", "call_id": "c1", "output": "1"},
        {"type": "function_call_output", "call_id": "c2", "output": "2"}])
    assert answer.output_text == "[emulator] tool results: 1; 2"  # the default_rule reply kind


def test_an_output_needs_its_call(client, emu):
    with pytest.raises(openai.BadRequestError,
                       match="No tool call found for function call output with call_id zzz"):
        client.responses.create(model="m", input=[
            {"role": "user", "content": "hi"},
            {"type": "function_call_output", "call_id": "zzz", "output": "1"}])


@pytest.mark.parametrize("parameters, message", [
    ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
     "In context=(), 'additionalProperties' is required to be supplied and to be false."),
    ({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
      "required": ["a"], "additionalProperties": False},
     "Missing 'b'."),
    ({"type": "object", "properties": {"a": {"type": "string", "default": "x"}}, "required": ["a"],
      "additionalProperties": False},
     "In context=('properties', 'a'), 'default' is not permitted."),
])
def test_strict_schemas_are_checked(client, parameters, message):
    tool = {"type": "function", "name": "f", "strict": True, "parameters": parameters}
    with pytest.raises(openai.BadRequestError, match="Invalid schema for function 'f'") as info:
        client.responses.create(model="m", input="go", tools=[tool])
    assert message in str(info.value)
    # the same schema without strict is the service's business, and accepted
    client.responses.create(model="m", input="go", tools=[{**tool, "strict": False}])
