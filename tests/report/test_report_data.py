"""What the report collects from real runs on the emulator: steps in plan order, turns
with their rendered requests, tool calls with outputs, retries and budget waits recorded
in the store, images inline (and left out over the cap), cost from prices, secrets
masked, and the page escaped."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from flowkit import flowrun_cli, run_flow, write_flow
from reportkit import data_of, page_of, run_example, run_with_budget, step

from flowrun.ratelimit import RateBudget
from flowrun.report.collect import _marks
from flowrun.secrets import Redactor
from flowrun.report.embed import Embedder
from flowrun.report.prices import cost, load_prices
from flowrun.rundb import RunDB
from flowrun.secrets import Redactor


def test_a_tool_loop_shows_each_turn_its_request_and_every_call_with_its_output(emu, tmp_path):
    result = run_example("tools-demo", emu, tmp_path)
    assert result.status == "succeeded", result.error
    data = data_of(result)
    assert [s["key"] for s in data["steps"]] == ["plan", "pack"]
    plan = step(data, "plan")
    assert plan["status"] == "succeeded" and len(plan["turns"]) == 3
    assert plan["request"]["instructions"].startswith("You plan day trips")
    assert "Lyon" in plan["request"]["input"][0]["text"]
    assert set(plan["request"]["tools"]) >= {"forecast", "distance", "fx_rate"}
    calls = [i for t in plan["turns"] for i in t["items"] if i["type"] == "function_call"]
    assert len(calls) == 5  # two, then three (one with a wrong argument)
    by_name = {c["title"].split()[1]: c for c in calls if "error" not in c}
    assert by_name["distance"]["output"] == 391.6
    assert by_name["fx_rate"]["output"]["rate"] == pytest.approx(1.086957)
    bad = [c for c in calls if "error" in c]
    assert len(bad) == 1 and "'two' is not of type" in bad[0]["error"]
    # the graph: both steps, pack needs plan, coloured by status
    assert data["dag"].count('class="node st-succeeded"') == 2
    assert data["dag"].count('class="edge"') == 1
    assert step(data, "pack")["needs"] == ["plan"]
    # the run kept what the report draws of its plan: no need to plan the flow again
    db = RunDB.at(tmp_path / "runs")
    outline = db.outline(result.run_id)
    db.close()
    assert outline["needs"] == {"plan": [], "pack": ["plan"]} and outline["models"]["plan"] == "gpt-4.1"


def test_retries_and_rate_budget_waits_are_recorded_and_drawn(emu, tmp_path):
    emu.script({"steps": {"a": [{"error": {"status": 429, "message": "slow down", "retry_after": 0.2}},
                                {"text": "ok"}]}})
    flow = write_flow(tmp_path, """
        name: waits
        defaults: {retries: {max: 2, initial_delay: 0.05}}
        steps:
          a: {input: "first"}
          b: {input: "second", needs: [a]}
          c: {input: "third", needs: [a]}
    """)
    result = run_with_budget(flow, emu, RateBudget(rpm=120), tmp_path / "runs")  # 1 request / 0.5 s
    assert result.status == "succeeded", result.error
    db = RunDB.at(tmp_path / "runs")
    events = db.events(result.run_id)
    db.close()
    retries = [e for e in events if e["kind"] == "retry"]
    assert len(retries) == 1 and retries[0]["key"] == "a" and retries[0]["seconds"] == pytest.approx(0.2)
    assert "slow down" in retries[0]["detail"]
    waits = [e for e in events if e["kind"] == "budget"]
    assert waits and all(w["seconds"] > 0.05 for w in waits)  # the bucket holds one request
    data = data_of(result)
    assert step(data, "a")["events"][0]["kind"] == "retry"
    assert data["timeline"].count('class="retry"') == 1
    assert data["timeline"].count('class="wait"') == len(waits)


def test_images_are_inline_and_one_over_the_cap_is_noted(emu, tmp_path):
    result = run_example("image-edit", emu, tmp_path)
    assert result.status == "succeeded", result.error
    data = data_of(result)
    gen = step(data, "generate")
    shown = [i["image"] for t in gen["turns"] for i in t["items"] if i["type"] == "image_generation_call"]
    assert shown and shown[0]["src"].startswith("data:image/png;base64,")
    png = base64.b64decode(shown[0]["src"].split(",", 1)[1])
    assert png == Path(result.steps["generate"].result.images[0]).read_bytes()
    assert "[data, " in json.dumps(gen["turns"][0]["items"][0]["raw"])  # base64 not copied twice
    small = data_of(result, max_image_bytes=100)
    item = [i for t in step(small, "generate")["turns"] for i in t["items"] if i.get("image")][0]
    assert "src" not in item["image"] and "over the cap" in item["image"]["note"]
    assert any("over the cap" in n for n in small["notes"])


def test_cost_from_prices_and_a_note_for_unpriced_models(emu, tmp_path):
    result = run_example("tools-demo", emu, tmp_path)
    prices = {"gpt-4.1": {"input": 2.0, "output": 8.0, "cached": 0.5}}
    data = data_of(result, prices=prices)
    plan = step(data, "plan")
    expected = sum(cost(prices, t["model"], t["usage"]) for t in plan["turns"])
    assert plan["cost"] == pytest.approx(expected) and expected > 0
    u = plan["turns"][0]["usage"]
    cached = u["input_tokens_details"]["cached_tokens"]
    assert cost(prices, "gpt-4.1-2025-04-14", u) == pytest.approx(
        ((u["input_tokens"] - cached) * 2.0 + cached * 0.5 + u["output_tokens"] * 8.0) / 1e6)
    assert data["totals"]["cost"] == pytest.approx(sum(s["cost"] for s in data["steps"]))
    other = data_of(result, prices={"gpt-5": {"input": 1, "output": 1}})
    assert any("No price for gpt-4.1" in n for n in other["notes"])


def test_prices_file_errors_name_the_file_and_key(tmp_path):
    bad = tmp_path / "prices.yaml"
    bad.write_text("prices:\n  gpt-4.1: {input: 2, output: lots}\n")
    with pytest.raises(Exception) as err:
        load_prices(str(bad))
    assert "prices.gpt-4.1.output must be a number" in str(err.value)
    good = tmp_path / "ok.json"
    good.write_text(json.dumps({"gpt-4.1": {"input": 2, "output": 8}}))
    assert load_prices(str(good)) == {"gpt-4.1": {"input": 2.0, "output": 8.0}}


def test_secrets_are_masked_and_model_text_is_escaped(emu, tmp_path, monkeypatch):
    secret = "s3cr3t-value-for-the-report-0123"
    monkeypatch.setenv("REPORT_TOKEN", secret)
    result = run_flow(tmp_path, emu, """
        name: masked
        secrets: [REPORT_TOKEN]
        steps:
          ask:
            instructions: "Use the key {{ secrets.REPORT_TOKEN }} carefully."
            input: "Say </script><img src=x onerror=alert(1)> please"
    """, environ={"REPORT_TOKEN": secret})
    assert result.status == "succeeded", result.error
    path, html = page_of(result)
    assert secret not in html and "***" in html
    assert "<img src=x onerror" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert html.count("</script>") == html.count("<script")  # nothing closes a script early


@pytest.mark.slow  # four command lines, each starting flowrun afresh
def test_a_failed_run_reports_from_the_command_line_with_its_error(tmp_path):
    flow = write_flow(tmp_path, """
        name: breaks
        steps:
          first: {input: "hello"}
          second: {input: "{{ steps.first.text }} again", retries: {max: 0}}
          third: {input: "{{ steps.second.text }} and more"}
    """)
    (tmp_path / "flow.emulator.yaml").write_text(
        "steps:\n  second:\n    - error: {status: 400, message: the request is bad}\n")
    proc = flowrun_cli("run", str(flow), "--provider", "emulator", "--run-dir", str(tmp_path / "runs"),
                       "--json", "--report", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    run = json.loads(proc.stdout)
    report = Path(run["run_dir"]) / "report.html"
    assert f"report: {report}" in proc.stderr
    html = report.read_text()
    assert "the request is bad" in html
    assert 'data-step="second"' in html and 'class="node st-failed"' in html
    out = tmp_path / "again.html"
    proc = flowrun_cli("report", "last", "--run-dir", str(tmp_path / "runs"), "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == str(out) and out.stat().st_size > 1000
    resumed = tmp_path / "resumed.html"
    proc = flowrun_cli("resume", "last", "--run-dir", str(tmp_path / "runs"), "--json",
                       f"--report={resumed}", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # the step fails again
    html = resumed.read_text()
    assert 'id="attempts"' in html and "resumed a failed run" in html
    proc = flowrun_cli("report", "nope", "--run-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert proc.returncode == 2 and "no run 'nope'" in proc.stderr and "Traceback" not in proc.stderr


def test_files_outside_the_run_directory_are_never_read(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "artifacts" / "s").mkdir(parents=True)
    (run_dir / "artifacts" / "s" / "a.txt").write_text("token abcdefghijklmnop here")
    (tmp_path / "outside.txt").write_text("private")
    red = Redactor()
    red.add("abcdefghijklmnop")
    embed = Embedder(run_dir, red)
    assert embed.file(str(tmp_path / "outside.txt"))["note"] == "not in the run directory"
    assert embed.file("../outside.txt")["note"] == "not in the run directory"
    moved = embed.file("/elsewhere/run/artifacts/s/a.txt")  # the run directory moved
    assert moved["preview"] == "token *** here"


def test_each_computer_action_becomes_a_mark():
    assert _marks({"type": "click", "x": 5, "y": 6}, 100, 80, Redactor())[0] == {
        "kind": "click", "x": 5.0, "y": 6.0, "label": "click"}
    drag = _marks({"type": "drag", "path": [{"x": 1, "y": 2}, {"x": 30, "y": 40}]}, 100, 80, Redactor())[0]
    assert drag["points"] == "1,2 30,40" and (drag["x2"], drag["y2"]) == (30, 40)
    scroll = _marks({"type": "scroll", "x": 10, "y": 10, "scroll_x": 0, "scroll_y": 400}, 100, 80, Redactor())[0]
    assert scroll["y2"] == 90 and scroll["x2"] == 10  # an arrow of at most 80 px
    assert _marks({"type": "type", "text": "hello"}, 100, 80, Redactor())[0]["label"] == "type: hello"


def test_a_dataset_run_lists_every_row_compactly_with_its_steps(emu, tmp_path):
    from reportkit import rows_json, run_dataset_of

    bad = {"match": "T(4|9):", "error": {"status": 400, "message": "row refused"}}
    emu.script({"steps": {"classify": [bad, bad, {"text": "billing"}]}})
    result = run_dataset_of(emu, tmp_path, 12)
    assert result.failed == 2 and result.succeeded == 10
    path, html = page_of(result)
    rows = rows_json(html)
    assert [r[0] for r in rows] == list(range(1, 13))
    assert {r[0] for r in rows if r[1] == "failed"} == {4, 9}
    failed = next(r for r in rows if r[0] == 4)
    assert "row refused" in failed[6] and failed[7] == [["classify", "failed"], ["reply", "skipped"]]
    ok = next(r for r in rows if r[0] == 1)
    assert "T1: printer 1 jams" in ok[4] and ok[7] == [["classify", "succeeded"], ["reply", "succeeded"]]
    assert html.count('<tr class="row"') == 0  # rows are drawn by the page's script, a page at a time
    data = data_of(result)
    assert data["dataset"]["counts"] == {"succeeded": 10, "failed": 2}
    assert step(data, "classify")["dataset_counts"] == {"succeeded": 10, "failed": 2}
    assert 'class="node st-failed" data-step="classify"' in data["dag"]
    # the timeline: rows finishing over time, the failed ones in red
    assert "rows failed" in data["timeline"] and "rows succeeded" in data["timeline"]


def test_the_graph_layers_steps_by_what_they_need_and_wraps_long_layers():
    from flowrun.report.dag import MAX_COLUMN, dag_svg, layers_of

    order = ["a", "b", "c", "d"]
    needs = {"c": ["a"], "d": ["b", "c"]}
    assert layers_of(order, needs) == [["a", "b"], ["c"], ["d"]]
    wide = [f"s{i}" for i in range(MAX_COLUMN * 2 + 1)]
    svg = dag_svg(wide, {}, {}, {s: "step-" + s for s in wide})
    xs = {float(x) for x in re.findall(r'<rect x="([\d.]+)"', svg)}
    assert len(xs) == 3  # one layer of 81 steps in three columns
    assert svg.count("<a href=") == len(wide)
    tricky = dag_svg(["<b>"], {}, {"<b>": "failed"}, {"<b>": 'x"y'})
    assert "<b>" not in tricky
    assert 'href="#x&quot;y"' in tricky and "&lt;b&gt;" in tricky


def test_mcp_calls_and_approvals_show_who_decided_and_the_token_never(emu, tmp_path):
    import sys

    from flowkit import REPO

    sys.path.insert(0, str(REPO / "examples"))
    try:
        from mcp_server import DocsExample  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(REPO / "examples"))
    token = "example-token-for-the-report-5f4e3d"
    server = DocsExample(token, port=0).start()
    try:
        result = run_example("mcp-docs", emu, tmp_path, {"docs_url": server.url, "question": "Rotate a key?"},
                             environ={"DOCS_MCP_TOKEN": token})
    finally:
        server.stop()
    assert result.status == "succeeded", result.error
    data = data_of(result)
    answer = step(data, "answer")
    items = [i for t in answer["turns"] for i in t["items"]]
    kinds = [i["type"] for i in items]
    assert "mcp_list_tools" in kinds and "mcp_approval_request" in kinds
    request = next(i for i in items if i["type"] == "mcp_approval_request")
    assert request["decision"]["decision"] == "approved" and request["decision"]["by"] == "policy"
    assert [(a["tool"], a["decision"], a["decided_by"]) for a in answer["approvals"]] == [
        ("fetch_page", "approved", "policy")]
    calls = [i for i in items if i["type"] == "mcp_call"]
    assert {c["title"] for c in calls} >= {"MCP internal_docs.search_docs", "MCP internal_docs.fetch_page"}
    path, html = page_of(result)
    assert token not in html


def test_code_interpreter_code_logs_and_files(emu, tmp_path):
    result = run_example("data-analysis", emu, tmp_path)
    assert result.status == "succeeded", result.error
    analyze = step(data_of(result), "analyze")
    code = [i for t in analyze["turns"] for i in t["items"] if i["type"] == "code_interpreter_call"]
    assert code and "revenue_by_region.csv" in code[0]["code"]
    assert code[0]["logs"]  # what the code printed
    files = {f["name"]: f for f in analyze["files"]}
    csv = files["revenue_by_region.csv"]
    assert csv["preview"].startswith("month,") and csv["src"].startswith("data:text/plain")
    charts = [i for i in analyze["images"] if i["name"] == "revenue_by_region.png"]
    assert charts and charts[0]["src"].startswith("data:image/png;base64,")


def test_a_moved_runs_directory_still_reports_with_its_images(emu, tmp_path):
    import shutil

    result = run_example("image-edit", emu, tmp_path)
    moved = tmp_path / "moved"
    shutil.move(str(tmp_path / "runs"), str(moved))
    from flowrun.report import write_report

    path = write_report("last", moved)
    assert path == moved / result.run_id / "report.html"
    html = path.read_text()
    assert html.count('src="data:image/png;base64,') >= 3 and "not in the run directory" not in html


def test_typed_text_on_a_screenshot_is_masked_before_it_is_cut():
    """A secret the agent typed straddles the label's 80-character cut: no piece of it
    is drawn on the screenshot."""
    secret = "hunter2-Zq9vX4mB7kLp3sTw"
    redactor = Redactor()
    redactor.add(secret)
    text = "x" * 65 + secret + " and more"
    (mark,) = _marks({"type": "type", "text": text}, 800, 600, redactor)
    assert mark["kind"] == "type" and len(mark["label"]) <= 80
    assert not any(secret[i:i + 6] in mark["label"] for i in range(len(secret) - 5))
    (keys,) = _marks({"type": "keypress", "keys": ["CTRL", "A"]}, 800, 600, redactor)
    assert keys["label"] == "keypress: CTRL+A"
