"""``python: module:function`` steps: called with ``with:`` as keyword arguments (native
values from single-expression templates), no model request; the return value is ``output``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from flowkit import run_flow, step_error, write

from flowrun.errors import SpecError
from flowrun.plan import load_plan

FLOW = """
name: py
inputs:
  items: {type: list, default: [3, 4]}
steps:
  total:
    python: calc:total
    with: {numbers: "{{ inputs.items }}", scale: 10}
  later:
    python: calc:later
    with: {value: "{{ steps.total.output.sum }}"}
  say:
    input: "Total {{ steps.total.output.sum }}"
outputs:
  total: "{{ steps.total.output }}"
  text: "{{ steps.total.text }}"
  later: "{{ steps.later.text }}"
"""

CALC = """
import asyncio

def total(numbers: list, scale: int) -> dict:
    return {"sum": sum(numbers) * scale, "types": [type(n).__name__ for n in numbers]}

async def later(value: int) -> str:
    await asyncio.sleep(0)
    return f"later {value + 1}"

def boom(x):
    raise RuntimeError("bad " + x)
"""


def test_python_step_calls_the_function_with_native_values(tmp_path: Path, emu) -> None:
    write(tmp_path / "calc.py", CALC)
    result = run_flow(tmp_path, emu, FLOW)
    assert result.status == "succeeded", step_error(result, "total")
    assert result.outputs["total"] == {"sum": 70, "types": ["int", "int"]}
    assert result.outputs["text"] == '{"sum": 70, "types": ["int", "int"]}'
    assert result.outputs["later"] == "later 71"
    # only the model step sent a request
    assert [b["metadata"]["flowrun_step"] for b in emu.bodies()] == ["say"]


def test_python_step_errors_fail_the_step(tmp_path: Path, emu) -> None:
    write(tmp_path / "calc.py", CALC)
    result = run_flow(tmp_path, emu, """
        name: py
        steps:
          a: {python: "calc:boom", with: {x: "1"}}
          b: {python: "calc:total", with: {wrong: 1}}
    """)
    assert result.status == "failed"
    assert "python calc:boom raised RuntimeError: bad 1" in step_error(result, "a")
    assert "python calc:total: missing a required argument: 'numbers'" in step_error(result, "b")


def test_validate_checks_the_module_and_function(tmp_path: Path) -> None:
    write(tmp_path / "calc.py", CALC)
    flow = write(tmp_path / "f.yaml", """
        name: f
        steps:
          a: {python: "calc:nothing"}
          b: {python: "nomodule:f"}
          c: {input: x, with: {a: 1}}
    """)
    with pytest.raises(SpecError) as info:
        load_plan(flow)
    text = info.value.format()
    assert "'with' gives inputs to a sub-flow; it needs 'flow'" in text
    flow.write_text(flow.read_text().replace("  c: {input: x, with: {a: 1}}\n", ""))
    with pytest.raises(SpecError) as info:
        load_plan(flow)
    text = info.value.format()
    assert "f.yaml:4:15: steps.a.python: module 'calc' has no function 'nothing'" in text
    assert "steps.b.python: no module 'nomodule'" in text


def test_prints_of_python_steps_keep_json_stdout_clean(tmp_path: Path) -> None:
    from flowkit import flowrun_cli

    write(tmp_path / "noisy.py", """
        def shout(x: str) -> str:
            print("debug: shouting", x)
            return x.upper()
    """)
    flow = write(tmp_path / "f.yaml", """
        name: f
        steps:
          a: {python: "noisy:shout", with: {x: hi}}
        outputs: {a: "{{ steps.a.output }}"}
    """)
    proc = flowrun_cli("run", str(flow), "--provider", "emulator", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    import json

    assert json.loads(proc.stdout)["outputs"] == {"a": "HI"}
    assert "debug: shouting hi" in proc.stderr
