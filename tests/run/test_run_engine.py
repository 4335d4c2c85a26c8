"""The run engine end to end: real openai SDK over HTTP against the built-in emulator."""

from __future__ import annotations

import json

import jsonschema
import pytest
from flowkit import Recorder, record, run_flow, sent_text

from flowrun.emulator.conformance import validator


def test_parallel_branches_really_run_at_once(tmp_path, emu):
    emu.faults(latency_ms=400)
    result = run_flow(tmp_path, emu, """
        name: wide
        steps:
          a: {input: "one"}
          b: {input: "two"}
          c: {input: "three"}
          join: {input: "{{ steps.a.text }} {{ steps.b.text }} {{ steps.c.text }}"}
    """)
    assert result.status == "succeeded"
    times = {e["body"]["metadata"]["flowrun_step"]: e["time"] for e in emu.posts()}
    first = [times["a"], times["b"], times["c"]]
    # the three branches arrive together, well inside one request's latency
    assert max(first) - min(first) < 0.2
    # the join is sent only after the branches answered (>= one latency later)
    assert times["join"] - max(first) >= 0.35


def test_previous_response_id_chaining_and_fork(tmp_path, emu):
    result = run_flow(tmp_path, emu, """
        name: chain
        steps:
          first: {input: "Remember the word kiwi."}
          second: {continue: first, input: "What was the word?"}
          fork: {continue: first, input: "Spell it."}
    """)
    assert result.status == "succeeded"
    first_id = result.steps["first"].response_id
    for step in ("second", "fork"):
        (post,) = emu.posts(step)
        assert post["body"]["previous_response_id"] == first_id
        # only the new message is sent; the service keeps the history
        assert sent_text(post["body"]) == post["body"]["input"]
        assert post["body"]["input"] in ("What was the word?", "Spell it.")
    # the emulator saw the whole conversation: this is the second user turn
    assert result.steps["second"].result.text.startswith("[emulator] turn 2:")


def test_manual_chaining_with_store_false_resends_items(tmp_path, emu):
    result = run_flow(tmp_path, emu, """
        name: manual
        defaults: {store: false}
        steps:
          first: {input: "Remember the word kiwi."}
          second:
            continue: {step: first, mode: manual}
            input: "What was the word?"
    """)
    assert result.status == "succeeded", result.error
    (post,) = emu.posts("second")
    body = post["body"]
    assert "previous_response_id" not in body
    assert body["store"] is False
    assert "reasoning.encrypted_content" in body["include"]
    roles = [(i.get("type"), i.get("role")) for i in body["input"]]
    assert roles == [("message", "user"), ("message", "assistant"), ("message", "user")]
    assert body["input"][0]["content"][0]["text"] == "Remember the word kiwi."
    assert result.steps["second"].result.text.startswith("[emulator] turn 2:")
    # nothing was stored by the emulator, so a previous_response_id would have failed
    assert result.steps["first"].result.response_id


def test_structured_output_is_parsed_and_sent_strict(tmp_path, emu):
    result = run_flow(tmp_path, emu, """
        name: structured
        steps:
          risks:
            input: "List risks"
            output_schema:
              type: object
              properties:
                risks: {type: array, items: {type: string}}
                severity: {type: integer}
              required: [risks]
          use: {input: "First risk: {{ steps.risks.output.risks[0] }}"}
    """)
    assert result.status == "succeeded", result.error
    output = result.steps["risks"].result.output
    assert isinstance(output["risks"], list) and len(output["risks"]) == 2
    fmt = emu.posts("risks")[0]["body"]["text"]["format"]
    assert fmt["type"] == "json_schema" and fmt["strict"] is True
    assert fmt["schema"]["additionalProperties"] is False
    assert sorted(fmt["schema"]["required"]) == ["risks", "severity"]
    (use,) = emu.posts("use")
    assert sent_text(use["body"]) == f"First risk: {output['risks'][0]}"


@pytest.mark.parametrize(
    "reply, message",
    [
        ({"text": "not json"}, "not valid JSON"),
        ({"output": {"risks": "oops"}}, "does not match output_schema"),
        ({"refusal": "I cannot help"}, "refused: I cannot help"),
    ],
)
def test_bad_structured_output_fails_the_step(tmp_path, emu, reply, message):
    emu.script({"steps": {"risks": [reply]}})
    result = run_flow(tmp_path, emu, """
        name: structured
        steps:
          risks:
            input: "List risks"
            output_schema: {type: object, properties: {risks: {type: array, items: {type: string}}}}
    """)
    assert result.status == "failed"
    assert message in result.steps["risks"].error


