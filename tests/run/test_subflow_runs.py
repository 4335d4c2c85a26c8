"""Sub-flows: their token usage counts for the step that ran them, and every run of one
(a flow step, each call of a flow tool) keeps its own record under ``subflows/``."""

from __future__ import annotations

import json

from flowkit import record, run_flow, write

CHILD = """
    name: child
    inputs: {topic: string}
    steps:
      one: {input: "First about {{ inputs.topic }}."}
      two: {input: "Then more about {{ steps.one.text }}."}
    outputs:
      text: "{{ steps.two.text }}"
"""


def _sub_records(result) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((result.run_dir / "subflows").glob("*/record.json"))]


def _usage_of(records: list[dict]) -> int:
    return sum(s["usage"]["total_tokens"] for r in records for s in r["steps"].values())


def test_a_flow_step_reports_the_usage_of_its_sub_flow(tmp_path, emu):
    write(tmp_path / "child.yaml", CHILD)
    result = run_flow(tmp_path, emu, """
        name: parent
        steps:
          sub:
            flow: child.yaml
            with: {topic: tides}
        outputs:
          tokens: "{{ steps.sub.usage.total_tokens }}"
    """)
    assert result.status == "succeeded", result.error
    (sub_record,) = _sub_records(result)
    expected = _usage_of([sub_record])
    assert expected > 0
    usage = result.to_json()["steps"]["sub"]["usage"]
    assert usage["total_tokens"] == expected
    assert usage["input_tokens"] + usage["output_tokens"] == expected
    assert record(result)["steps"]["sub"]["usage"] == usage
    assert result.outputs == {"tokens": expected}
    assert result.usage == usage


def test_flow_tool_calls_with_look_alike_ids_keep_every_record(tmp_path, emu):
    write(tmp_path / "child.yaml", CHILD)
    ids = ["call/1", "call_1", "call 1", "call/2", "call_2", "call 2"]
    emu.script({"steps": {"ask": [
        {"function_calls": [{"name": "explain", "arguments": {"topic": f"t{i}"}, "call_id": cid}
                            for i, cid in enumerate(ids)]},
        {"text": "done"},
    ]}})
    result = run_flow(tmp_path, emu, """
        name: parent
        tools:
          explain: {flow: child.yaml}
        steps:
          ask:
            input: Explain six topics.
            tools: [explain]
    """)
    assert result.status == "succeeded", result.error
    records = _sub_records(result)
    assert len(records) == 6
    topics = sorted(r["inputs"]["topic"] for r in records)
    assert topics == [f"t{i}" for i in range(6)]
    # the calling step's usage: its own two turns plus all six sub-flow runs
    own = sum(json.loads(p.read_text())["usage"]["total_tokens"]
              for p in (result.run_dir / "responses").glob("ask*.json"))
    assert result.steps["ask"].usage["total_tokens"] == own + _usage_of(records)
