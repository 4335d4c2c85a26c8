"""``flowrun run`` as users call it: real subprocesses and click's runner."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from click.testing import CliRunner
from flowkit import EXAMPLES, cli_env, flowrun_cli, write_flow

from flowrun.cli import main

QUICKSTART = EXAMPLES / "quickstart.yaml"


def test_quickstart_json_on_the_builtin_emulator(tmp_path):
    proc = flowrun_cli("run", str(QUICKSTART), "--provider", "emulator", "--json", "-i", "company=Fabrikam",
                       cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # exactly one JSON object on stdout
    assert out["status"] == "succeeded"
    assert set(out["steps"]) == {"overview", "risks", "summary"}
    for step in out["steps"].values():
        assert step["status"] == "succeeded" and step["response_id"].startswith("resp_")
    assert "Fabrikam" in out["outputs"]["brief"]
    assert out["outputs"]["risk_count"] == 2
    record = json.loads((tmp_path / out["run_dir"] / "record.json").read_text())
    assert record["run_id"] == out["run_id"]
    assert record["inputs"] == {"company": "Fabrikam"}


def test_failed_step_exits_1_with_json(tmp_path):
    flow = write_flow(tmp_path, """
        name: fails
        steps:
          a: {input: "x"}
    """)
    (tmp_path / "flow.emulator.yaml").write_text(
        "steps:\n  a:\n    - error: {status: 400, message: unknown model}\n"
    )
    proc = flowrun_cli("run", str(flow), "--provider", "emulator", "--json", cwd=tmp_path)
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["status"] == "failed"
    assert out["steps"]["a"]["status"] == "failed"
    assert "unknown model" in out["steps"]["a"]["error"]
    assert "Traceback" not in proc.stderr


def test_ctrl_c_cancels_cleanly_and_exits_130(tmp_path):
    flow = write_flow(tmp_path, """
        name: slow
        steps:
          quick: {input: "fast"}
          slow: {input: "slow", needs: [quick]}
    """)
    (tmp_path / "flow.emulator.yaml").write_text(
        "steps:\n  slow:\n    - text: never\n      delay_ms: 30000\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowrun.cli", "run", str(flow), "--provider", "emulator", "--json"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )
    runs = tmp_path / ".flowrun" / "runs"
    deadline = time.time() + 30
    # wait on observable state: the record says `quick` finished
    while time.time() < deadline:
        records = list(runs.glob("*/record.json"))
        if records:
            try:
                rec = json.loads(records[0].read_text())
            except ValueError:
                rec = {}
            if rec.get("steps", {}).get("quick", {}).get("status") == "succeeded":
                break
        time.sleep(0.05)
    else:
        proc.kill()
        raise AssertionError("quick never finished")
    time.sleep(0.3)  # let `slow` get in flight
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    result = json.loads(out)
    assert result["status"] == "cancelled"
    record = json.loads(next(runs.glob("*/record.json")).read_text())
    assert record["status"] == "cancelled"
    assert record["steps"]["quick"]["status"] == "succeeded"
    assert record["steps"]["slow"]["status"] == "cancelled"


def test_missing_input_and_unknown_input_exit_2(tmp_path):
    flow = write_flow(tmp_path, """
        name: needs-input
        inputs: {company: string, n: integer}
        steps:
          a: {input: "{{ inputs.company }} {{ inputs.n }}"}
    """)
    runner = CliRunner()
    result = runner.invoke(main, ["run", str(flow), "--provider", "emulator", "-i", "compnay=x",
                                  "-i", "n=three"], env=cli_env())
    assert result.exit_code == 2
    assert "unknown input 'compnay' (did you mean 'company'?)" in result.output
    assert "missing input 'company'" in result.output
    assert "input 'n' must be an integer" in result.output


def test_no_provider_configured_names_the_options(tmp_path):
    flow = write_flow(tmp_path, """
        name: plain
        steps:
          a: {input: "x"}
    """)
    proc = flowrun_cli("run", str(flow), cwd=tmp_path, env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    assert proc.returncode == 2
    assert "no provider configured" in proc.stderr
    for option in ("AZURE_OPENAI_ENDPOINT", "OPENAI_API_KEY", "OPENAI_BASE_URL", "--provider emulator"):
        assert option in proc.stderr
    assert "Traceback" not in proc.stderr


def test_invalid_flow_exits_2_before_any_request(tmp_path):
    flow = write_flow(tmp_path, """
        name: broken
        steps:
          a: {input: "{{ steps.nope.text }}"}
    """)
    result = CliRunner().invoke(main, ["run", str(flow), "--provider", "emulator", "--json"], env=cli_env())
    assert result.exit_code == 2
    assert "unknown step 'nope'" in result.output


def test_a_file_default_is_relative_to_the_flow_file(tmp_path):
    from flowrun.plan import load_plan
    from flowrun.run_inputs import resolve_inputs

    recipe = tmp_path / "recipe"
    (recipe / "data").mkdir(parents=True)
    (recipe / "data" / "sales.csv").write_text("a,b\n1,2\n")
    flow = write_flow(recipe, """
        name: recipe
        inputs: {sales: {type: file, default: data/sales.csv}}
        steps:
          a: {input: "x"}
    """)
    plan = load_plan(flow)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    got = resolve_inputs(plan.flow, {}, cwd=elsewhere, flow_dir=plan.base_dir)
    assert got["sales"] == str(recipe / "data" / "sales.csv")
    # a value given on the command line is the user's path, from where they run
    (elsewhere / "mine.csv").write_text("x\n")
    got = resolve_inputs(plan.flow, {"sales": "mine.csv"}, cwd=elsewhere, flow_dir=plan.base_dir)
    assert got["sales"] == str(elsewhere / "mine.csv")
