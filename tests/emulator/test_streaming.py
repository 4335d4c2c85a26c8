"""Streaming: SSE events as the SDK consumes them, dropped streams."""
from __future__ import annotations

import json

import openai
import pytest

TEXT_EVENTS = ["response.created", "response.in_progress", "response.output_item.added",
               "response.content_part.added"]
TEXT_TAIL = ["response.output_text.done", "response.content_part.done", "response.output_item.done",
             "response.completed"]


def _check_numbering(events):
    assert [e.sequence_number for e in events] == list(range(len(events)))


@pytest.mark.asyncio
async def test_text_stream_event_order(aclient):
    stream = await aclient.responses.create(model="gpt-4.1", input="a fairly long sentence to split into chunks",
                                            stream=True)
    events = [e async for e in stream]
    _check_numbering(events)
    types = [e.type for e in events]
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert types == TEXT_EVENTS + ["response.output_text.delta"] * len(deltas) + TEXT_TAIL
    assert 1 < len(deltas) <= 8
    expected = "[emulator] turn 1: a fairly long sentence to split into chunks"
    assert "".join(d.delta for d in deltas) == expected
    assert events[0].response.status == "in_progress" and events[0].response.output == []
    final = events[-1].response
    assert final.status == "completed" and final.output_text == expected
    assert final.id == events[0].response.id and final.usage.output_tokens > 0
    assert events[2].item.id == deltas[0].item_id == final.output[0].id
    # stored like any other response
    assert (await aclient.responses.retrieve(final.id)).output_text == expected


def test_stream_helper_accumulates(client):
    with client.responses.stream(model="gpt-4.1", input="helper") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == final.output_text == "[emulator] turn 1: helper"


def test_function_call_stream(client, load_script):
    load_script({"steps": {"s": [{"function_calls": [
        {"name": "a", "arguments": {"x": 1, "words": "several words in the arguments"}},
        {"name": "b", "arguments": "{broken", "call_id": "call_fixed"}]}]}})
    events = list(client.responses.create(model="gpt-4.1", input="go", metadata={"flowrun_step": "s"},
                                          stream=True))
    _check_numbering(events)
    by_item: dict[int, list[str]] = {}
    for e in events[2:-1]:
        by_item.setdefault(e.output_index, []).append(e.type)
    for index, types in by_item.items():
        assert types[0] == "response.output_item.added" and types[-1] == "response.output_item.done"
        assert types[-2] == "response.function_call_arguments.done"
        assert set(types[1:-2]) == {"response.function_call_arguments.delta"}
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [(d.name, d.output_index) for d in done] == [("a", 0), ("b", 1)]
    assert json.loads(done[0].arguments) == {"x": 1, "words": "several words in the arguments"}
    assert done[1].arguments == "{broken"
    added = [e for e in events if e.type == "response.output_item.added"]
    assert added[0].item.arguments == "" and added[0].item.status == "in_progress"
    final = events[-1].response
    assert [o.call_id for o in final.output][1] == "call_fixed"


def test_refusal_stream(client, load_script):
    load_script({"default": [{"refusal": "I will not do that."}]})
    events = list(client.responses.create(model="gpt-4.1", input="bad", stream=True))
    types = [e.type for e in events]
    assert "response.refusal.done" in types and "response.output_text.delta" not in types
    assert "".join(e.delta for e in events if e.type == "response.refusal.delta") == "I will not do that."
    assert events[-1].response.output[0].content[0].refusal == "I will not do that."


def test_scripted_drop_cuts_the_connection(client, load_script):
    load_script({"default": [{"text": "this stream will break", "drop_stream_after": 3}, {"text": "fine"}]})
    seen = []
    with pytest.raises(openai.APIConnectionError):
        for event in client.responses.create(model="gpt-4.1", input="x", stream=True):
            seen.append(event.type)
    assert seen == ["response.created", "response.in_progress", "response.output_item.added"]
    # next entry is a normal stream
    events = list(client.responses.create(model="gpt-4.1", input="x", stream=True))
    assert events[-1].type == "response.completed" and events[-1].response.output_text == "fine"


def test_drop_fault_applies_to_next_stream_only(client, http):
    http.post("/_emulator/faults", json={"spec": "drop@2"}).raise_for_status()
    assert client.responses.create(model="gpt-4.1", input="not streamed").status == "completed"
    with pytest.raises(openai.APIConnectionError):
        list(client.responses.create(model="gpt-4.1", input="x", stream=True))
    assert list(client.responses.create(model="gpt-4.1", input="x", stream=True))[-1].type == "response.completed"


def test_slow_stream_fault(client, http):
    import time
    http.post("/_emulator/faults", json={"spec": "slow@20"}).raise_for_status()
    start = time.monotonic()
    events = list(client.responses.create(model="gpt-4.1", input="x", stream=True))
    assert time.monotonic() - start >= 0.02 * len(events)
