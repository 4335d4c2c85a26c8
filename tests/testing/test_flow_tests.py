"""`flowrun test`: every assertion kind both ways, errors, JUnit XML, --update, examples."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from flowkit import REPO, flowrun_cli
from flowrun.errors import SpecError
from flowrun.plan import load_plan
from flowrun.testing import load_tests, run_all

FLOW = """\
name: triage
inputs:
  ticket: {type: string, default: "printer on fire"}
defaults: {model: gpt-4.1}
tools:
  lookup: {python: triage_tools:lookup}
steps:
  classify:
    input: "Classify: {{ inputs.ticket }}"
    output_schema:
      type: object
      properties:
        severity: {type: integer}
        team: {type: string}
      required: [severity, team]
  route:
    input: "Route team {{ steps.classify.output.team }}"
    tools: [lookup]
  explain:
    continue: classify
    for_each: "{{ ['a', 'b'] }}"
    input: "Explain {{ item }}"
  fragile:
    if: "{{ inputs.ticket == 'boom' }}"
    input: "never mind"
outputs:
  severity: "{{ steps.classify.output.severity }}"
  team: "{{ steps.classify.output.team }}"
  routed: "{{ steps.route.text }}"
"""

TOOLS = '''\
def lookup(team: str) -> str:
    """The on-call person of a team."""
    return f"on-call for {team}: Ada"
'''

SCRIPT = """\
steps:
  classify: [{output: {severity: 3, team: facilities}}]
  route:
    - function_calls: [{name: lookup, arguments: {team: facilities}}]
    - text: "Routed to Ada."
"""


def _write(tmp: Path, tests: str, script: str = SCRIPT) -> Path:
    (tmp / "triage.yaml").write_text(FLOW)
    (tmp / "triage_tools.py").write_text(TOOLS)
    (tmp / "triage.emulator.yaml").write_text(script)
    path = tmp / "triage.test.yaml"
    path.write_text(textwrap.dedent(tests))
    return path


def _run(path: Path) -> dict[str, object]:
    tests = load_tests(path)
    plan = load_plan(tests.flow_path)
    results = asyncio.run(run_all([(tests, plan, n, c) for n, c in tests.model.cases.items()]))
    return {r.name: r for r in results}


PASSING = """\
cases:
  all kinds:
    expect:
      outputs:
        severity: {equals: 3, approx: 3.0, expr: "value > 2"}
        team: {contains: facil, matches: "^fac.*ies$", length: 10}
        routed: {equals: "Routed to Ada."}
      steps:
        classify:
          status: succeeded
          attempts: 1
          output: {json_schema: {type: object, required: [severity, team]}}
        route:
          tool_calls: [{name: lookup, arguments: {team: facilities}}]
          tool_calls_order: exact
          text: {contains: Ada}
        fragile: {skipped: true}
      requests:
        - {step: explain, item: 1, previous_response_of: classify}
        - {step: route, turn: 0, tools: [lookup], lacks: [previous_response_id]}
        - {step: route, count: 2}
        - {step: classify, has: [text.format.schema.properties.severity]}
      cost: {max_requests: 6, max_tokens: 100000}
      expr:
        - "steps.explain | length == 2"
        - "outputs.team == 'facilities'"
"""


def test_every_assertion_kind_passes_when_true(tmp_path: Path) -> None:
    res = _run(_write(tmp_path, PASSING))["all kinds"]
    assert res.status == "passed", [f.message for f in res.failures] + [res.error]
    assert res.requests == 5


WRONG = """\
cases:
  wrong:
    expect:
      outputs:
        severity: {equals: 4, approx: 10, expr: "value > 5"}
        team: {contains: plumbing, matches: "^x", length: 3, json_schema: {type: integer}}
        nope: {equals: 1}
      steps:
        classify: {status: failed, attempts: 2, output: {json_schema: {type: object, required: [owner]}}}
        route:
          tool_calls: [{name: lookup, arguments: {team: legal}}]
          text: {contains: Bob}
        fragile: {skipped: false}
        ghost: {status: succeeded}
      requests:
        - {step: explain, previous_response_of: route}
        - {step: route, tools: [search]}
        - {step: route, count: 5}
        - {step: classify, has: [tools], lacks: [text]}
        - {step: route, turn: 7, has: [input]}
      cost: {max_requests: 2, max_tokens: 1}
      expr: ["outputs.team == 'legal'"]
