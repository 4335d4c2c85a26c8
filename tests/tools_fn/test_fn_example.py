"""examples/flows/tools-demo.yaml runs on the emulator with its script, as its comments say."""

from __future__ import annotations

import json

import yaml
from flowkit import EXAMPLES, outputs_sent, record, run_file


def test_tools_demo_runs_every_kind_of_function_tool(tmp_path, emu):
    emu.script(yaml.safe_load((EXAMPLES / "tools-demo.emulator.yaml").read_text()))
    result = run_file(EXAMPLES / "tools-demo.yaml", emu, run_root=tmp_path / "runs", cwd=tmp_path)
    assert result.status == "succeeded", result.error
    steps = record(result)["steps"]
    calls = steps["plan"]["tool_calls"]
    assert [(c["name"], c["kind"], c["turn"]) for c in calls] == [
        ("forecast", "python", 1), ("distance", "python", 1), ("fx_rate", "command", 2),
        ("summarize", "flow", 2), ("forecast", "python", 2)]
    by_turn = {(c["name"], c["turn"]): c for c in calls}
    assert json.loads(by_turn["forecast", 1]["output"])["units"] == "metric"  # the bound input
    assert by_turn["distance", 1]["output"] == "391.6"
    assert json.loads(by_turn["fx_rate", 2]["output"]) == {"from": "EUR", "to": "USD", "rate": 1.086957}
    assert "invalid arguments" in by_turn["forecast", 2]["error"]
    assert result.outputs["calls"] == ["forecast", "distance", "fx_rate", "summarize", "forecast"]
    # the forecast's bound `units` is not in the schema the model saw
    first = emu.bodies("plan")[0]
    forecast = next(t for t in first["tools"] if t["name"] == "forecast")
    assert set(forecast["parameters"]["properties"]) == {"city", "days"}
    # pack: forced first turn, then auto; store false resends everything
    pack = emu.bodies("pack")
    assert [p.get("tool_choice") for p in pack] == [{"type": "function", "name": "packing_list"}, "auto"]
    assert all("previous_response_id" not in p for p in pack)
    assert [i.get("type", "message") for i in pack[1]["input"]] == [
        "message", "function_call", "function_call_output"]
    assert outputs_sent(pack[1])[0]["output"].startswith('["water bottle"')
    assert result.outputs["packing"].startswith("[emulator] tool results: [")
