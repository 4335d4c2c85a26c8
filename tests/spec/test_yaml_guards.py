"""The loader's guards: alias bombs, deep nesting, characters YAML forbids and lone
surrogates are refused quickly, as SpecError with file:line:col, and `flowrun validate`
exits 2 without a traceback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowrun.cli import main
from flowrun.errors import SpecError
from flowrun.loader import load_file, load_text
from flowrun.plan import build_plan

FLOW_HEAD = "name: guarded\nsteps:\n  a: {input: hi}\n"


def billion_laughs(levels: int = 9) -> str:
    rows = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        rows.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return FLOW_HEAD + "\n".join(rows) + "\n"


def refused(text: str, within: float = 2.0) -> SpecError:
    """Load ``text``; it must fail with one positioned problem, within ``within`` seconds."""
    started = time.monotonic()
    with pytest.raises(SpecError) as info:
        load_text(text, "guard.yaml")
    assert time.monotonic() - started < within
    problem = info.value.problems[0]
    assert problem.file == "guard.yaml" and problem.line and problem.column, problem.format()
    return info.value


def at(text: str, error: SpecError) -> str:
    """The text from the problem's line and column on."""
    p = error.problems[0]
    return text.splitlines()[p.line - 1][p.column - 1:]


def test_billion_laughs_stops_at_an_alias_fast(tmp_path: Path) -> None:
    text = billion_laughs()
    assert len(text.encode()) < 600
    err = refused(text, within=2.0)
    assert "alias *a" in err.problems[0].message
    assert at(text, err).startswith("*a")  # the alias that crossed the limit
    assert "aliases" in (err.problems[0].hint or "")


def test_validate_refuses_the_bomb_with_exit_2(tmp_path: Path) -> None:
    flow = tmp_path / "bomb.yaml"
    flow.write_text(billion_laughs())
    started = time.monotonic()
    result = CliRunner().invoke(main, ["validate", str(flow)])
    assert time.monotonic() - started < 5
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{flow}:" in result.output and "alias *a" in result.output
    assert "Traceback" not in result.output and "MemoryError" not in result.output


def test_aliases_nested_too_deep_are_refused_even_when_small() -> None:
    rows = ["x0: &x0 [1]"] + [f"x{i}: &x{i} [*x{i - 1}]" for i in range(1, 8)]
    text = FLOW_HEAD + "\n".join(rows) + "\n"
    err = refused(text)
    assert "nests aliases 6 deep" in err.problems[0].message
    assert at(text, err).startswith("*x5")


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    text = FLOW_HEAD + "loop: &l [1, *l]\n"
    err = refused(text)
    assert "*l is used inside the value it names" in err.problems[0].message
    assert at(text, err).startswith("*l")


def test_ordinary_anchors_and_merge_keys_still_work() -> None:
    text = """
name: reuse
defaults: &common {model: gpt-4.1-mini, temperature: 0.2}
steps:
  a: {<<: *common, input: first}
  b: {<<: *common, input: "second {{ steps.a.text }}"}
  c:
    <<: *common
    input: third
    metadata: &meta {team: data, purpose: test}
  d: {input: fourth, metadata: *meta}
"""
    plan = build_plan(load_text(text, "reuse.yaml"))
    assert plan.flow.steps["c"].temperature == 0.2
    assert plan.flow.steps["d"].metadata == {"team": "data", "purpose": "test"}


@pytest.mark.parametrize("text, column", [
    ("name: x\nsteps: " + "[" * 5000 + "]" * 5000 + "\n", 8 + 100),
    ("name: x\nsteps: " + "[" * 200_000 + "\n", 8 + 100),  # quadratic in the scanner before
    ("name: x\nsteps: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n", 8 + 4 * 98 + 1),
], ids=["brackets", "200k-unclosed", "flow-mappings"])
def test_deep_flow_nesting_is_refused_fast(text: str, column: int) -> None:
    err = refused(text, within=2.0)
    p = err.problems[0]
    assert p.message == "nested too deeply: more than 100 levels of lists and mappings"
    assert (p.line, p.column) == (2, column)


def test_deep_block_nesting_is_refused_fast() -> None:
    text = "name: x\nsteps:\n" + "".join(" " * i + "a:\n" for i in range(1, 1500)) + " " * 1500 + "b: 1\n"
    err = refused(text, within=2.0)
    assert "nested too deeply" in err.problems[0].message
    assert err.problems[0].line == 101


@pytest.mark.parametrize("char, shown", [
    ("\x1b", "control character U+001B (ESC)"),
    ("\x7f", "control character U+007F (DEL)"),
    ("\uffff", "character U+FFFF (a noncharacter)"),
    ("\x00", "binary data (NUL byte)"),
])
def test_forbidden_characters_have_line_and_column(char: str, shown: str, tmp_path: Path) -> None:
    text = f"name: x\nsteps:\n  a:\n    input: hi{char}there\n"
    err = refused(text)
    p = err.problems[0]
    assert (p.line, p.column) == (4, 14)
    assert p.message.startswith(shown)
    assert "position" not in p.message
    flow = tmp_path / "ctl.yaml"  # from a file too, as validate reads it
    flow.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_file(flow)
    assert info.value.problems[0].where == f"{flow}:4:14"


def test_escaped_lone_surrogate_in_flow_text_is_refused_at_its_value() -> None:
    text = 'name: x\nsteps:\n  a:\n    input: "bad \\udc80 value"\n'
    err = refused(text)
    p = err.problems[0]
    assert (p.line, p.column, p.path) == (4, 12, ("steps", "a", "input"))
    assert "lone surrogate (U+DC80)" in p.message
    p.format().encode("utf-8")  # printable


def test_escaped_lone_surrogate_in_a_key_is_refused_and_printable() -> None:
    text = 'name: x\nsteps:\n  "k\\ud800": {input: y}\n'
    err = refused(text)
    assert (err.problems[0].line, err.problems[0].column) == (3, 3)
    err.format().encode("utf-8")


def test_escaped_surrogate_pair_is_joined_into_one_character() -> None:
    flow = load_text('name: x\nsteps:\n  a: {input: "ok \\ud83d\\ude00"}\n', "pair.yaml")
    assert flow.flow.steps["a"].input == "ok \U0001F600"


def test_raw_lone_surrogate_in_text_is_refused_with_position() -> None:
    err = refused("name: x\nsteps:\n  a: {input: \udc80}\n")
    assert (err.problems[0].line, err.problems[0].column) == (3, 14)
    assert "lone surrogate (U+DC80)" in err.problems[0].message


def test_a_5000_digit_number_has_a_position() -> None:
    err = refused("name: x\nsteps:\n  a: {input: hi, retries: " + "9" * 5000 + "}\n")
    assert (err.problems[0].line, err.problems[0].column) == (3, 27)
