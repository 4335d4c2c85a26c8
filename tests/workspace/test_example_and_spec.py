"""The fix-test example end to end through the CLI (a copy is changed, the original is
not), and the flow language of the workspace tools: clear errors for bad definitions."""
from __future__ import annotations

import json
from pathlib import Path

from flowkit import EXAMPLES, flowrun_cli, write_flow

PROJECT = EXAMPLES.parent / "projects" / "pricing"


def test_fix_test_example_fixes_a_copy_and_leaves_the_original_untouched(tmp_path):
    before = {p.name: p.read_bytes() for p in PROJECT.iterdir() if p.is_file()}
    proc = flowrun_cli("run", str(EXAMPLES / "fix-test.yaml"), "--provider", "emulator", "--json",
                       "--run-dir", str(tmp_path / "runs"), timeout=120)
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["status"] == "succeeded", proc.stderr
    assert out["outputs"]["commands"] == [1, 0]
    assert "+    return round(price * (100 - percent) / 100, 2)\n" in out["outputs"]["diff"]
    assert {p.name: p.read_bytes() for p in PROJECT.iterdir() if p.is_file()} == before
    rec = json.loads((Path(out["run_dir"]) / "record.json").read_text())["steps"]["fix"]
    fixed = Path(rec["workspace"]) / "pricing.py"
    assert fixed.is_relative_to(Path(out["run_dir"])) and "(100 - percent)" in fixed.read_text()
    assert rec["diff"] == out["outputs"]["diff"]


def test_bad_workspace_tool_definitions_are_reported_with_where_and_what(tmp_path):
    path = write_flow(tmp_path, """
        name: bad
        tools:
          both:
            custom: {python: "m:f", command: [x]}
          grammar:
            custom: {python: "m:f", grammar: {syntax: regex, definition: "(unclosed"}}
          sh:
            shell: {allow: [pytest], timeout: soon}
          templated:
            shell: {allow: ["{{ inputs.x }}"]}
        steps:
          a:
            input: hi
            workspace: {dir: ., copy: maybe}
            tools: [both, grammar, sh, templated, apply_patch, nope]
        """)
    proc = flowrun_cli("validate", str(path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    err = proc.stderr
    assert "flow.yaml:5:13: tools.both.custom:" in err and "exactly one of python (module:function) or command" in err
    assert "not a valid regular expression" in err
    assert "flow.yaml:9:39: tools.sh.shell.timeout:" in err and "'soon' is not a duration" in err
    assert "steps.a.workspace.copy: expected true or false" in err


def test_templates_in_the_shell_allow_list_are_refused_but_env_takes_them(tmp_path):
    path = write_flow(tmp_path, """
        name: t
        inputs: {x: {type: string, default: ls}}
        tools:
          sh:
            shell: {allow: ["{{ inputs.x }}"], env: {PATH: "{{ env.PATH }}"}}
        steps:
          a: {input: hi, tools: [sh, apply_patch]}
        """)
    proc = flowrun_cli("validate", str(path))
    assert proc.returncode == 2
    assert "templates are not allowed in 'shell'" in proc.stderr and proc.stderr.count("templates are not") == 1
