"""``flowrun run`` as a user runs it (a subprocess), sending OTLP/HTTP to a small receiver
on loopback that decodes the protobuf ``ExportTraceServiceRequest`` as a collector does."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from flowkit import flowrun_cli, write

from test_spans import PROBE_PY  # type: ignore[import-not-found]

TRACED_TOOLS_PY = '''
from opentelemetry import trace


def weather(city: str) -> dict:
    """Weather for a city, looked up in a span of its own."""
    with trace.get_tracer("weather-tool").start_as_current_span("lookup forecast") as span:
        span.set_attribute("city", city)
        return {"city": city, "temp": 21}
'''


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


class Receiver:
    """Collects the spans posted to ``/v1/traces``: dicts of name, ids, kind, attributes."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        self.resources: list[dict] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.paths.append(self.path)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for rs in request.resource_spans:
                    receiver.resources.append({a.key: _value(a.value) for a in rs.resource.attributes})
                    for ss in rs.scope_spans:
                        for span in ss.spans:
                            receiver.spans.append({
                                "name": span.name, "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(), "parent": span.parent_span_id.hex(),
                                "kind": span.kind, "status": span.status.code, "scope": ss.scope.name,
                                "attributes": {a.key: _value(a.value) for a in span.attributes},
                            })
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def named(self, name: str) -> list[dict]:
        return [s for s in self.spans if s["name"] == name]

    def one(self, name: str) -> dict:
        found = self.named(name)
        assert len(found) == 1, (name, sorted(s["name"] for s in self.spans))
        return found[0]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


FLOW = f"""
name: shipped
defaults: {{model: gpt-4.1}}
tools:
  weather: {{python: "tools:weather"}}
  probe:
    command: [{json.dumps(sys.executable)}, probe.py]
steps:
  ask:
    input: Weather in Paris?
    tools: [weather, probe]
outputs:
  probe: "{{{{ steps.ask.tool_calls | selectattr('name', 'equalto', 'probe') | map(attribute='output') | first }}}}"
"""

SCRIPT = """
steps:
  ask:
    - function_calls:
        - {name: weather, arguments: {city: Paris}, call_id: call_w}
        - {name: probe, arguments: {}, call_id: call_p}
    - default_rule: true
"""


def test_flowrun_run_sends_its_spans_to_the_otlp_endpoint(tmp_path, receiver):
    write(tmp_path / "tools.py", TRACED_TOOLS_PY)
    write(tmp_path / "probe.py", PROBE_PY)
    write(tmp_path / "flow.emulator.yaml", SCRIPT)
    flow = write(tmp_path / "flow.yaml", FLOW)
    proc = flowrun_cli("run", str(flow), "--provider", "emulator", "--json", "--run-dir", str(tmp_path / "runs"),
                       cwd=tmp_path, env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
                                          "OTEL_SERVICE_NAME": "nightly-briefs"})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "succeeded"
    assert set(receiver.paths) == {"/v1/traces"}
    assert receiver.resources[0]["service.name"] == "nightly-briefs"

    root = receiver.one("invoke_workflow shipped")
    step = receiver.one("invoke_agent ask")
    chats = receiver.named("chat gpt-4.1")
    weather, probe = receiver.one("execute_tool weather"), receiver.one("execute_tool probe")
    assert root["parent"] == "" and root["attributes"]["flowrun.run.id"] == out["run_id"]
    assert root["scope"] == "flowrun"
    assert step["parent"] == root["span_id"]
    assert len(chats) == 2 and all(c["parent"] == step["span_id"] for c in chats)
    assert all(c["kind"] == 3 for c in chats)  # SPAN_KIND_CLIENT
    assert {c["attributes"]["gen_ai.response.id"] for c in chats} == set(
        json.loads((tmp_path / "runs" / out["run_id"] / "record.json").read_text())["steps"]["ask"]["response_ids"])
    for chat in chats:
        assert chat["attributes"]["gen_ai.provider.name"] == "openai"
        assert chat["attributes"]["gen_ai.request.model"] == "gpt-4.1"
        assert chat["attributes"]["gen_ai.usage.input_tokens"] > 0
        assert "gen_ai.input.messages" not in chat["attributes"]
    assert weather["parent"] == probe["parent"] == step["span_id"]
    assert probe["attributes"]["gen_ai.tool.call.id"] == "call_p"
    own = receiver.one("lookup forecast")  # a span the Python tool made itself
    assert own["parent"] == weather["span_id"] and own["scope"] == "weather-tool"
    assert own["attributes"]["city"] == "Paris"
    assert {s["trace_id"] for s in receiver.spans} == {root["trace_id"]}

    traceparent = json.loads(out["outputs"]["probe"])["traceparent"]
    _, trace_id, parent_id, _ = traceparent.split("-")
    assert trace_id == step["trace_id"] and parent_id == probe["span_id"]


