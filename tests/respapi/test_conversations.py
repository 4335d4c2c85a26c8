"""Conversations: the emulator's /conversations API through the real SDK, and flows that
chain with ``conversation:`` (requests checked in the journal, results in steps.X)."""

from __future__ import annotations

import openai
import pytest
from flowkit import EXAMPLES, assert_conforms, run_file, run_flow

from flowrun.errors import PlanError
from flowrun.plan import load_plan


def test_conversation_api_conforms_and_accumulates(client):
    conv = client.conversations.create(metadata={"topic": "demo"},
                                       items=[{"type": "message", "role": "user", "content": "Hello!"}])
    raw = client.conversations.with_raw_response.retrieve(conv.id).http_response.json()
    assert_conforms("ConversationResource", raw)
    assert raw["metadata"] == {"topic": "demo"} and conv.id.startswith("conv_")

    r = client.responses.create(model="gpt-4.1", input="And now?", conversation=conv.id)
    assert r.conversation.id == conv.id
    assert r.output_text == "[emulator] turn 2: And now?"  # the seeded item is in the context
    r2 = client.responses.create(model="gpt-4.1", input="Third.", conversation={"id": conv.id})
    assert r2.output_text == "[emulator] turn 3: Third."

    listing = client.conversations.items.with_raw_response.list(conv.id, order="asc").http_response.json()
    assert_conforms("ConversationItemList", listing)
    roles = [(i["type"], i.get("role")) for i in listing["data"]]
    assert roles == [("message", "user"), ("message", "user"), ("message", "assistant"),
                     ("message", "user"), ("message", "assistant")]

    added = client.conversations.items.with_raw_response.create(
        conv.id, items=[{"type": "message", "role": "user", "content": "noted"}]).http_response.json()
    assert_conforms("ConversationItemList", added)
    item_id = added["data"][0]["id"]
    one = client.conversations.items.with_raw_response.retrieve(item_id, conversation_id=conv.id).http_response.json()
    assert_conforms("ConversationItem", one)
    after = client.conversations.items.with_raw_response.delete(item_id, conversation_id=conv.id).http_response.json()
    assert_conforms("ConversationResource", after)
    assert len(client.conversations.items.list(conv.id).data) == 5

    updated = client.conversations.update(conv.id, metadata={"topic": "other"})
    assert updated.metadata == {"topic": "other"}
    deleted = client.conversations.with_raw_response.delete(conv.id).http_response.json()
    assert_conforms("DeletedConversationResource", deleted)
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conv.id)


def test_conversation_errors_as_the_service(client):
    conv = client.conversations.create()
    first = client.responses.create(model="gpt-4.1", input="one")
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gpt-4.1", input="x", conversation=conv.id,
                                previous_response_id=first.id)
    assert "Mutually exclusive" in info.value.message
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-4.1", input="x", conversation="conv_missing")
    with pytest.raises(openai.BadRequestError) as info:
        client.conversations.items.create(conv.id, items=[{"type": "message", "role": "wizard",
                                                           "content": "x"}])
    assert "items[0]" in info.value.message


def test_conversation_example_chains_through_one_conversation(emu, tmp_path):
    result = run_file(EXAMPLES / "conversation.yaml", emu, {"city": "Oslo"}, run_root=tmp_path)
    assert result.status == "succeeded"
    created = [e for e in emu.journal() if e["method"] == "POST" and e["path"].endswith("/conversations")]
    assert len(created) == 1
    conv = result.steps["plan"].result.conversation_id
    assert conv and conv.startswith("conv_")
    for step in ("plan", "food", "summary"):
        (body,) = emu.bodies(step)
        assert body["conversation"] == conv and "previous_response_id" not in body
        assert result.steps[step].result.to_template()["conversation"] == conv
    # only the new message went out; the model saw the whole history
    assert emu.bodies("summary")[0]["input"] == "Sum up the day in two sentences."
    assert result.outputs["summary"] == "[emulator] turn 3: Sum up the day in two sentences."


def test_defaults_conversation_is_one_for_the_run(emu, tmp_path):
    result = run_flow(tmp_path, emu, """
        name: shared
        defaults: {model: gpt-4.1, conversation: new}
        tools:
          add: {python: "calc:add"}
        steps:
          a: {input: "first"}
          b: {input: "second", tools: [add], tool_choice: add}
          solo: {input: "alone", conversation: none}
        """, environ={}) if _write_calc(tmp_path) else None
    assert result.status == "succeeded", result.steps
    posts = [e for e in emu.journal() if e["method"] == "POST" and e["path"].endswith("/conversations")]
    assert len(posts) == 1
    conv = result.steps["a"].result.conversation_id
    assert result.steps["b"].result.conversation_id == conv
    assert "conversation" not in emu.bodies("solo")[0]
    b_turns = emu.bodies("b")
    assert len(b_turns) == 2  # the tool loop: call, then the tool's output
    assert all(t["conversation"] == conv and "previous_response_id" not in t for t in b_turns)
    assert [i["type"] for i in b_turns[1]["input"]] == ["function_call_output"]
    # a and b took turns in one conversation: b's tool loop was not interleaved with a
    with emu.sdk() as sdk:
        kinds = [(i.type, getattr(i, "role", None)) for i in sdk.conversations.items.list(conv, order="asc").data]
    assert len(kinds) == 6 and kinds.count(("message", "user")) == 2, kinds
    at = kinds.index(("function_call", None))
    assert kinds[at + 1] == ("function_call_output", None) and kinds[at + 2] == ("message", "assistant")


def _write_calc(tmp_path):
    (tmp_path / "calc.py").write_text('def add(a: int, b: int) -> int:\n    """Add."""\n    return a + b\n')
    return True


@pytest.mark.parametrize("steps, at, message", [
    ("a: {input: x, conversation: new}\n  b: {input: y, conversation: a, continue: a}",
     "continue", "continue and conversation are two ways to chain"),
    ("a: {input: x, conversation: new, store: false}", "conversation", "store: false"),
    ("a: {input: x, conversation: new}\n  b: {input: y, conversation: aa}", "conversation",
     "unknown step 'aa' in conversation"),
    ("a: {input: x, for_each: [1, 2], conversation: new}\n  b: {input: y, conversation: a}",
     "conversation", "runs once per item"),
    ("a: {input: x}\n  b: {input: y, conversation: a}", "conversation", "it is not in a conversation"),
])
def test_validate_refuses_bad_conversations_with_position(tmp_path, steps, at, message):
    path = tmp_path / "f.yaml"
    path.write_text(f"name: f\nsteps:\n  {steps}\n")
    with pytest.raises(PlanError) as info:
        load_plan(path)
    problems = [p for p in info.value.problems if message in p.message]
    assert problems, [p.message for p in info.value.problems]
    line = path.read_text().splitlines()[problems[0].line - 1]
    assert line[:problems[0].column - 1].rstrip().endswith(at + ":"), (line, problems[0].column)


def test_defaults_conversation_with_continue_says_how_to_opt_out(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text("name: f\ndefaults: {conversation: new}\nsteps:\n  a: {input: x}\n"
                    "  b: {input: y, continue: a}\n")
    with pytest.raises(PlanError) as info:
        load_plan(path)
    (problem,) = info.value.problems
    assert problem.line == 5 and "conversation: none" in (problem.hint or "")