"""


def test_every_assertion_kind_fails_with_a_useful_message(tmp_path: Path) -> None:
    res = _run(_write(tmp_path, WRONG))["wrong"]
    assert res.status == "failed"
    messages = "\n".join(f"{f.where}: {f.message}" for f in res.failures)
    expected = [
        "outputs.severity does not equal the expected value",
        "outputs.severity is 3, not within 1e-06 of 10.0",
        "expression 'value > 5' is false",
        "outputs.team does not contain 'plumbing'",
        "outputs.team does not match /^x/",
        "outputs.team has length 10, expected 3",
        "outputs.team: 'facilities' is not of type 'integer'",
        "the run has no output 'nope'",
        "step classify is succeeded, expected failed",
        "step classify took 1 attempt(s), expected 2",
        "'owner' is a required property",
        "step route's tool calls do not include these",
        "steps.route.text does not contain 'Bob'",
        "step fragile is skipped, expected not skipped",
        "the flow has no step 'ghost'",
        "not a response of step route",
        "did not offer search",
        "step route sent 2 request(s), expected 5",
        "step classify's request has no tools",
        "step classify's request has text =",
        "there is no turn 7",
        "the run sent 5 model requests, more than 2",
        "more than 1",
        "expression \"outputs.team == 'legal'\" is false",
    ]
    for text in expected:
        assert text in messages, f"{text!r} not in:\n{messages}"
    assert len(res.failures) == len(expected)
    # every failure points at its line in the test file
    lines = (tmp_path / "triage.test.yaml").read_text().splitlines()
    for f in res.failures:
        line = int(f.where.split(":")[1])
        key = f.path[-1] if isinstance(f.path[-1], str) else f.path[-2]
        assert str(key) in lines[line - 1] or f.path[3] in ("requests", "expr"), (f.where, f.path)
    equals = next(f for f in res.failures if f.path[-1] == "equals")
    assert "-4" in equals.diff() and "+3" in equals.diff()


ERRORS = """\
cases:
  fails as expected:
    script: {steps: {classify: [{error: {status: 400, message: "bad ticket"}}]}}
    expect_error: {step: classify, message: "bad ticket"}
  fails differently:
    script: {steps: {classify: [{error: {status: 400, message: "bad ticket"}}]}}
    expect_error: {step: route, message: "quota"}
  should fail but succeeds:
    expect_error: {status: failed}
  unexpected failure:
    script: {steps: {classify: [{error: {status: 400, message: "bad ticket"}}]}}
