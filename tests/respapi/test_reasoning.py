"""Reasoning on the emulator: reasoning items, summaries, encrypted content, and the
refusal of a manual chain that drops a reasoning item (so ``store: false`` is proven)."""

from __future__ import annotations

import openai
import pytest
from flowkit import assert_conforms, run_flow


def test_reasoning_items_summary_and_encrypted_content(client):
    plain = client.responses.create(model="gpt-4.1", input="hi")
    assert [i.type for i in plain.output] == ["message"]
    raw = client.responses.with_raw_response.create(
        model="o4-mini", input="Why is the sky blue?", reasoning={"effort": "low", "summary": "auto"},
        include=["reasoning.encrypted_content"], store=False).http_response.json()
    assert_conforms("Response", raw)
    rs, msg = raw["output"]
    assert rs["type"] == "reasoning" and msg["type"] == "message"
    assert "Why is the sky blue?" in rs["summary"][0]["text"]
    assert rs["encrypted_content"].startswith("emu1.")
    assert raw["usage"]["output_tokens_details"]["reasoning_tokens"] > 0
    quiet = client.responses.create(model="gpt-5", input="x")
    assert quiet.output[0].type == "reasoning" and quiet.output[0].summary == []
    assert quiet.output[0].encrypted_content is None


def test_manual_chain_needs_its_reasoning_items(client):
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]
    first = client.responses.create(model="o4-mini", input="look it up", tools=tools, tool_choice="required",
                                    store=False, include=["reasoning.encrypted_content"])
    rs, call = [i.model_dump(exclude_none=True) for i in first.output]
    out = {"type": "function_call_output", "call_id": call["call_id"], "output": "42"}
    user = {"role": "user", "content": "look it up"}
    ok = client.responses.create(model="o4-mini", input=[user, rs, call, out], tools=tools, store=False)
    assert ok.output_text == "[emulator] tool results: 42"
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="o4-mini", input=[user, call, out], tools=tools, store=False)
    assert f"without its required 'reasoning' item: '{rs['id']}'" in info.value.message
    forged = {**rs, "encrypted_content": "not-it"}
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="o4-mini", input=[user, forged, call, out], tools=tools, store=False)
    assert "could not be verified" in info.value.message
    bare = {k: v for k, v in rs.items() if k != "encrypted_content"}
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="o4-mini", input=[user, bare, call, out], tools=tools, store=False)


def test_flowrun_store_false_round_trip_keeps_reasoning(emu, tmp_path):
    (tmp_path / "calc.py").write_text('def lookup(q: str) -> str:\n    """Look up."""\n    return "42"\n')
    result = run_flow(tmp_path, emu, """
        name: private
        defaults: {model: o4-mini, store: false, reasoning: {effort: low, summary: auto}}
        tools:
          lookup: {python: "calc:lookup"}
        steps:
          first: {input: "find it", tools: [lookup], tool_choice: lookup}
          second: {input: "and then?", continue: {step: first, mode: manual}}
        """, environ={})
    assert result.status == "succeeded", {k: o.error for k, o in result.steps.items()}
    turns = emu.bodies("first")
    assert len(turns) == 2
    assert "reasoning.encrypted_content" in turns[0]["include"]
    kinds = [i.get("type") for i in turns[1]["input"]]
    assert kinds[-3:] == ["reasoning", "function_call", "function_call_output"]
    (second,) = emu.bodies("second")
    assert "reasoning" in [i.get("type") for i in second["input"]]
    assert result.steps["second"].result.reasoning_summary.startswith("**Planning the answer**")
