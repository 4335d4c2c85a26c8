"""A computer-use run's spans: a ``chat`` span per turn and an ``execute_tool computer``
span per action flowrun performs in Chromium; with content on, screenshots stay out."""

from __future__ import annotations

import json

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowrun import tracing
from flowrun.otel import OtelTracer

FLOW = """
name: cu-traced
inputs:
  site: {type: string}
steps:
  browse:
    computer_use:
      task: "Sign up as Ada."
      start_url: "{{ inputs.site }}/form"
      display: {width: 400, height: 300}
      max_turns: 5
"""


def test_each_action_is_an_execute_tool_span_under_the_step(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse": [
        {"computer": {"action": {"type": "click", "x": 100, "y": 25}}},
        {"computer": {"action": {"type": "type", "text": "Ada"}}},
        {"text": "Done."},
    ]}})
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    before = tracing.install(OtelTracer(provider, content=True))
    try:
        result = driver.run(tmp_path, emu, FLOW, {"site": site.origin})
    finally:
        tracing.install(before)
    assert result.status == "succeeded", result.error
    spans = exporter.get_finished_spans()
    step = next(s for s in spans if s.name == "invoke_agent browse")
    chats = sorted((s for s in spans if s.name == "chat computer-use-preview"), key=lambda s: s.start_time)
    actions = sorted((s for s in spans if s.name == "execute_tool computer"), key=lambda s: s.start_time)
    assert len(chats) == 3 and len(actions) == 2
    assert all(s.parent.span_id == step.context.span_id for s in chats + actions)
    calls = [json.loads(c.attributes["gen_ai.output.messages"])[0]["parts"] for c in chats[:2]]
    call_ids = [next(p["call_id"] for p in parts if p["type"] == "computer_call") for parts in calls]
    assert [a.attributes["gen_ai.tool.call.id"] for a in actions] == call_ids
    for before_, action, after in zip(chats, actions, chats[1:]):
        assert before_.end_time <= action.start_time <= action.end_time <= after.start_time
    assert "data:(inline image)" in chats[0].attributes["gen_ai.input.messages"]
    screenshot_sent = json.loads(chats[1].attributes["gen_ai.input.messages"])[0]["parts"][0]
    assert screenshot_sent["type"] == "computer_call_output"
    assert screenshot_sent["output"]["image_url"].startswith("data:(inline, ")
    assert not any("base64," in c.attributes["gen_ai.input.messages"] for c in chats)
    assert all(len(v) < 40_000 for s in spans for v in s.attributes.values() if isinstance(v, str))
