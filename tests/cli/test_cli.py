"""The language commands of the CLI: validate, graph, schema, --version, --help."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowrun import __version__
from flowrun.cli import main

ROOT = Path(__file__).parents[2]
VALID = ROOT / "tests" / "fixtures" / "valid"
BROKEN = ROOT / "tests" / "fixtures" / "broken"


def invoke(*args: str):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


# --------------------------------------------------------------------------- validate


def test_validate_ok() -> None:
    path = str(VALID / "diamond.yaml")
    result = invoke("validate", path)
    assert result.exit_code == 0
    assert result.stdout == f"ok  {path} (4 steps)\n"
    assert result.stderr == ""


def test_validate_many_files_with_mixed_results() -> None:
    good, also_good = str(VALID / "diamond.yaml"), str(VALID / "for-each.yaml")
    bad = str(BROKEN / "unknown-step-reference.yaml")
    result = invoke("validate", good, bad, also_good)
    assert result.exit_code == 2
    assert result.stdout.splitlines() == [f"ok  {good} (4 steps)", f"ok  {also_good} (4 steps)"]
    assert result.stderr.startswith(f"{bad}:6:12: steps.summary.input: unknown step 'reserch'\n")
    assert "hint: did you mean 'research'?" in result.stderr


def test_validate_json() -> None:
    good = str(VALID / "diamond.yaml")
    bad = str(BROKEN / "several-errors.yaml")
    result = invoke("validate", "--json", good, bad)
    assert result.exit_code == 2
    assert result.stderr == ""
    report = json.loads(result.stdout)  # exactly one JSON document on stdout
    assert report[good] == {"valid": True, "steps": 4}
    assert report[bad]["valid"] is False
    problems = report[bad]["problems"]
    assert len(problems) == 6
    first = problems[0]
    assert set(first) == {"file", "line", "column", "path", "message", "hint"}
    assert (first["file"], first["line"], first["column"]) == (bad, 6, 12)
    assert first["path"] == ["steps", "outline", "input"]
    assert first["message"] == "unknown input 'topik'"
    assert first["hint"] == "did you mean 'topic'?"


def test_validate_json_all_valid_exits_0() -> None:
    result = invoke("validate", "--json", str(VALID / "continue-chain.yaml"))
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {str(VALID / "continue-chain.yaml"): {"valid": True, "steps": 4}}


def test_validate_missing_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    result = invoke("validate", missing)
    assert result.exit_code == 2
    assert f"{missing}: no such file" in result.stderr


def test_validate_usage_errors_exit_2(tmp_path: Path) -> None:
    assert invoke("validate").exit_code == 2
    assert invoke("validate", str(tmp_path)).exit_code == 2  # a directory
    assert invoke("validate", "--nope", str(VALID / "diamond.yaml")).exit_code == 2


def test_validate_sub_flow_problem_names_the_sub_flow(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text("name: c\nsteps:\n  s:\n    inptu: x\n")
    (tmp_path / "main.yaml").write_text("name: m\nsteps: {a: {flow: child.yaml}}\n")
    result = invoke("validate", str(tmp_path / "main.yaml"))
    assert result.exit_code == 2
    assert f"{tmp_path / 'child.yaml'}:4:5: steps.s.inptu: unknown key 'inptu'" in result.stderr


# --------------------------------------------------------------------------- graph


@pytest.mark.parametrize(
    ("fmt", "first_line"),
    [("text", "diamond: 4 steps in 3 stages"), ("mermaid", "flowchart TD"), ("dot", 'digraph "diamond" {')],
)
def test_graph_formats(fmt: str, first_line: str) -> None:
    result = invoke("graph", str(VALID / "diamond.yaml"), "--format", fmt)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == first_line
    assert "bottom" in result.stdout


def test_graph_defaults_to_text() -> None:
    result = invoke("graph", str(VALID / "diamond.yaml"))
    assert result.stdout.startswith("diamond: 4 steps in 3 stages\n")


def test_graph_of_a_broken_flow() -> None:
    path = str(BROKEN / "long-cycle.yaml")
    result = invoke("graph", path)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"{path}:3:3: steps.collect: dependency cycle: collect -> publish" in result.stderr


def test_graph_rejects_unknown_format() -> None:
    result = invoke("graph", str(VALID / "diamond.yaml"), "--format", "png")
    assert result.exit_code == 2
    assert "'png' is not one of" in result.output


# --------------------------------------------------------------------------- schema, version, help


def test_schema_command_prints_the_checked_in_schema() -> None:
    result = invoke("schema")
    assert result.exit_code == 0
    assert result.stdout == (ROOT / "schemas" / "flow.schema.json").read_text(encoding="utf-8")


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag: str) -> None:
    result = invoke(flag)
    assert result.exit_code == 0
    assert result.stdout == f"flowrun, version {__version__}\n"


def test_help_for_every_command() -> None:
    top = invoke("--help")
    assert top.exit_code == 0
    assert {"validate", "graph", "schema"} <= set(main.commands)
    for name, command in main.commands.items():
        assert name in top.stdout
        for flag in ("--help", "-h"):
            result = invoke(name, flag)
            assert result.exit_code == 0, name
            assert result.stdout.startswith(f"Usage: main {name} "), name
            first_doc_line = (command.help or "").strip().splitlines()[0]
            assert first_doc_line[:40] in " ".join(result.stdout.split()), name


# --------------------------------------------------------------------------- import hygiene


def _modules_after(code: str) -> set[str]:
    probe = textwrap.dedent(code) + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))\n"
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_validate_does_not_import_openai() -> None:
    modules = _modules_after(f"""
        from flowrun.cli import main
        try:
            main(["validate", {str(VALID / 'everything.yaml')!r}, {str(BROKEN / 'several-errors.yaml')!r}])
        except SystemExit as exc:
            assert exc.code == 2, exc.code
    """)
    assert "flowrun.plan" in modules  # the probe really validated
    assert not {m for m in modules if m == "openai" or m.startswith("openai.")}
    assert "httpx" not in modules


def test_help_imports_nothing_heavy() -> None:
    modules = _modules_after("""
        from flowrun.cli import main
        try:
            main(["--help"])
        except SystemExit as exc:
            assert exc.code == 0
    """)
    heavy = {"openai", "pydantic", "jinja2", "networkx", "ruamel.yaml", "httpx", "starlette", "rich"}
    assert not heavy & modules


def test_validate_every_example_in_one_process() -> None:
    examples = sorted(str(p) for p in (ROOT / "examples" / "flows").glob("*.yaml")
                      if not p.name.endswith((".emulator.yaml", ".test.yaml")))  # scripts, tests
    proc = subprocess.run(
        [sys.executable, "-m", "flowrun.cli", "validate", *examples],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\nok  ") + proc.stdout.startswith("ok  ") == len(examples)