def test_streaming_consumes_events_and_reports_deltas(tmp_path, emu):
    hooks = Recorder()
    result = run_flow(tmp_path, emu, """
        name: stream
        steps:
          talk: {input: "Tell me a long story about a fox and a crow", stream: true}
    """, hooks=hooks)
    assert result.status == "succeeded"
    text = result.steps["talk"].result.text
    assert text.startswith("[emulator] turn 1: Tell me a long story")
    assert hooks.deltas["talk"] == text
    assert emu.posts("talk")[0]["body"]["stream"] is True


def test_429_is_retried_honouring_retry_after(tmp_path, emu):
    emu.faults("429x2:retry_after=0.4")
    result = run_flow(tmp_path, emu, """
        name: retry
        steps:
          a: {input: "hi", retries: {max: 3, initial_delay: 0.01, max_delay: 0.5}}
    """)
    assert result.status == "succeeded"
    times = [e["time"] for e in emu.posts("a")]
    assert len(times) == 3
    # backoff alone would wait at most 0.02 s; Retry-After says 0.4 s (within max_delay)
    assert times[1] - times[0] >= 0.38 and times[2] - times[1] >= 0.38
    assert result.steps["a"].result.attempts == 3


def test_5xx_retries_then_gives_up(tmp_path, emu):
    emu.faults("503x5")
    result = run_flow(tmp_path, emu, """
        name: retry
        steps:
          a: {input: "hi", retries: {max: 1, initial_delay: 0.01}}
    """)
    assert result.status == "failed"
    assert len(emu.posts("a")) == 2
    assert "server error (503)" in result.steps["a"].error


def test_fail_fast_cancels_in_flight_and_skips_the_rest(tmp_path, emu):
    emu.script({"steps": {
        "bad": [{"error": {"status": 400, "message": "no such model"}}],
        "slow": [{"text": "late", "delay_ms": 3000}],
    }})
    result = run_flow(tmp_path, emu, """
        name: failfast
        steps:
          bad: {input: "x"}
          slow: {input: "y"}
          after: {input: "{{ steps.bad.text }}"}
    """)
    assert result.status == "failed"
    assert result.exit_code == 1
    steps = result.steps
    assert steps["bad"].status == "failed" and "no such model" in steps["bad"].error
    assert steps["slow"].status == "cancelled"
    assert steps["after"].status == "skipped"
    rec = record(result)
    assert rec["status"] == "failed"
    assert rec["steps"]["slow"]["status"] == "cancelled"
    assert rec["duration_s"] < 2.5


def test_continue_on_error_lets_independent_steps_finish(tmp_path, emu):
    emu.script({"steps": {"bad": [{"error": {"status": 400, "message": "boom"}}]}})
    result = run_flow(tmp_path, emu, """
        name: tolerant
        steps:
          bad: {input: "x", continue_on_error: true}
          good: {input: "y"}
          needs_bad: {input: "{{ steps.bad.text }}"}
          after_good: {input: "{{ steps.good.text }}"}
    """)
    assert result.status == "succeeded"
    assert result.steps["bad"].status == "failed"
    assert result.steps["good"].status == "succeeded"
    assert result.steps["needs_bad"].status == "skipped"
    assert result.steps["after_good"].status == "succeeded"


def test_record_keeps_completed_steps_after_a_failure(tmp_path, emu):
    emu.script({"steps": {"second": [{"error": {"status": 400, "message": "bad request"}}]}})
    result = run_flow(tmp_path, emu, """
        name: partial
        steps:
          first: {input: "hello"}
          second: {input: "{{ steps.first.text }}"}
    """)
    assert result.status == "failed"
    rec = record(result)
    first = rec["steps"]["first"]
    assert first["status"] == "succeeded"
    assert first["response_id"] == result.steps["first"].response_id
    assert first["usage"]["total_tokens"] > 0
    assert rec["steps"]["second"]["status"] == "failed"
    saved = json.loads((result.run_dir / "responses" / "first.json").read_text())
    assert saved["id"] == first["response_id"]
    assert rec["flow"]["hash"].startswith("sha256:")


def test_if_skips_a_step_and_its_dependents_unless_they_opt_in(tmp_path, emu):
    result = run_flow(tmp_path, emu, """
        name: cond
        inputs: {go: {type: boolean, default: false}}
        steps:
          maybe: {input: "x", if: "{{ inputs.go }}"}
          child: {input: "{{ steps.maybe.text }}"}
          always: {input: "status {{ steps.maybe.status }}", on_skipped_needs: run}
    """)
    assert result.status == "succeeded"
    assert result.steps["maybe"].status == "skipped"
    assert result.steps["child"].status == "skipped"
    assert result.steps["always"].status == "succeeded"
    assert sent_text(emu.posts("always")[0]["body"]) == "status skipped"
    assert emu.posts("maybe") == []


