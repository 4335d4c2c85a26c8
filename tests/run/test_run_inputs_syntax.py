"""Run inputs as users give them: number and list syntax on ``-i``, ``--inputs`` files read
as JSON or YAML with positions, and text that is not valid Unicode refused before the run
starts (exit 2, no traceback, nothing left in the run directory)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from flowkit import cli_env, write_flow

from flowrun.cli import main
from flowrun.errors import SpecError, UsageError
from flowrun.loader import load_text
from flowrun.run_inputs import read_inputs_file, resolve_inputs

FLOW = """
    name: typed
    inputs:
      company: {type: string, default: Contoso}
      amount: {type: number, default: 1}
      count: {type: integer, default: 1}
      tags: {type: list, default: [x]}
      opts: {type: object, default: {}}
      flag: {type: boolean, default: false}
    steps:
      a: {input: "{{ inputs.company }} {{ inputs.amount }} {{ inputs.count }} {{ inputs.tags }}"}
"""


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    return write_flow(tmp_path, FLOW)


def typed() -> object:
    import textwrap

    return load_text(textwrap.dedent(FLOW), "typed.yaml").flow


def run_cli(tmp_path: Path, *args: str) -> tuple[int, str, dict | None]:
    runs = tmp_path / "runs"
    result = CliRunner().invoke(main, ["run", str(tmp_path / "flow.yaml"), "--provider", "emulator",
                                       "--json", "--run-dir", str(runs), *args], env=cli_env())
    record = None
    if result.exit_code == 0:
        record = json.loads(next(runs.glob("*/record.json")).read_text())
    return result.exit_code, result.output, record


@pytest.mark.parametrize("name, raw, value", [
    ("amount", "1e3", 1000.0),
    ("amount", "1.25e3", 1250.0),
    ("amount", "-2.5E-1", -0.25),
    ("amount", "12", 12),
    ("amount", "1_000.5", 1000.5),
    ("count", "42", 42),
    ("count", "1e3", 1000),
    ("flag", "true", True),
    ("flag", "Off", False),
    ("tags", '["a", "b"]', ["a", "b"]),
    ("tags", "[a, b]", ["a", "b"]),
    ("opts", '{"k": 1}', {"k": 1}),
    ("opts", "{k: 1.5e3}", {"k": 1500.0}),
])
def test_command_line_values_by_type(name: str, raw: str, value: object) -> None:
    got = resolve_inputs(typed(), {name: raw})[name]
    assert got == value and type(got) is type(value)


def test_float_syntax_numbers_run_from_the_command_line(flow: Path, tmp_path: Path) -> None:
    code, out, record = run_cli(tmp_path, "-i", "amount=1.25e3", "-i", "count=1e3")
    assert code == 0, out
    assert record["inputs"]["amount"] == 1250.0 and record["inputs"]["count"] == 1000


@pytest.mark.parametrize("raw", ["nan", "inf", "-Infinity"])
def test_a_number_must_be_finite(raw: str) -> None:
    with pytest.raises(UsageError, match="input 'amount' must be a finite number"):
        resolve_inputs(typed(), {"amount": raw})


def test_integer_grammar_and_hint(flow: Path, tmp_path: Path) -> None:
    code, out, _ = run_cli(tmp_path, "-i", "count=2.5")
    assert code == 2
    assert "input 'count' must be an integer, got 2.5" in out
    assert "a integer" not in out
    assert "hint: write a whole number, e.g. -i count=42" in out


def test_a_list_hint_shows_the_list_syntax(flow: Path, tmp_path: Path) -> None:
    code, out, _ = run_cli(tmp_path, "-i", "tags=a,b")
    assert code == 2
    assert "input 'tags' must be a list, got 'a,b'" in out
    hint = out.split("hint: ", 1)[1]
    assert "-i tags='[\"a\", \"b\"]'" in hint and "-i tags='[a, b]'" in hint
    code, out, record = run_cli(tmp_path, "-i", 'tags=["a", "b"]')  # the syntax shown works
    assert code == 0, out
    assert record["inputs"]["tags"] == ["a", "b"]


def test_several_problems_each_with_its_hint(flow: Path, tmp_path: Path) -> None:
    code, out, _ = run_cli(tmp_path, "-i", "count=x", "-i", "flag=maybe", "-i", "tags=a")
    assert code == 2
    lines = out.splitlines()
    assert "input 'count' must be an integer, got 'x'" in lines
    assert "input 'flag' must be true or false, got 'maybe'" in lines
    assert "    hint: write -i flag=true or -i flag=false" in lines


def test_a_json_inputs_file_is_read_as_json(flow: Path, tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text('{"amount": 1.25e3, "count": 3e0, "tags": ["y"]}')
    code, out, record = run_cli(tmp_path, "--inputs", str(tmp_path / "in.json"))
    assert code == 0, out
    assert record["inputs"]["amount"] == 1250.0
    assert record["inputs"]["count"] == 3 and isinstance(record["inputs"]["count"], int)


def test_a_yaml_inputs_file_reads_exponents_as_numbers(tmp_path: Path) -> None:
    (tmp_path / "in.yaml").write_text("amount: 1.25e3\ncount: 1e3\n")
    assert resolve_inputs(typed(), {}, read_inputs_file(tmp_path / "in.yaml"))["amount"] == 1250.0


def test_a_wrong_value_in_a_file_names_its_place(tmp_path: Path) -> None:
    (tmp_path / "in.yaml").write_text("amount: 2\ncount: many\n")
    with pytest.raises(UsageError) as info:
        resolve_inputs(typed(), {}, read_inputs_file(tmp_path / "in.yaml"))
    assert str(info.value).startswith(f"{tmp_path / 'in.yaml'}:2:8: input 'count' must be an integer")
    (tmp_path / "in.json").write_text('{\n  "amount": "lots"\n}')
    with pytest.raises(UsageError) as info:
        resolve_inputs(typed(), {}, read_inputs_file(tmp_path / "in.json"))
    assert str(info.value).startswith(f"{tmp_path / 'in.json'}:2:13: input 'amount' must be a number")


@pytest.mark.parametrize("text, where, message", [
    ('{"amount": 1,\n "count": }', "2:11", "not valid JSON: Expecting value"),
    ('{"amount": NaN}', "1:12", "not valid JSON: NaN is not a JSON number"),
    ('{"tags": ' + "[" * 500 + "]" * 500 + "}", "1:109", "nested too deeply"),
    ('["not", "a", "mapping"]', "1:1", "expected a mapping of input names to values"),
    ('{"tags": ["ok", "\\udc80"]}', "1:10", "not valid Unicode: the text holds a lone surrogate (U+DC80)"),
], ids=["syntax", "nan", "deep", "list", "surrogate"])
def test_json_inputs_file_problems_have_positions(tmp_path: Path, text: str, where: str,
                                                  message: str) -> None:
    path = tmp_path / "in.json"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        read_inputs_file(path)
    p = info.value.problems[0]
    assert p.where == f"{path}:{where}" and p.message.startswith(message), p.format()
    p.format().encode("utf-8")


def test_yaml_inputs_file_with_escaped_lone_surrogate(tmp_path: Path) -> None:
    path = tmp_path / "in.yaml"
    path.write_text('company: "Acme \\udc80"\n')
    with pytest.raises(SpecError) as info:
        read_inputs_file(path)
    assert info.value.problems[0].where == f"{path}:1:10"
    assert "lone surrogate" in info.value.problems[0].message


def test_yaml_inputs_file_alias_bomb_is_refused(tmp_path: Path) -> None:
    rows = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    rows += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    path = tmp_path / "in.yaml"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(SpecError) as info:
        read_inputs_file(path)
    assert "alias *a" in info.value.problems[0].message and info.value.problems[0].line


def cli_bytes(cwd: Path, *args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    """flowrun in a subprocess with raw bytes on argv, as a shell passes $'\\xff'."""
    return subprocess.run([sys.executable, "-m", "flowrun.cli", *args], capture_output=True,
                          timeout=60, cwd=cwd, env=cli_env(LC_ALL="C.UTF-8"))


def test_argv_bytes_that_are_not_utf8_are_refused_before_the_run(flow: Path, tmp_path: Path) -> None:
    proc = cli_bytes(tmp_path, "run", str(flow), "--provider", "emulator", "--json",
                     "-i", b"company=\xff\xfe")
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    assert err.startswith("-i company: the value is not valid UTF-8 text (byte 0xff at character 1)")
    assert "--inputs file saved as UTF-8" in err
    assert not (tmp_path / ".flowrun").exists()  # the run never started: no record, no .tmp


def test_inputs_file_with_a_lone_surrogate_exits_2_and_leaves_nothing(flow: Path, tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text('{"company": "\\udc80"}')
    code, out, _ = run_cli(tmp_path, "--inputs", str(tmp_path / "in.json"))
    assert code == 2
    assert f"{tmp_path / 'in.json'}:1:13: company: not valid Unicode" in out
    assert not (tmp_path / "runs").exists()


def test_resolve_refuses_lone_surrogates_from_any_source() -> None:
    with pytest.raises(UsageError, match=r"input 'tags' is not valid Unicode text \(a lone surrogate U\+DC80 at \[1\]\)"):
        resolve_inputs(typed(), {}, {"tags": ["ok", "\udc80"]})
