"""The code interpreter end to end: flowrun -> openai SDK -> HTTP -> emulator, which runs
the scripted code for real in a subprocess. Every number checked below is computed by that
subprocess from the uploaded data; the scripts only hold code."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from flowkit import png_bytes, record, run_flow
from hosted_code_kit import PNG_CODE

from flowrun.providers import ProviderConfig

ROWS = [("North", 245, 3062.5), ("South", 282, 3525.25), ("North", 157, 4710.0),
        ("East", 99, 1187.75), ("South", 104, 3120.0), ("East", 311, 9330.5)]


def _sales(tmp_path: Path) -> Path:
    path = tmp_path / "sales.csv"
    lines = ["region,units,revenue"] + [f"{r},{u},{v}" for r, u, v in ROWS]
    path.write_text("\n".join(lines) + "\n")
    return path


def _totals() -> dict[str, float]:
    out: dict[str, float] = {}
    for region, _, revenue in ROWS:
        out[region] = out.get(region, 0.0) + revenue
    return out


ANALYZE = PNG_CODE + '''
import csv
rows = list(csv.DictReader(open("/mnt/data/sales.csv")))
total = sum(float(r["revenue"]) for r in rows)
units = sum(int(r["units"]) for r in rows)
print(f"total revenue: {total:.2f}")
print(f"total units: {units}")
by_region = {}
for r in rows:
    by_region[r["region"]] = by_region.get(r["region"], 0.0) + float(r["revenue"])
with open("/mnt/data/totals.csv", "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["region", "revenue"])
    for region in sorted(by_region):
        w.writerow([region, f"{by_region[region]:.2f}"])
png("/mnt/data/chart.png", len(by_region) * 10, 20, (200, 30, 30))
'''

FLOW = """
name: analysis
inputs:
  sales: {type: file}
steps:
  analyze:
    input: "Sum the revenue column of {{ inputs.sales }}."
    tools: [code_interpreter]
    files: ["{{ inputs.sales }}"]
  more:
    input: Continue in the same container.
    tools:
      - code_interpreter: {container: "{{ steps.analyze.container }}"}
outputs:
  container: "{{ steps.analyze.container }}"
  files: "{{ steps.analyze.files }}"
  more_files: "{{ steps.more.files }}"