"""


def test_expect_error_both_ways(tmp_path: Path) -> None:
    res = _run(_write(tmp_path, ERRORS))
    assert res["fails as expected"].status == "passed", [f.message for f in res["fails as expected"].failures]
    msgs = [f.message for f in res["fails differently"].failures]
    assert any("step route did not fail (failed: classify)" in m for m in msgs), msgs
    assert any("does not match /quota/" in m for m in msgs), msgs
    msgs = [f.message for f in res["should fail but succeeds"].failures]
    assert msgs == ["the run succeeded, expected it to be failed"]
    msgs = [f.message for f in res["unexpected failure"].failures]
    assert msgs and "the run failed" in msgs[0] and "bad ticket" in msgs[0]


def test_bad_test_files_get_positioned_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, """\
        cases:
          one:
            expect:
              outputs:
                team: {contians: x}
    """)
    with pytest.raises(SpecError) as err:
        load_tests(path)
    text = err.value.format()
    assert "triage.test.yaml:5:" in text and "unknown key 'contians'" in text and "did you mean 'contains'" in text
    (tmp_path / "other.test.yaml").write_text("cases: {a: {inputs: {}}}\n")
    with pytest.raises(SpecError) as err:
        load_tests(tmp_path / "other.test.yaml")
    assert "other.yaml does not exist" in err.value.format()
    (tmp_path / "x.test.yaml").write_text("flow: triage.yaml\ncases:\n  a: {script: {}, recording: r.json}\n")
    with pytest.raises(SpecError) as err:
        load_tests(tmp_path / "x.test.yaml")
    assert "x.test.yaml:3:" in err.value.format() and "not script and recording" in err.value.format()


def test_cli_exit_codes_json_junit_and_k(tmp_path: Path) -> None:
    _write(tmp_path, PASSING.replace("cases:\n", "cases:\n  wrong one:\n    expect: {outputs: {team: {equals: x}}}\n"))
    junit = tmp_path / "out" / "junit.xml"
    proc = flowrun_cli("test", str(tmp_path), "--junit", str(junit), "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["status"] == "failed" and report["summary"] == {"passed": 1, "failed": 1, "errors": 0, "total": 2}
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    assert root.tag == "testsuites" and suite.get("tests") == "2" and suite.get("failures") == "1"
    failed = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["wrong one"]
    assert "outputs.team does not equal" in failed[0].find("failure").text
    proc = flowrun_cli("test", str(tmp_path), "-k", "all kinds", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS  " in proc.stdout and "1 passed, 0 failed" in proc.stdout
    proc = flowrun_cli("test", str(tmp_path / "missing"), cwd=tmp_path)
    assert proc.returncode == 2 and "no such file or directory" in proc.stderr and "Traceback" not in proc.stderr


def test_junit_xml_validates_against_the_junit_schema(tmp_path: Path) -> None:
    import xmlschema
    _write(tmp_path, ERRORS)
    junit = tmp_path / "junit.xml"
    flowrun_cli("test", str(tmp_path), "--junit", str(junit), cwd=tmp_path)
    schema = xmlschema.XMLSchema(str(Path(__file__).parent / "junit.xsd"))
    schema.validate(str(junit))
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("failures") == "3" and suite.get("errors") == "0"


def test_update_rewrites_equals_snapshots_and_keeps_comments(tmp_path: Path) -> None:
    path = _write(tmp_path, """\
        cases:
          snap:
            expect:
              outputs:
                # the severity the script gives
                severity: {equals: 1}
                routed: {equals: "old text", contains: Routed}
    """)
    proc = flowrun_cli("test", str(path), "--update", cwd=tmp_path)
    assert "updated 2 snapshot(s)" in proc.stdout, proc.stdout + proc.stderr
    assert "-1" in proc.stdout and "+3" in proc.stdout
    text = path.read_text()
    assert "# the severity the script gives" in text
    assert load_tests(path).model.cases["snap"].expect.outputs["severity"].equals == 3
    assert load_tests(path).model.cases["snap"].expect.outputs["routed"].equals == "Routed to Ada."
    proc = flowrun_cli("test", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout


def test_examples_have_tests_and_they_pass_quickly() -> None:
    examples = REPO / "examples" / "flows"
    flows = {p.name[:-5] for p in examples.glob("*.yaml")
             if not p.name.endswith((".emulator.yaml", ".test.yaml"))}
    tested = {p.name[: -len(".test.yaml")] for p in examples.glob("*.test.yaml")}
    assert flows - tested == set(), f"example flows without a test file: {sorted(flows - tested)}"
    started = time.monotonic()
    proc = flowrun_cli("test", "examples/", "--json", timeout=120)
    elapsed = time.monotonic() - started
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, [c for c in report["cases"] if c["status"] != "passed"]
    assert report["summary"]["total"] >= len(flows)
    print(f"flowrun test examples/: {report['summary']['total']} cases in {elapsed:.1f}s")


def test_test_schema_file_is_current_and_validates_the_examples() -> None:
    from jsonschema import Draft202012Validator
    from ruamel.yaml import YAML

    from flowrun.schema import test_schema_text

    # if this fails after a model change: .venv/bin/flowrun schema --tests > schemas/test.schema.json
    assert (REPO / "schemas" / "test.schema.json").read_text() == test_schema_text()
    validator = Draft202012Validator(json.loads(test_schema_text()))
    for path in sorted((REPO / "examples" / "flows").glob("*.test.yaml")):
        data = YAML(typ="safe").load(path.read_text())
        assert not list(validator.iter_errors(data)), path
        assert path.read_text().startswith("# yaml-language-server: $schema=../../schemas/test.schema.json")


def test_background_steps_are_polled_at_the_in_process_emulator_pace(tmp_path: Path) -> None:
    """The in-process emulator finishes a background response in milliseconds: a case does
    not sit out the flow's poll_interval (an hour here: the case would time out)."""
    (tmp_path / "bg.yaml").write_text(
        "name: bg\nsteps:\n  report: {model: o3, input: think, background: true, poll_interval: 1h}\n"
        "outputs:\n  report: '{{ steps.report.text }}'\n")
    (tmp_path / "bg.test.yaml").write_text(
        "cases:\n  polled:\n    expect:\n      outputs: {report: {equals: '[emulator] turn 1: think'}}\n"
        "      requests: [{step: report, has: [background]}]\n")
    proc = flowrun_cli("test", str(tmp_path), "--json", cwd=tmp_path, timeout=150)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = flowrun_cli("run", str(tmp_path / "bg.yaml"), "--provider", "emulator", "--json",
                       cwd=tmp_path, timeout=150)
    assert proc.returncode == 0 and json.loads(proc.stdout)["outputs"]["report"] == "[emulator] turn 1: think"
