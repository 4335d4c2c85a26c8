"""The broken-flow corpus: every file in tests/fixtures/broken/ must be rejected with
exactly the problems listed for it in expectations.yaml, by the library and by the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from flowrun.cli import main
from flowrun.errors import Problem, SpecError
from flowrun.plan import load_plan

BROKEN = Path(__file__).parents[1] / "fixtures" / "broken"
EXPECTATIONS: dict[str, list[dict[str, str]]] = yaml.safe_load(
    (BROKEN / "expectations.yaml").read_text(encoding="utf-8")
)
CASES = sorted(EXPECTATIONS)


def _position(expected: dict[str, str]) -> tuple[int, int]:
    line, col = expected["at"].split(":")
    return int(line), int(col)


def _matches(problem: Problem, expected: dict[str, str]) -> bool:
    if (problem.line, problem.column) != _position(expected):
        return False
    if expected["message"] not in problem.message:
        return False
    if "hint" in expected and expected["hint"] not in (problem.hint or ""):
        return False
    return "path" not in expected or problem.key_path == expected["path"]


def test_corpus_is_complete() -> None:
    files = {p.name for p in BROKEN.glob("*.yaml")} - {"expectations.yaml"}
    assert files == set(EXPECTATIONS), "every broken fixture needs expectations, and vice versa"
    assert len(files) >= 30
    assert all(EXPECTATIONS[name] for name in files)


@pytest.mark.parametrize("name", CASES)
def test_load_plan_reports_each_expected_problem(name: str) -> None:
    with pytest.raises(SpecError) as info:
        load_plan(BROKEN / name)
    problems = list(info.value.problems)
    shown = "\n".join(p.format() for p in problems)
    for expected in EXPECTATIONS[name]:
        found = next((p for p in problems if _matches(p, expected)), None)
        assert found is not None, f"expected {expected} among:\n{shown}"
        problems.remove(found)
    assert not problems, f"unexpected extra problems:\n{shown}"


@pytest.mark.parametrize("name", CASES)
def test_every_problem_names_its_file(name: str) -> None:
    with pytest.raises(SpecError) as info:
        load_plan(BROKEN / name)
    for problem in info.value.problems:
        assert problem.message
        assert problem.file is not None and problem.file.endswith(".yaml")
        assert problem.line is not None and problem.column is not None


@pytest.mark.parametrize("name", CASES)
def test_cli_validate_reports_positions(name: str) -> None:
    path = str(BROKEN / name)
    result = CliRunner().invoke(main, ["validate", path])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for expected in EXPECTATIONS[name]:
        line, col = _position(expected)
        assert f"{path}:{line}:{col}:" in result.output


def test_cli_validate_subprocess_over_whole_corpus(tmp_path: Path) -> None:
    """A real process: exit 2, no traceback, and every problem the library finds is
    printed as FILE:LINE:COL."""
    paths = [str(BROKEN / name) for name in CASES]
    proc = subprocess.run(
        [sys.executable, "-m", "flowrun.cli", "validate", *paths],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout == ""
    for path in paths:
        with pytest.raises(SpecError) as info:
            load_plan(path)
        for problem in info.value.problems:
            assert f"{path}:{problem.line}:{problem.column}: " in proc.stderr
            assert problem.message in proc.stderr
