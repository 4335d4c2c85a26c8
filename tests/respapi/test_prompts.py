"""Reusable prompts: ``prompt: {id, version, variables}`` with and without ``input``."""

from __future__ import annotations

import pytest
from flowkit import assert_conforms, png_bytes, run_flow

from flowrun.errors import PlanError
from flowrun.plan import load_plan


def test_prompt_variables_are_templates_and_parts(emu, tmp_path):
    (tmp_path / "shot.png").write_bytes(png_bytes(4, 4, (200, 10, 10)))
    result = run_flow(tmp_path, emu, """
        name: p
        inputs: {name: {type: string, default: Ada}}
        defaults: {model: gpt-4.1}
        steps:
          alone:
            prompt: {id: "pmpt_{{ 'hello' }}", variables: {name: "{{ inputs.name }}"}}
          rich:
            prompt:
              id: pmpt_look
              version: "2"
              variables:
                shot: {image: shot.png, detail: high}
                note: {text: "from {{ steps.alone.text | length }} chars"}
            input: What is in it?
        """)
    assert result.status == "succeeded", {k: o.error for k, o in result.steps.items()}
    (alone,) = emu.bodies("alone")
    assert "input" not in alone
    assert alone["prompt"] == {"id": "pmpt_hello", "variables": {"name": "Ada"}}
    assert result.steps["alone"].result.text == "[emulator] prompt pmpt_hello@latest (name=Ada)"
    (rich,) = emu.bodies("rich")
    shot = rich["prompt"]["variables"]["shot"]
    assert shot["type"] == "input_image" and shot["detail"] == "high"
    assert shot["image_url"].startswith("data:image/png;base64,")
    assert rich["prompt"]["variables"]["note"]["type"] == "input_text"
    assert rich["input"] == "What is in it?"
    text = result.steps["rich"].result.text
    assert text.startswith("[emulator] prompt pmpt_look@2 (shot=[image], note=from ")
    assert text.endswith("| turn 1: What is in it?")


def test_prompt_is_echoed_in_the_response(client):
    raw = client.responses.with_raw_response.create(
        model="gpt-4.1", prompt={"id": "pmpt_x", "version": "1", "variables": {"a": "b"}}).http_response.json()
    assert_conforms("Response", raw)
    assert raw["prompt"]["id"] == "pmpt_x"
    assert raw["output"][0]["content"][0]["text"] == "[emulator] prompt pmpt_x@1 (a=b)"


def test_prompt_on_a_computer_use_step_is_refused(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text("name: f\nsteps:\n  a:\n    computer_use: {task: t, start_url: 'http://localhost'}\n"
                    "    prompt: {id: pmpt_1}\n")
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert any("prompt is for steps that call the model" in p.message and p.line == 5
               for p in info.value.problems)