def test_for_each_fans_out_within_max_parallel(tmp_path, emu):
    emu.faults(latency_ms=200)
    result = run_flow(tmp_path, emu, """
        name: fan
        steps:
          each:
            for_each: ["a", "b", "c", "d"]
            max_parallel: 2
            input: "Explain {{ item }} ({{ index }})"
          total: {input: "{{ steps.each | map(attribute='text') | join(' | ') }}"}
    """)
    assert result.status == "succeeded"
    posts = sorted(emu.posts("each"), key=lambda e: e["time"])
    assert [p["body"]["metadata"]["flowrun_item"] for p in posts[:2]] in (["0", "1"], ["1", "0"])
    # two waves of two: the third request starts only after the first ones answered
    assert posts[2]["time"] - posts[0]["time"] >= 0.18
    assert len(result.steps["each"].items) == 4
    joined = sent_text(emu.posts("total")[0]["body"])
    assert joined.count("[emulator]") == 4 and "Explain c (2)" in joined


def test_step_timeout(tmp_path, emu):
    emu.script({"steps": {"slow": [{"text": "late", "delay_ms": 3000}]}})
    result = run_flow(tmp_path, emu, """
        name: timeout
        steps:
          slow: {input: "x", timeout: 300ms}
    """)
    assert result.status == "failed"
    assert "timed out after 0.3s" in result.steps["slow"].error


def test_background_mode_polls_until_complete(tmp_path, emu):
    result = run_flow(tmp_path, emu, """
        name: bg
        steps:
          report: {input: "long job", background: true, poll_interval: 0.02}
    """)
    assert result.status == "succeeded", result.error
    entries = emu.journal()
    (post,) = [e for e in entries if e["method"] == "POST"]
    assert post["body"]["background"] is True
    polls = [e for e in entries if e["method"] == "GET" and result.steps["report"].response_id in e["path"]]
    assert len(polls) >= 1
    assert result.steps["report"].result.text.startswith("[emulator] turn 1: long job")


def test_background_stream_resumes_after_a_dropped_stream(tmp_path, emu):
    emu.faults("drop@4x1")
    hooks = Recorder()
    result = run_flow(tmp_path, emu, """
        name: bgstream
        steps:
          report: {input: "a long story about resuming streams", background: true, stream: true}
    """, hooks=hooks)
    assert result.status == "succeeded", result.error
    resumed = [e for e in emu.journal() if e["method"] == "GET" and "starting_after" in e.get("query", "")]
    assert resumed, "flowrun should resume the stream with starting_after"
    assert result.steps["report"].result.text.startswith("[emulator] turn 1: a long story")


def test_secret_values_never_reach_disk(tmp_path, emu, monkeypatch):
    monkeypatch.setenv("SHOP_TOKEN", "tok-very-secret-123")
    result = run_flow(tmp_path, emu, """
        name: secret
        secrets: [SHOP_TOKEN]
        steps:
          a:
            instructions: "Use token {{ secrets.SHOP_TOKEN }} when asked."
            input: "hello"
    """)
    assert result.status == "succeeded"
    # the model received it (the user put it in the instructions) ...
    assert "tok-very-secret-123" in emu.posts("a")[0]["body"]["instructions"]
    # ... but no file of the run holds it
    for path in result.run_dir.rglob("*"):
        if path.is_file():
            assert "tok-very-secret-123" not in path.read_text(errors="replace"), path


def test_every_request_conforms_to_the_openapi_spec(tmp_path, emu):
    run_flow(tmp_path, emu, """
        name: conform
        defaults: {temperature: 0.3, max_output_tokens: 200, reasoning: {effort: low, summary: auto}}
        steps:
          a: {input: [{text: "hi"}], instructions: "be brief", metadata: {team: x}}
          b: {continue: a, input: "more", output_schema: {type: object, properties: {x: {type: string}}}}
    """)
    check = validator("CreateResponse", request=True)
    posts = emu.posts()
    assert len(posts) == 2
    for post in posts:
        errors = list(check.iter_errors(post["body"]))
        assert not errors, [e.message for e in errors]
    with pytest.raises(jsonschema.ValidationError):
        check.validate({"model": "x", "input": 5})


def test_a_failed_run_has_no_outputs(tmp_path, emu):
    emu.script({"steps": {"b": [{"error": {"status": 400, "message": "nope"}}]}})
    result = run_flow(tmp_path, emu, """
        name: outputs
        steps:
          a: {input: "x"}
          b: {input: "{{ steps.a.text }}"}
        outputs:
          answer: "{{ steps.b.text }}"
    """)
    assert result.status == "failed"
    assert result.outputs == {}
    assert json.loads((result.run_dir / "record.json").read_text())["outputs"] == {}