"""

MORE = '''
import csv
rows = list(csv.DictReader(open("/mnt/data/totals.csv")))
best = max(rows, key=lambda r: float(r["revenue"]))
print("best region:", best["region"], best["revenue"])
open("/mnt/data/best.txt", "w").write(best["region"] + "\\n")
'''


def test_csv_in_computed_answer_files_and_image_out_then_same_container(tmp_path, emu):
    sales = _sales(tmp_path)
    emu.script({"steps": {
        "analyze": [{"code": {"source": ANALYZE, "text": "Here is what the code printed:\n{logs}"}}],
        "more": [{"code": MORE}],
    }})
    result = run_flow(tmp_path, emu, FLOW, {"sales": str(sales)})
    assert result.status == "succeeded", result.error

    total = sum(v for _, _, v in ROWS)
    units = sum(u for _, u, _ in ROWS)
    rec = record(result)
    analyze = rec["steps"]["analyze"]
    # computed by the subprocess, from the uploaded CSV
    call = analyze["code_interpreter"]["calls"][0]
    assert call["status"] == "completed"
    assert f"total revenue: {total:.2f}" in call["logs"]
    assert f"total units: {units}" in call["logs"]
    assert f"total revenue: {total:.2f}" in analyze["text"]
    assert "/mnt/data/sales.csv" in call["code"]

    # the request: auto container with the uploaded file, outputs included
    body = emu.posts("analyze")[0]["body"]
    assert body["include"] == ["code_interpreter_call.outputs"]
    (tool,) = body["tools"]
    assert tool["type"] == "code_interpreter"
    assert tool["container"]["type"] == "auto"
    (file_id,) = tool["container"]["file_ids"]
    stored = emu.server.emulator._file_store.get(file_id)
    assert stored.data == sales.read_bytes() and stored.purpose == "user_data"

    # files out: the CSV and the PNG the code wrote, each once, in the run's artifacts
    files = [Path(p) for p in result.outputs["files"]]
    assert sorted(p.name for p in files) == ["chart.png", "totals.csv"]
    artifacts = result.run_dir / "artifacts" / "analyze"
    assert sorted(p.name for p in artifacts.iterdir()) == ["chart.png", "totals.csv"]
    for p in files:
        assert p.parent == artifacts
    totals = dict(csv.reader(io.StringIO((artifacts / "totals.csv").read_text())))
    expected = _totals()
    assert totals == {"region": "revenue", **{k: f"{v:.2f}" for k, v in expected.items()}}
    assert (artifacts / "chart.png").read_bytes() == png_bytes(len(expected) * 10, 20, (200, 30, 30))
    assert analyze["images"] == [str(artifacts / "chart.png")]
    # the image came back in the call's outputs too, but it is the same file: not saved twice
    response = _saved_response(result.run_dir, "analyze")
    ci = [i for i in response["output"] if i["type"] == "code_interpreter_call"][0]
    assert [o["type"] for o in ci["outputs"]] == ["logs", "image"]
    assert "images" not in call
    # the input CSV is not brought back
    assert not any(p.name.startswith("sales") for p in artifacts.iterdir())

    # the second step worked in the same container, on the file the first one wrote
    container = result.outputs["container"]
    assert container.startswith("cntr_") and container == ci["container_id"]
    assert emu.posts("more")[0]["body"]["tools"] == [{"type": "code_interpreter", "container": container}]
    more = rec["steps"]["more"]
    best = max(expected, key=expected.get)
    assert f"best region: {best} {expected[best]:.2f}" in more["code_interpreter"]["calls"][0]["logs"]
    assert more["container"] == container
    # only what the second step made; not the first step's files again
    assert [Path(p).name for p in result.outputs["more_files"]] == ["best.txt"]
    assert Path(result.outputs["more_files"][0]).read_text() == best + "\n"


def _saved_response(run_dir: Path, step: str) -> dict:
    import json

    return json.loads((run_dir / "responses" / f"{step}.json").read_text())


def test_infinite_loop_is_stopped_and_reported_not_a_hang(tmp_path, emu):
    emu.script({"steps": {"spin": [{"code": {"source": "print('starting', flush=True)\nwhile True:\n    pass\n",
                                             "timeout": 1}}]}})
    started = time.monotonic()
    result = run_flow(tmp_path, emu, """
        name: spin
        steps:
          spin:
            input: loop forever
            tools: [code_interpreter]
        """)
    elapsed = time.monotonic() - started
    assert result.status == "succeeded", result.error
    assert elapsed < 10
    call = record(result)["steps"]["spin"]["code_interpreter"]["calls"][0]
    assert call["status"] == "failed"
    assert call["logs"].startswith("starting\n")
    assert "TimeoutError: execution exceeded the time limit of 1s" in call["logs"]
    assert "TimeoutError" in result.steps["spin"].result.text


def test_code_error_is_a_log_the_step_goes_on(tmp_path, emu):
    emu.script({"steps": {"bad": [{"code": "import csv\nprint(1/0)\n"}]}})
    result = run_flow(tmp_path, emu, """
        name: bad
        steps:
          bad:
            input: divide
            tools: [code_interpreter]
        """)
    assert result.status == "succeeded"
    call = record(result)["steps"]["bad"]["code_interpreter"]["calls"][0]
    assert call["status"] == "completed"
    assert "ZeroDivisionError: division by zero" in call["logs"]
    assert 'File "<cell>", line 2' in call["logs"]
    assert result.steps["bad"].result.files == []


def test_named_tool_memory_limit_files_list_template_and_streaming(tmp_path, emu):
    (tmp_path / "a.txt").write_text("alpha\n")
    (tmp_path / "b.txt").write_text("beta\n")
    emu.script({"steps": {
        "prep": [{"output": {"names": ["a.txt", "b.txt"]}}],
        "read": [{"code": {"source": "import os\nfor n in sorted(os.listdir('/mnt/data')):\n"
                                     "    print(n, open('/mnt/data/' + n).read().strip())\n",
                           "text": "{logs}"}}],
    }})
    result = run_flow(tmp_path, emu, """
        name: listing
        tools:
          sandbox:
            code_interpreter: {memory_limit: 4g}
        steps:
          prep:
            input: which files?
            output_schema:
              type: object
              properties: {names: {type: array, items: {type: string}}}
              required: [names]
              additionalProperties: false
          read:
            input: read them
            stream: true
            include: [code_interpreter_call.outputs]
            tools: [sandbox]
            files: ["{{ steps.prep.output.names }}"]
        """)
    assert result.status == "succeeded", result.error
    body = emu.posts("read")[0]["body"]
    assert body["stream"] is True
    assert body["include"] == ["code_interpreter_call.outputs"]  # not doubled
    container = body["tools"][0]["container"]
    assert container["memory_limit"] == "4g" and len(container["file_ids"]) == 2
    assert result.steps["read"].result.text == "a.txt alpha\nb.txt beta"
    cid = result.steps["read"].result.container
    assert emu.server.emulator._container_store.get(cid).memory_limit == "4g"


def test_explicit_container_gets_the_steps_files_and_keeps_old_files_out(tmp_path, emu):
    (tmp_path / "extra.csv").write_text("x\n41\n")
    emu.script({"steps": {
        "first": [{"code": "open('/mnt/data/old.txt', 'w').write('from first')\n"}],
        "second": [{"code": {"source": "v = int(open('/mnt/data/extra.csv').read().split()[1]) + 1\n"
                                       "print(v)\nopen('/mnt/data/new.txt', 'w').write(str(v))\n",
                             "text": "{logs}"}}],
    }})
    result = run_flow(tmp_path, emu, """
        name: explicit
        steps:
          first:
            input: make a file
            tools: [code_interpreter]
          second:
            input: use it
            files: [extra.csv]
            tools:
              - code_interpreter: {container: "{{ steps.first.container }}"}
        """)
    assert result.status == "succeeded", result.error
    cid = result.steps["first"].result.container
    # the file went straight into the container, not through file_ids
    assert f"/v1/containers/{cid}/files" in emu.paths("POST")
    assert emu.posts("second")[0]["body"]["tools"] == [{"type": "code_interpreter", "container": cid}]
    second = result.steps["second"].result
    assert second.text.startswith("42")
    assert [Path(p).name for p in second.files] == ["new.txt"]
    assert Path(second.files[0]).read_text() == "42"
    assert [Path(p).name for p in result.steps["first"].result.files] == ["old.txt"]


def test_continue_with_auto_reuses_the_container_from_the_conversation(tmp_path, emu):
    emu.script({"steps": {
        "a": [{"code": "open('/mnt/data/state.txt', 'w').write('7')\n"}],
        "b": [{"code": {"source": "print(int(open('/mnt/data/state.txt').read()) * 6)", "text": "{logs}"}}],
    }})
    result = run_flow(tmp_path, emu, """
        name: cont
        steps:
          a:
            input: start
            tools: [code_interpreter]
          b:
            continue: a
            input: go on
            tools: [code_interpreter]
        """)
    assert result.status == "succeeded", result.error
    a, b = result.steps["a"].result, result.steps["b"].result
    assert b.text == "42"
    assert a.container == b.container
    assert [Path(p).name for p in a.files] == ["state.txt"]
    assert b.files == []


def test_a_container_template_that_renders_empty_fails_clearly(tmp_path, emu):
    emu.script({"steps": {"a": [{"text": "no code today"}]}})
    result = run_flow(tmp_path, emu, """
        name: empty
        steps:
          a:
            input: hi
            tools: [code_interpreter]
          b:
            input: again
            tools:
              - code_interpreter: {container: "{{ steps.a.container }}"}
        """)
    assert result.status == "failed"
    assert result.steps["a"].result.container is None
    error = result.steps["b"].error
    assert "container is empty" in error and "did it run code" in error
    assert emu.posts("b") == []


def test_missing_local_file_fails_before_any_request(tmp_path, emu):
    result = run_flow(tmp_path, emu, """
        name: missing
        steps:
          a:
            input: hi
            files: [nope.csv]
            tools: [code_interpreter]
        """)
    assert result.status == "failed"
    assert "nope.csv: file not found" in result.steps["a"].error
    assert emu.posts() == []


def test_azure_uploads_with_purpose_assistants(tmp_path, emu):
    data = _sales(tmp_path)
    emu.script({"steps": {"a": [{"code": "print(len(open('/mnt/data/sales.csv').read().splitlines()))"}]}})
    provider = ProviderConfig("azure", emu.server.azure_base_url, "azure-key")
    result = run_flow(tmp_path, emu, """
        name: az
        steps:
          a:
            input: count lines
            files: [sales.csv]
            tools: [code_interpreter]
        """, provider=provider)
    assert result.status == "succeeded", result.error
    (file_id,) = emu.posts("a")[0]["body"]["tools"][0]["container"]["file_ids"]
    assert emu.server.emulator._file_store.get(file_id).purpose == "assistants"
    assert emu.posts("a")[0]["path"].startswith("/openai/v1/")
    logs = record(result)["steps"]["a"]["code_interpreter"]["calls"][0]["logs"]
    assert logs.strip() == str(len(data.read_text().splitlines()))


def test_manual_chaining_without_store_resends_the_call_and_keeps_the_container(tmp_path, emu):
    emu.script({"steps": {
        "a": [{"code": "open('/mnt/data/n.txt', 'w').write('5')"}],
        "b": [{"code": {"source": "print(int(open('/mnt/data/n.txt').read()) ** 2)", "text": "{logs}"}}],
    }})
    result = run_flow(tmp_path, emu, """
        name: manual
        defaults: {store: false}
        steps:
          a:
            input: start
            tools: [code_interpreter]
          b:
            continue: {step: a, mode: manual}
            input: square it
            tools: [code_interpreter]
        """)
    assert result.status == "succeeded", result.error
    body = emu.posts("b")[0]["body"]
    resent = [i for i in body["input"] if i.get("type") == "code_interpreter_call"]
    assert len(resent) == 1 and resent[0]["container_id"] == result.steps["a"].result.container
    assert "previous_response_id" not in body
    assert sorted(body["include"]) == ["code_interpreter_call.outputs", "reasoning.encrypted_content"]
    assert result.steps["b"].result.text == "25"
    assert result.steps["b"].result.container == result.steps["a"].result.container
