"""What batch mode refuses, before any request: ``flowrun validate --batch`` and
``flowrun run --dataset --batch`` name each step, where it is, why, and what to do (exit 2);
what it runs inline (Python steps) works."""

from __future__ import annotations

import json

import pytest

from batch_kit import dataset, lines, posts, run
from flowkit import flowrun_cli, write

REFUSED = """\
name: refused
inputs:
  ticket: string
tools:
  docs:
    mcp: https://example.com/mcp
  sub: {flow: sub.yaml, description: a sub-flow as a tool}
steps:
  streamed:
    input: "Stream {{ inputs.ticket }}"
    stream: true
  later:
    input: "Later {{ inputs.ticket }}"
    background: true
  browse:
    computer_use: {task: "look", start_url: "http://localhost:1"}
  nested:
    flow: sub.yaml
    with: {q: "{{ inputs.ticket }}"}
  asks:
    input: "Docs?"
    tools: [docs, sub]
"""
SUB = """\
name: sub
inputs:
  q: string
steps:
  a:
    input: "{{ inputs.q }}"
outputs:
  a: "{{ steps.a.text }}"
"""


def _flow(tmp_path):
    write(tmp_path / "sub.yaml", SUB)
    return write(tmp_path / "refused.yaml", REFUSED)


def test_validate_batch_names_every_step_it_cannot_run(tmp_path):
    flow = _flow(tmp_path)
    plain = flowrun_cli("validate", str(flow))
    assert plain.returncode == 0, plain.stderr  # a valid flow; only batch mode refuses it

    out = flowrun_cli("validate", "--batch", str(flow))

    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    problems = out.stderr.strip().splitlines()
    text = out.stderr
    assert f"{flow}:11:13: steps.streamed.stream: cannot run in batch mode: step 'streamed' streams" in text
    assert f"{flow}:14:17: steps.later.background: cannot run in batch mode: step 'later' is a background" in text
    assert f"{flow}:16:19: steps.browse.computer_use: cannot run in batch mode: step 'browse' is a computer-use" in text
    assert f"{flow}:18:11: steps.nested.flow: cannot run in batch mode: step 'nested' runs a sub-flow" in text
    assert "steps.asks.tools[0]: cannot run in batch mode: step 'asks' uses the MCP tool 'docs', whose calls " \
           "need an interactive approval" in text
    assert "steps.asks.tools[1]: cannot run in batch mode: step 'asks' uses the flow tool 'sub'" in text
    assert "hint: give the tool an approval policy" in text
    assert len([p for p in problems if "cannot run in batch mode" in p]) == 6

    as_json = json.loads(flowrun_cli("validate", "--batch", "--json", str(flow)).stdout)
    found = as_json[str(flow)]
    assert found["valid"] is False
    assert [p["path"] for p in found["problems"]][:2] == [["steps", "streamed", "stream"],
                                                          ["steps", "later", "background"]]


def test_validate_batch_passes_a_flow_it_can_run(tmp_path):
    from batch_kit import flow_file

    flow = flow_file(tmp_path)  # a function tool loop, a for_each, a final step
    out = flowrun_cli("validate", "--batch", str(flow))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"ok  {flow} (3 steps)"


def test_run_batch_refuses_before_any_request(tmp_path, emu):
    flow = _flow(tmp_path)
    data = dataset(tmp_path / "tickets.jsonl", 2)
    out = flowrun_cli("run", str(flow), "--dataset", str(data), "--batch", "--provider", "emulator",
                      "--base-url", emu.base_url, "--run-dir", str(tmp_path / "runs"))
    assert out.returncode == 2
    assert "cannot run in batch mode: step 'streamed' streams" in out.stderr
    assert "Traceback" not in out.stderr
    assert emu.journal() == []


def test_batch_options_need_a_dataset_and_batch(tmp_path, emu):
    flow = write(tmp_path / "one.yaml", "name: one\nsteps:\n  a:\n    input: hi\n")
    out = flowrun_cli("run", str(flow), "--batch", "--provider", "emulator")
    assert out.returncode == 2 and "--batch go with --dataset FILE" in out.stderr
    data = dataset(tmp_path / "tickets.jsonl", 1)
    out = flowrun_cli("run", str(flow), "--dataset", str(data), "--detach", "--provider", "emulator")
    assert out.returncode == 2 and "--batch-deployment and --detach go with --batch" in out.stderr


INLINE = """\
name: inline
inputs:
  ticket: string
steps:
  normalize:
    python: "steps_py:normalize"
    with: {text: "{{ inputs.ticket }}"}
  answer:
    input: "Answer {{ steps.normalize.output }}"
  skipped:
    if: "{{ false }}"
    input: "never"
outputs:
  answer: "{{ steps.answer.text }}"
  normalized: "{{ steps.normalize.output }}"
"""


def test_python_steps_run_inline_and_skipped_steps_send_nothing(tmp_path, emu):
    write(tmp_path / "steps_py.py", "def normalize(text: str) -> str:\n    return text.upper()\n")
    flow = write(tmp_path / "inline.yaml", INLINE)
    data = dataset(tmp_path / "tickets.jsonl", 3)
    result = run(tmp_path, emu, data, flow=flow)
    assert result.status == "succeeded", result.error
    out = lines(result.results)
    assert out[2]["outputs"]["normalized"] == "T2: PRINTER 2 JAMS"
    assert "T2: PRINTER 2 JAMS" in out[2]["outputs"]["answer"]
    assert out[2]["steps"]["skipped"]["status"] == "skipped"
    assert len(posts(emu, "/v1/batches")) == 1  # layer 1 is a Python step: nothing to batch


@pytest.mark.slow  # two CLI runs of the example
def test_the_ticket_triage_example_gives_the_same_results_with_batch(tmp_path):
    from flowkit import REPO

    results = {}
    for mode in ("local", "batch"):
        out = flowrun_cli("run", "examples/flows/ticket-triage.yaml", "--provider", "emulator", "--dataset",
                          "examples/flows/data/tickets.csv", "--map", "ticket=message", "--json",
                          "--run-dir", str(tmp_path / "runs"), "--results", str(tmp_path / f"{mode}.jsonl"),
                          *(["--batch"] if mode == "batch" else []), cwd=REPO)
        assert out.returncode == 0, out.stderr
        summary = json.loads(out.stdout)
        assert summary["status"] == "succeeded" and summary["rows"]["succeeded"] == 6
        results[mode] = {n: r["outputs"] for n, r in lines(tmp_path / f"{mode}.jsonl").items()}
    assert summary["batches"]["created"] == 2
    assert results["batch"] == results["local"]


def test_an_endpoint_without_the_batch_api_fails_the_rows_with_what_to_do(tmp_path):
    """A plain HTTP server that answers 404 to everything stands for a compatible endpoint
    without the Batch API."""
    import http.server
    import threading

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length") or 0))
            body = b'{"error": {"message": "no such route", "type": "invalid_request_error"}}'
            self.send_response(404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        from batch_kit import flow_file
        from flowrun.dataset.launch import run_dataset

        result = run_dataset(str(flow_file(tmp_path)), str(dataset(tmp_path / "t.jsonl", 2)), None, (), (), None,
                             "compatible", f"http://127.0.0.1:{server.server_port}/v1", True, 4,
                             str(tmp_path / "runs"), None, None, None, batch=True)
    finally:
        server.shutdown()
    assert result.status == "failed" and result.failed == 2
    error = lines(result.results)[1]["error"]
    assert "the endpoint has no Batch API (POST /files answered 404): run without --batch" in error
