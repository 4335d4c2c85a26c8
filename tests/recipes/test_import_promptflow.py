"""``flowrun import promptflow``: a Prompt flow folder (tests/fixtures/promptflow, written
in the shape of the public examples) becomes a flow that validates and runs on the
emulator without the promptflow package; what did not convert is reported with its line."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from flowkit import REPO, flowrun_cli, run_file, step_error

from flowrun.importers.promptflow import import_promptflow
from flowrun.plan import load_plan

FIXTURE = REPO / "tests" / "fixtures" / "promptflow" / "triage"


def test_converts_nodes_and_reports_losses(tmp_path: Path) -> None:
    report = import_promptflow(FIXTURE, tmp_path / "out")
    assert report.valid, report.problems
    plan = load_plan(tmp_path / "out" / "triage.yaml")
    steps = plan.flow.steps
    assert set(steps) == {"classify", "parse", "reply", "search"}
    # llm node: role blocks split, prompt node inlined as a template, params carried over
    assert steps["classify"].instructions.startswith("You sort support tickets")
    assert "{% set ticket = inputs.ticket %}Ticket: {{ticket}}" in steps["classify"].input
    assert steps["classify"].model is None and plan.flow.defaults.model == "gpt-35-turbo"
    assert steps["classify"].max_output_tokens == 64 and steps["classify"].temperature == 0.2
    # python nodes: python steps; activate -> if; ${node.output.x} -> steps.node.output.x
    assert steps["parse"].python == "parse:parse"
    assert steps["parse"].with_ == {"raw": "{{ steps.classify.text }}"}
    assert steps["reply"].if_ == "{{ steps.parse.output.known == true }}"
    assert plan.needs["reply"] == {"parse"}
    assert plan.flow.provider.kind == "azure"
    lost = {(x.node, x.line): x.what for x in report.lost}
    assert ("classify", 55) in lost and "variant_1 dropped" in lost[("classify", 55)]
    assert any(n == "classify" and "stop has no Responses API equivalent" in w for (n, _), w in lost.items())
    assert any(n == "reply" and line == 42 and "connection 'my_connection'" in w
               for (n, line), w in lost.items())
    assert any(n == "search" and line == 46 and "promptflow.tools.serpapi.SerpAPI.search" in w
               for (n, line), w in lost.items())
    text = (tmp_path / "out" / "IMPORT-REPORT.md").read_text()
    assert "flow.dag.yaml:46: search: package tool promptflow.tools.serpapi.SerpAPI.search" in text
    assert "from promptflow" not in (tmp_path / "out" / "reply.py").read_text()


def test_imported_flow_runs_on_the_emulator_without_promptflow(tmp_path: Path, emu) -> None:
    assert importlib.util.find_spec("promptflow") is None  # the stand-in module is what runs
    import_promptflow(FIXTURE, tmp_path / "out")
    emu.script({"steps": {"classify": ['{"category": "shipping"}']}})
    result = run_file(tmp_path / "out" / "triage.yaml", emu, run_root=tmp_path / "runs")
    assert result.steps["parse"].status == "succeeded", step_error(result, "parse")
    assert result.steps["reply"].status == "succeeded", step_error(result, "reply")
    assert result.steps["reply"].result.output == "Routed to shipping (answer in 30 words or fewer)."
    # the unconvertible node fails, saying so, instead of disappearing
    assert result.steps["search"].status == "failed"
    assert "'search' was not converted (package tool" in step_error(result, "search")
    (body,) = emu.bodies("classify")
    assert body["instructions"].startswith("You sort support tickets")
    assert "Ticket: My order 1234 never arrived." in json.dumps(body["input"])
    assert body["max_output_tokens"] == 64


def test_cli_import_and_refusals(tmp_path: Path) -> None:
    proc = flowrun_cli("import", "promptflow", str(FIXTURE), "-o", str(tmp_path / "out"),
                       "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["valid"] is True and out["clean"] is False
    assert out["steps"]["search"].startswith("NOT CONVERTED")
    again = flowrun_cli("import", "promptflow", str(FIXTURE), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert again.returncode == 2 and "not empty" in again.stderr
    (tmp_path / "empty").mkdir()
    none = flowrun_cli("import", "promptflow", str(tmp_path / "empty"), "-o", str(tmp_path / "o2"),
                       cwd=tmp_path)
    assert none.returncode == 2 and "no flow.dag.yaml" in none.stderr
    assert "Traceback" not in again.stderr + none.stderr
