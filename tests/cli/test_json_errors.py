"""Under --json an error is one JSON object on stdout too (exit 2 stays): flow problems
with their positions, run usage errors, and click's own usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowrun.cli import main

BROKEN = Path(__file__).parents[1] / "fixtures" / "broken"


def invoke_json(*args: str) -> dict:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)  # exactly one JSON document
    assert report["status"] == "invalid"
    assert report["exit_code"] == 2
    assert result.stderr  # the human-readable message is still on stderr
    return report


def test_run_json_on_an_invalid_flow_prints_the_positioned_problems(tmp_path):
    path = str(BROKEN / "output-schema-invalid.yaml")
    report = invoke_json("run", path, "--json", "--provider", "emulator", "--run-dir", str(tmp_path))
    assert report["error_type"] == "PlanError"
    first, second = report["problems"]
    assert (first["file"], first["line"], first["column"]) == (path, 7, 17)
    assert "null is not of type 'array'" in first["message"]
    assert (second["line"], second["column"]) == (9, 23)
    assert f"{path}:7:17:" in report["error"]
    assert not list(tmp_path.iterdir())  # nothing ran


def test_run_json_on_a_usage_error_prints_the_message_and_hint(tmp_path):
    flow = tmp_path / "flow.yaml"
    flow.write_text("name: f\nsteps:\n  a: {input: hi}\n")
    report = invoke_json("run", str(flow), "--json", "-i", "nope=1", "--provider", "emulator")
    assert report["error_type"] == "UsageError"
    assert "unknown input 'nope'" in report["error"]
    assert report["hint"]
    assert report["problems"] == []


@pytest.mark.parametrize("args, message", [
    (["run", "--json"], "Missing argument 'FLOW'"),
    (["run", "flow.yaml", "--json", "--bogus"], "No such option '--bogus'"),
    (["run", "flow.yaml", "--json", "--provider", "nope"], "Invalid value for '--provider'"),
    (["validate", "--json"], "Missing argument 'FLOWS...'"),
    (["validate", "--json", "--strict", "flow.yaml"], "No such option '--strict'"),
])
def test_click_usage_errors_under_json_print_one_object(args, message):
    report = invoke_json(*args)
    assert message in report["error"]
    assert report["problems"] == []


def test_without_json_a_usage_error_prints_nothing_on_stdout():
    result = CliRunner().invoke(main, ["run", "--bogus"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "No such option '--bogus'" in result.stderr
