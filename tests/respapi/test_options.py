"""Request options on steps and in defaults: the request in the journal, the result (usage
details) in steps.X and the run totals."""

from __future__ import annotations

from flowkit import EXAMPLES, run_file, run_flow


def test_options_reach_the_request_and_step_overrides_default(emu, tmp_path):
    result = run_flow(tmp_path, emu, """
        name: opts
        inputs: {who: {type: string, default: u-1}}
        defaults:
          model: gpt-5-mini
          service_tier: flex
          prompt_cache_key: "desk-{{ inputs.who }}"
          verbosity: high
        steps:
          a:
            input: hi
            output_schema: {type: object, properties: {x: {type: string}}, required: [x]}
            verbosity: low
            safety_identifier: "{{ inputs.who }}"
            max_tool_calls: 2
            top_logprobs: 3
            prompt_cache_retention: in_memory
          b: {input: there, service_tier: priority, stream: true, stream_options: {include_obfuscation: false}}
        """)
    assert result.status == "succeeded"
    (a,) = emu.bodies("a")
    assert a["service_tier"] == "flex" and a["prompt_cache_key"] == "desk-u-1"
    assert a["safety_identifier"] == "u-1" and a["max_tool_calls"] == 2 and a["top_logprobs"] == 3
    assert a["prompt_cache_retention"] == "in_memory"
    # verbosity merges with the structured-output format in text
    assert a["text"]["verbosity"] == "low" and a["text"]["format"]["type"] == "json_schema"
    (b,) = emu.bodies("b")
    assert b["service_tier"] == "priority" and b["text"] == {"verbosity": "high"}
    assert b["stream_options"] == {"include_obfuscation": False} and b["stream"] is True
    assert "stream_options" not in a  # only sent with stream: true


def test_usage_details_in_steps_and_run_totals(emu, tmp_path):
    result = run_file(EXAMPLES / "request-options.yaml", emu, run_root=tmp_path)
    assert result.status == "succeeded"
    careful = result.steps["careful"].result.usage
    quick = result.steps["quick"].result.usage
    assert careful["output_tokens_details"]["reasoning_tokens"] > 0
    assert careful["input_tokens_details"]["cached_tokens"] > 0  # same instructions, same cache key
    assert quick["input_tokens_details"]["cached_tokens"] == 0  # the first request
    total = result.usage
    assert total["output_tokens_details"]["reasoning_tokens"] == careful["output_tokens_details"]["reasoning_tokens"]
    assert total["input_tokens_details"]["cached_tokens"] == careful["input_tokens_details"]["cached_tokens"]
    assert total["total_tokens"] == careful["total_tokens"] + quick["total_tokens"]
    assert result.to_json()["steps"]["careful"]["usage"] == careful
    # what the service said, summed: the emulator's own usage objects
    answers = [e for e in emu.journal() if e["method"] == "POST"]
    assert len(answers) == 2