def test_a_dataset_run_is_one_trace_with_a_span_per_row(tmp_path, receiver):
    flow = write(tmp_path / "flow.yaml", "name: rows\ninputs:\n  city: string\nsteps:\n"
                                         "  ask:\n    input: Weather in {{ inputs.city }}?\n")
    rows = write(tmp_path / "rows.jsonl", '{"city": "Oslo"}\n{"city": "Lima"}\n')
    proc = flowrun_cli("run", str(flow), "--dataset", str(rows), "--provider", "emulator", "--json",
                       "--otel", "--run-dir", str(tmp_path / "runs"), cwd=tmp_path,
                       env={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{receiver.url}/v1/traces"})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    spans = receiver.named("invoke_workflow rows")
    dataset = next(s for s in spans if s["parent"] == "")
    row_spans = [s for s in spans if s["parent"] == dataset["span_id"]]
    assert dataset["attributes"]["flowrun.run.id"] == out["run_id"]
    assert dataset["attributes"]["flowrun.dataset.rows"] == 2
    assert dataset["attributes"]["flowrun.dataset.succeeded"] == 2
    assert sorted(s["attributes"]["flowrun.dataset.row"] for s in row_spans) == [1, 2]
    steps = receiver.named("invoke_agent ask")
    assert sorted(s["parent"] for s in steps) == sorted(s["span_id"] for s in row_spans)
    assert len(receiver.named("chat gpt-4.1")) == 2


def test_a_resumed_run_is_traced_with_its_attempt_and_reused_steps(tmp_path, receiver):
    write(tmp_path / "checks.py", '''
def check(mode: str) -> str:
    if mode != "ok":
        raise ValueError("not ok yet")
    return "fine"
''')
    flow = write(tmp_path / "flow.yaml", """
name: again
inputs:
  mode: string
steps:
  ask:
    input: Hello
  check:
    python: checks:check
    with: {mode: "{{ inputs.mode }}"}
    needs: [ask]
""")
    runs = str(tmp_path / "runs")
    first = flowrun_cli("run", str(flow), "-i", "mode=bad", "--provider", "emulator", "--json",
                        "--run-dir", runs, cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    assert receiver.spans == []  # not traced: neither --otel nor an endpoint
    run_id = json.loads(first.stdout)["run_id"]
    again = flowrun_cli("resume", run_id, "-i", "mode=ok", "--json", "--run-dir", runs, "--otel",
                        cwd=tmp_path, env={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{receiver.url}/v1/traces"})
    assert again.returncode == 0, again.stderr
    root = receiver.one("invoke_workflow again")
    assert root["attributes"]["flowrun.run.id"] == run_id
    assert root["attributes"]["flowrun.run.attempt"] == 2
    ask, check = receiver.one("invoke_agent ask"), receiver.one("step check")
    assert ask["attributes"]["flowrun.step.reused"] is True
    assert "flowrun.step.reused" not in check["attributes"]
    assert check["attributes"]["flowrun.step.status"] == "succeeded"
    assert receiver.named("chat gpt-4.1") == []  # the reused step made no request
