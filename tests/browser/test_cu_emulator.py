"""The emulator's computer-use side through the real openai SDK: the scripted ``computer``
reply kind, its conformance, and the checks on ``computer_call_output`` inputs."""

from __future__ import annotations

import base64
import json

import openai
import pytest
from flowkit import png_bytes

from flowrun.emulator.conformance import problems
from flowrun.emulator.script import ScriptError, parse_script

TOOL = {"type": "computer_use_preview", "display_width": 400, "display_height": 300,
        "environment": "browser"}
META = {"flowrun_step": "cu"}
CHECK = {"id": "cs_9", "code": "malicious_instructions", "message": "Suspicious page."}


def png(width: int = 4, height: int = 3) -> bytes:
    """A solid red PNG screenshot."""
    return png_bytes(width, height, (255, 0, 0))


def shot(data: bytes | None = None) -> dict:
    return {"type": "computer_screenshot",
            "image_url": "data:image/png;base64," + base64.b64encode(data or png()).decode()}


def first_call(client, emu, *, checks=None) -> tuple[dict, dict]:
    emu.script({"steps": {"cu": [
        {"computer": {"action": {"type": "click", "x": 5, "y": 6}, "reasoning": "Click it.",
                      **({"pending_safety_checks": checks} if checks else {})}},
        {"text": "done"},
    ]}})
    resp = client.responses.create(model="computer-use-preview", tools=[TOOL], input="go", metadata=META,
                                   truncation="auto")
    body = resp.model_dump(mode="json", exclude_none=True)
    call = [i for i in body["output"] if i["type"] == "computer_call"][0]
    return body, call


def test_scripted_computer_call_conforms(client, emu):
    body, call = first_call(client, emu, checks=[CHECK])
    raw = client.responses.with_raw_response.retrieve(body["id"])
    assert problems("Response", json.loads(raw.text)) == []
    assert [i["type"] for i in body["output"]] == ["reasoning", "computer_call"]
    assert body["output"][0]["summary"] == [{"type": "summary_text", "text": "Click it."}]
    assert call["action"] == {"type": "click", "button": "left", "x": 5, "y": 6}
    assert call["pending_safety_checks"] == [CHECK]
    assert call["status"] == "completed" and call["call_id"].startswith("call_")


def test_streamed_computer_call_is_added_and_done(client, emu):
    emu.script({"steps": {"cu": [{"computer": {"action": {"type": "scroll", "x": 1, "y": 2,
                                                           "scroll_x": 0, "scroll_y": 50}}}]}})
    with client.responses.create(model="m", tools=[TOOL], input="go", metadata=META, stream=True) as stream:
        events = [e.model_dump(mode="json", exclude_none=True) for e in stream]
    kinds = [e["type"] for e in events]
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.output_item.done", "response.completed"]
    assert events[2]["item"]["status"] == "in_progress"
    assert events[3]["item"]["action"]["scroll_y"] == 50


def test_screenshot_output_is_accepted_and_logged(client, emu):
    body, call = first_call(client, emu, checks=[CHECK])
    resp = client.responses.create(
        model="m", tools=[TOOL], previous_response_id=body["id"], metadata=META,
        input=[{"type": "computer_call_output", "call_id": call["call_id"], "output": shot(png(7, 5)),
                "acknowledged_safety_checks": [CHECK], "current_url": "http://127.0.0.1:1/x"}])
    assert resp.output_text == "done"
    assert emu.log() == [{"step": "cu", "item": None, "call_id": call["call_id"],
                          "current_url": "http://127.0.0.1:1/x", "width": 7, "height": 5,
                          "acknowledged": ["malicious_instructions"]}]
    sent = emu.outputs("cu")[0]
    assert sent["current_url"] == "http://127.0.0.1:1/x"  # the journal keeps it too


@pytest.mark.parametrize("output, message", [
    ({"type": "computer_screenshot", "image_url": "data:image/jpeg;base64,AAAA"}, "data URL of a PNG"),
    ({"type": "computer_screenshot", "image_url": "data:image/png;base64,@@@"}, "not valid base64"),
    ({"type": "computer_screenshot",
      "image_url": "data:image/png;base64," + base64.b64encode(b"GIF89a....").decode()}, "not a PNG"),
    ({"type": "computer_screenshot"}, "needs image_url or file_id"),
    ({"type": "computer_screenshot", "file_id": "file-nope"}, "no file with id"),
])
def test_bad_screenshots_are_rejected(client, emu, output, message):
    body, call = first_call(client, emu)
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="m", tools=[TOOL], previous_response_id=body["id"], metadata=META,
                                input=[{"type": "computer_call_output", "call_id": call["call_id"],
                                        "output": output}])
    assert message in info.value.message
    assert emu.log() == []


def test_unanswered_and_unknown_calls_are_rejected(client, emu):
    body, call = first_call(client, emu)
    with pytest.raises(openai.BadRequestError, match=f"No tool output found for computer call {call['call_id']}"):
        client.responses.create(model="m", tools=[TOOL], previous_response_id=body["id"], input="next",
                                metadata=META)
    with pytest.raises(openai.BadRequestError, match="No computer call found for output with call_id call_x"):
        client.responses.create(model="m", tools=[TOOL], metadata=META, input=[
            {"type": "computer_call_output", "call_id": "call_x", "output": shot()}])


def test_safety_checks_must_be_acknowledged_exactly(client, emu):
    body, call = first_call(client, emu, checks=[CHECK])
    base = {"type": "computer_call_output", "call_id": call["call_id"], "output": shot()}
    with pytest.raises(openai.BadRequestError, match="Pending safety check 'cs_9'"):
        client.responses.create(model="m", tools=[TOOL], previous_response_id=body["id"], input=[base])
    with pytest.raises(openai.BadRequestError, match="safety check 'cs_other' is not pending"):
        client.responses.create(model="m", tools=[TOOL], previous_response_id=body["id"], input=[
            {**base, "acknowledged_safety_checks": [CHECK, {"id": "cs_other"}]}])


def test_computer_reply_needs_the_tool(client, emu):
    emu.script({"steps": {"cu": [{"computer": {"action": {"type": "wait"}}}]}})
    with pytest.raises(openai.BadRequestError, match="no computer_use_preview tool"):
        client.responses.create(model="m", input="go", metadata=META)


def test_script_actions_are_checked_when_loaded():
    with pytest.raises(ScriptError, match="not a valid computer action"):
        parse_script({"steps": {"cu": [{"computer": {"action": {"type": "click", "x": "left"}}}]}})
    with pytest.raises(ScriptError, match="needs a type"):
        parse_script({"steps": {"cu": [{"computer": {"action": {"x": 1}}}]}})
    with pytest.raises(ScriptError, match="code"):
        parse_script({"steps": {"cu": [{"computer": {"action": {"type": "wait"},
                                                     "pending_safety_checks": [{"message": "m"}]}}]}})
    ok = parse_script({"steps": {"cu": [{"computer": {"action": {"type": "double_click", "x": 1, "y": 2}}}]}})
    assert ok.steps["cu"][0].value.action == {"type": "double_click", "x": 1, "y": 2, "keys": None}
