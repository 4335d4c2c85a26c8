"""The function-tool loop end to end: flowrun -> openai SDK -> HTTP -> emulator, with
Python, command and sub-flow tools. The emulator's journal shows what went over the wire."""

from __future__ import annotations

import pytest

import json
import os
import sys
import time
from pathlib import Path

from fn_tools_src import COMMAND_PY, COMMAND_SCHEMA, SUBFLOW_YAML, TOOLS_PY  # type: ignore[import-not-found]
from flowkit import outputs_sent, record, run_flow, tool_calls, write

TOOLS = """
tools:
  weather: {python: "tools:weather"}
  wait_a: {python: "tools:wait_a"}
  wait_b: {python: "tools:wait_b"}
  sync_a: {python: "tools:sync_a"}
  sync_b: {python: "tools:sync_b"}
  explode: {python: "tools:explode"}
  hang: {python: "tools:hang", timeout: 300ms}
  stuck: {python: "tools:stuck", timeout: 200ms}
  counter: {python: "tools:counter"}
  tally: {python: "tools:tally"}
"""


def flow(steps: str, extra: str = "") -> str:
    return "name: fn\n" + TOOLS + extra + "steps:\n" + steps


def setup(tmp_path: Path) -> None:
    write(tmp_path / "tools.py", TOOLS_PY)


def calls(*specs: tuple[str, object] | tuple[str, object, str]) -> dict:
    out = []
    for spec in specs:
        entry = {"name": spec[0], "arguments": spec[1]}
        if len(spec) > 2:
            entry["call_id"] = spec[2]
        out.append(entry)
    return {"function_calls": out}


# --------------------------------------------------------------------------- basics


def test_single_call_chains_by_previous_response_id_and_is_recorded(tmp_path, emu):
    setup(tmp_path)
    emu.script({"steps": {"ask": [calls(("weather", {"city": "Paris", "days": None}, "call_w")),
                                  {"default_rule": True}]}})
    result = run_flow(tmp_path, emu, flow("""
  ask:
    input: Weather in Paris?
    tools: [weather]
""", ) + 'outputs:\n  text: "{{ steps.ask.text }}"\n')
    assert result.status == "succeeded", result.error
    assert result.outputs["text"] == '[emulator] tool results: {"city": "Paris", "days": 1, "temp": 21}'

    first, second = emu.bodies("ask")
    tool = first["tools"][0]
    assert tool == {
        "type": "function", "name": "weather", "description": "Weather forecast for a city.",
        "strict": True,
        "parameters": {
            "type": "object", "additionalProperties": False, "required": ["city", "days"],
            "properties": {
                "city": {"type": "string", "description": "The city name."},
                "days": {"anyOf": [{"type": "integer"}, {"type": "null"}],
                         "description": "How many days ahead. Default: 1."},
            },
        },
    }
    response_ids = record(result)["steps"]["ask"]["response_ids"]
    assert "previous_response_id" not in first
    assert second["previous_response_id"] == response_ids[0]
    assert second["input"] == [{"type": "function_call_output", "call_id": "call_w",
                                "output": '{"city": "Paris", "days": 1, "temp": 21}'}]

    (call,) = tool_calls(result, "ask")
    assert call["name"] == "weather" and call["call_id"] == "call_w" and call["turn"] == 1
    assert call["kind"] == "python"
    assert call["arguments"] == {"city": "Paris", "days": None}
    assert call["output"] == '{"city": "Paris", "days": 1, "temp": 21}'
    assert "error" not in call and 0 <= call["duration_s"] < 5


def test_parallel_calls_run_concurrently_and_answer_in_call_order(tmp_path, emu):
    setup(tmp_path)
    # wait_a only finishes if wait_b runs at the same time (each waits for the other's
    # event), and finishes last; sync_a / sync_b meet at a threading.Barrier in threads
    emu.script({"steps": {
        "both": [calls(("wait_a", {"note": "x"}, "c1"), ("wait_b", {"note": "y"}, "c2")),
                 {"default_rule": True}],
        "threads": [calls(("sync_a", {}, "t1"), ("sync_b", {}, "t2")), {"default_rule": True}],
    }})
    result = run_flow(tmp_path, emu, flow("""
  both:
    input: go
    tools: [wait_a, wait_b]
    parallel_tool_calls: true
  threads:
    input: go
    tools: [sync_a, sync_b]
"""))
    assert result.status == "succeeded", result.error
    sent = outputs_sent(emu.bodies("both")[1])
    assert [(o["call_id"], o["output"]) for o in sent] == [("c1", "a saw b"), ("c2", "b saw a")]
    assert emu.bodies("both")[0]["parallel_tool_calls"] is True
    recorded = tool_calls(result, "both")
    assert [c["name"] for c in recorded] == ["wait_a", "wait_b"]
    assert all("error" not in c for c in recorded)
    # wait_b finished while wait_a was still running: their time spans overlap
    a, b = recorded
    assert b["started_at"] < a["started_at"] + a["duration_s"]

    sent = outputs_sent(emu.bodies("threads")[1])
    assert [(o["call_id"], o["output"]) for o in sent] == [("t1", "sync a done"), ("t2", "sync b done")]


def test_multi_turn_calls_then_answer(tmp_path, emu):
    setup(tmp_path)
    emu.script({"steps": {"plan": [
        calls(("counter", {})),
        calls(("weather", {"city": "Oslo", "days": 3}), ("counter", {})),
        {"default_rule": True},
    ]}})
    result = run_flow(tmp_path, emu, flow("""
  plan:
    input: plan a trip
    tools: [weather, counter]
"""))
    assert result.status == "succeeded", result.error
    posts = emu.bodies("plan")
    assert len(posts) == 3
    ids = record(result)["steps"]["plan"]["response_ids"]
    assert [p.get("previous_response_id") for p in posts] == [None, ids[0], ids[1]]
    assert [o["output"] for o in outputs_sent(posts[1])] == ["1"]
    assert [o["output"] for o in outputs_sent(posts[2])] == [
        '{"city": "Oslo", "days": 3, "temp": 21}', "2"]
    recorded = tool_calls(result, "plan")
    assert [(c["name"], c["turn"]) for c in recorded] == [("counter", 1), ("weather", 2), ("counter", 2)]
    assert record(result)["steps"]["plan"]["text"] == (
        '[emulator] tool results: {"city": "Oslo", "days": 3, "temp": 21}; 2')


# --------------------------------------------------------------------------- errors become outputs


def _error(output: str) -> str:
    return json.loads(output)["error"]


def test_invalid_arguments_and_bad_json_go_back_to_the_model(tmp_path, emu):
    setup(tmp_path)
    emu.script({"steps": {"ask": [
        calls(("weather", {"city": 5, "days": None}, "bad_type"),
              ("weather", {"days": 2}, "missing"),
              ("weather", "{not json", "bad_json"),
              ("weather", {"city": "Rome", "days": None, "extra": 1}, "extra")),
        {"default_rule": True},
    ]}})
    result = run_flow(tmp_path, emu, flow("""
  ask:
    input: go
    tools: [weather]
"""))
    assert result.status == "succeeded", result.error
    sent = {o["call_id"]: _error(o["output"]) for o in outputs_sent(emu.bodies("ask")[1])}
    assert sent["bad_type"] == "invalid arguments: arguments.city: 5 is not of type 'string'"
    assert "'city' is a required property" in sent["missing"]
    assert sent["bad_json"].startswith("the arguments are not valid JSON")
    assert "Additional properties are not allowed ('extra' was unexpected)" in sent["extra"]
    recorded = {c["call_id"]: c for c in tool_calls(result, "ask")}
    assert recorded["bad_json"]["arguments"] == "{not json"
    assert all("output" not in c and c["error"] for c in recorded.values())


def test_exception_timeout_and_unknown_name_become_error_outputs(tmp_path, emu):
    setup(tmp_path)
    flag = tmp_path / "release"
    emu.script({"steps": {"ask": [
        calls(("explode", {"x": 7}, "boom"), ("hang", {}, "slow"),
              ("stuck", {"flag": str(flag)}, "thread"), ("teleport", {}, "nope"),
              ("weather", {"city": "Lima", "days": None}, "fine")),
        {"default_rule": True},
    ]}})
    started = time.monotonic()
    result = run_flow(tmp_path, emu, flow("""
  ask:
    input: go
    tools: [explode, hang, stuck, weather]
"""))
    elapsed = time.monotonic() - started
    flag.write_text("go")  # let the abandoned thread finish
    assert result.status == "succeeded", result.error
    assert elapsed < 10  # neither the hung coroutine nor the blocked thread held the run
    outputs = [(o["call_id"], o["output"]) for o in outputs_sent(emu.bodies("ask")[1])]
    assert [c for c, _ in outputs] == ["boom", "slow", "thread", "nope", "fine"]
    out = dict(outputs)
    assert _error(out["boom"]) == "the function raised ValueError: cannot handle 7"
    assert _error(out["slow"]) == "the function did not finish within 0.3s and was stopped"
    assert _error(out["thread"]) == "the function did not finish within 0.2s and was stopped"
    assert _error(out["nope"]) == ("unknown function 'teleport'; the functions you can call are: "
                                   "explode, hang, stuck, weather")
    assert json.loads(out["fine"])["city"] == "Lima"
    recorded = {c["call_id"]: c for c in tool_calls(result, "ask")}
    assert recorded["boom"]["error"].endswith("cannot handle 7")
    assert recorded["slow"]["error"].startswith("the function did not finish")
    assert 0.25 < recorded["slow"]["duration_s"] < 5
    assert recorded["nope"]["name"] == "teleport" and "unknown function" in recorded["nope"]["error"]


def test_max_tool_turns_fails_the_step_without_running_the_extra_round(tmp_path, emu):
    setup(tmp_path)
    emu.script({"steps": {"loop": [calls(("counter", {}))]}})  # the last entry repeats forever
    result = run_flow(tmp_path, emu, flow("""
  loop:
    input: count forever
    tools: [counter]
    max_tool_turns: 2
"""))
    assert result.status == "failed"
    step = record(result)["steps"]["loop"]
    assert step["error_type"] == "ToolLoopLimit"
    assert step["error"] == ("the model was still calling tools after 2 tool turns "
                             "(max_tool_turns: 2); raise max_tool_turns on the step or in "
                             "defaults if it needs more rounds")
    assert len(emu.bodies("loop")) == 3  # two rounds of results went back, the third ask failed
    assert [c["output"] for c in step["tool_calls"]] == ["1", "2"]


# --------------------------------------------------------------------------- command and flow tools


def _command_flow(tmp_path: Path, steps: str, timeout: str = "") -> str:
    write(tmp_path / "bin" / "cmd_tool.py", COMMAND_PY)
    return ("name: cmd\ntools:\n  run_cmd:\n"
            f"    command: [{json.dumps(sys.executable)}, bin/cmd_tool.py]\n"
            "    description: Runs the test command.\n"
            + (f"    timeout: {timeout}\n" if timeout else "")
            + COMMAND_SCHEMA + "steps:\n" + steps)


def test_command_tool_json_text_and_failure(tmp_path, emu):
    emu.script({"steps": {"ask": [
        calls(("run_cmd", {"mode": "json", "pidfile": None, "token": None}, "j"),
              ("run_cmd", {"mode": "text", "pidfile": None, "token": None}, "t"),
              ("run_cmd", {"mode": "fail", "pidfile": None, "token": None}, "f")),
        {"default_rule": True},
    ]}})
    result = run_flow(tmp_path, emu, _command_flow(tmp_path, """
  ask:
    input: go
    tools: [run_cmd]
"""))
    assert result.status == "succeeded", result.error
    first = emu.bodies("ask")[0]
    assert first["tools"][0]["strict"] is True
    assert first["tools"][0]["parameters"]["required"] == ["mode", "pidfile", "token"]
    out = {o["call_id"]: o["output"] for o in outputs_sent(emu.bodies("ask")[1])}
    # JSON arguments on stdin (optional nulls dropped), JSON result on stdout, run in the
    # flow file's directory
    assert json.loads(out["j"]) == {"echo": {"mode": "json"}, "cwd": str(tmp_path), "token_check": None}
    assert out["t"] == "plain text answer"
    assert _error(out["f"]) == "the command exited with status 3; stderr: something broke at line 7"
    assert {c["call_id"]: c["kind"] for c in tool_calls(result, "ask")} == {
        "j": "command", "t": "command", "f": "command"}


def _dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return any(line.split()[1] == "Z" for line in fh if line.startswith("State:"))
    except FileNotFoundError:
        return True


def test_command_tool_timeout_kills_the_process_group(tmp_path, emu):
    emu.script({"steps": {"ask": [
        calls(("run_cmd", {"mode": "hang", "pidfile": "child.pid", "token": None}, "h")),
        {"default_rule": True},
    ]}})
    started = time.monotonic()
    result = run_flow(tmp_path, emu, _command_flow(tmp_path, """
  ask:
    input: go
    tools: [run_cmd]
""", timeout="2s"))
    assert result.status == "succeeded", result.error
    assert time.monotonic() - started < 10
    (out,) = outputs_sent(emu.bodies("ask")[1])
    assert _error(out["output"]) == "the function did not finish within 2s and was stopped"
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while not _dead(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _dead(child), "the command's child process survived the timeout"


PARENT_FLOW = """
name: parent
tools:
  city_line: {flow: city.yaml}
steps:
  ask:
    input: describe Paris
    tools: [city_line]
"""


def test_subflow_tool_inputs_become_parameters(tmp_path, emu):
    write(tmp_path / "city.yaml", SUBFLOW_YAML)
    emu.script({"steps": {"ask": [
        calls(("city_line", {"city": "Paris", "words": None, "tone": "poetic"}, "s1")),
        {"default_rule": True},
    ]}})
    result = run_flow(tmp_path, emu, PARENT_FLOW)
    assert result.status == "succeeded", result.error
    tool = emu.bodies("ask")[0]["tools"][0]
    assert tool["description"] == "Describe a city in a few words."
    assert tool["strict"] is True
    assert tool["parameters"] == {
        "type": "object", "additionalProperties": False, "required": ["city", "words", "tone"],
        "properties": {
            "city": {"type": "string", "description": "The city to describe"},
            "words": {"anyOf": [{"type": "integer"}, {"type": "null"}],
                      "description": "How many words. Default: 5."},
            "tone": {"anyOf": [{"type": "string", "enum": ["plain", "poetic"]}, {"type": "null"}],
                     "description": "Default: \"plain\"."},
        },
    }
    # the sub-flow ran its own model step, with the default for the null input
    (sub,) = emu.bodies("describe")
    assert sub["input"] == "Describe Paris in 5 poetic words."
    (out,) = outputs_sent(emu.bodies("ask")[1])
    assert json.loads(out["output"]) == {
        "line": "[emulator] turn 1: Describe Paris in 5 poetic words.", "words": 5}
    assert tool_calls(result, "ask")[0]["kind"] == "flow"


def test_subflow_tool_failure_is_an_error_output(tmp_path, emu):
    write(tmp_path / "city.yaml", SUBFLOW_YAML)
    emu.script({"steps": {
        "ask": [calls(("city_line", {"city": "Paris", "words": 3, "tone": None})), {"default_rule": True}],
        "describe": [{"error": {"status": 400, "message": "scripted refusal"}}],
    }})
    result = run_flow(tmp_path, emu, PARENT_FLOW)
    assert result.status == "succeeded", result.error
    (out,) = outputs_sent(emu.bodies("ask")[1])
    assert "sub-flow city.yaml failed" in _error(out["output"])


# --------------------------------------------------------------------------- secrets


def test_bound_secret_never_reaches_the_model_or_the_record(tmp_path, emu, monkeypatch):
    secret = "sk-fn-test-0123456789abcdef"
    monkeypatch.setenv("FN_TEST_SECRET", secret)
    setup(tmp_path)
    write(tmp_path / "bin" / "cmd_tool.py", COMMAND_PY)
    emu.script({"steps": {"ask": [
        calls(("search", {"query": "flowrun"}, "s1"),
              ("run_cmd", {"mode": "json", "pidfile": None}, "c1")),
        {"default_rule": True},
    ]}})
    text = f"""
name: secret
secrets: [FN_TEST_SECRET]
tools:
  search:
    python: "tools:search"
    bind: {{api_key: "{{{{ secrets.FN_TEST_SECRET }}}}"}}
  run_cmd:
    command: [{json.dumps(sys.executable)}, bin/cmd_tool.py]
    bind: {{token: "{{{{ secrets.FN_TEST_SECRET }}}}"}}
{COMMAND_SCHEMA}
steps:
  ask:
    input: find flowrun
    tools: [search, run_cmd]
"""
    result = run_flow(tmp_path, emu, text)
    assert result.status == "succeeded", result.error
    first = emu.bodies("ask")[0]
    search, cmd = first["tools"]
    assert search["parameters"]["properties"].keys() == {"query"}
    assert search["parameters"]["required"] == ["query"]
    assert cmd["parameters"]["properties"].keys() == {"mode", "pidfile"}
    out = {o["call_id"]: o["output"] for o in outputs_sent(emu.bodies("ask")[1])}
    # the function got the real value, filled in by flowrun
    assert out["s1"] == "3 results for flowrun (key accepted: True)"
    # the command got it too, on stdin
    assert json.loads(out["c1"]) == {"echo": {"mode": "json"}, "cwd": str(tmp_path), "token_check": True}
    journal = [e for e in emu.journal() if e["body"] is not None]
    assert len(journal) == 2
    for entry in journal:
        body = json.dumps(entry["body"])
        assert secret not in body
        assert "api_key" not in body and '"token"' not in body
    # the record: no secret anywhere, recorded arguments are the model's own
    for path in result.run_dir.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path
    recorded = {c["call_id"]: c for c in tool_calls(result, "ask")}
    assert recorded["s1"]["arguments"] == {"query": "flowrun"}
    assert recorded["c1"]["arguments"] == {"mode": "json", "pidfile": None}


# --------------------------------------------------------------------------- chaining modes


def test_store_false_resends_the_whole_conversation(tmp_path, emu):
    setup(tmp_path)
    emu.script({"steps": {
        "ask": [calls(("counter", {}, "k1")), calls(("weather", {"city": "Bern", "days": 2}, "k2")),
                {"default_rule": True}],
    }})
    result = run_flow(tmp_path, emu, flow("""
  ask:
    input: stateless please
    tools: [counter, weather]
  more:
    continue: {step: ask, mode: manual}
    input: and now?
""", extra="defaults: {store: false}\n"))
    assert result.status == "succeeded", result.error
    posts = emu.bodies("ask")
    assert len(posts) == 3
    assert all("previous_response_id" not in p and p["store"] is False for p in posts)
    assert all("reasoning.encrypted_content" in p["include"] for p in posts)

    def shape(items):
        return [(i.get("type", "message"), i.get("call_id") or i.get("role")) for i in items]

    user = ("message", "user")
    assert posts[0]["input"] == "stateless please" or shape(posts[0]["input"]) == [user]
    assert shape(posts[1]["input"]) == [user, ("function_call", "k1"), ("function_call_output", "k1")]
    assert shape(posts[2]["input"]) == [user, ("function_call", "k1"), ("function_call_output", "k1"),
                                        ("function_call", "k2"), ("function_call_output", "k2")]
    resent_call = posts[2]["input"][3]
    assert resent_call["name"] == "weather" and json.loads(resent_call["arguments"]) == {
        "city": "Bern", "days": 2}
    assert posts[2]["input"][4]["output"] == '{"city": "Bern", "days": 2, "temp": 21}'
    # a manual continuation carries the tool conversation on
    (more,) = emu.bodies("more")
    assert shape(more["input"])[:5] == shape(posts[2]["input"])
    assert shape(more["input"])[5:] == [("message", "assistant"), user]


def test_tool_choice_forces_the_first_turn_only(tmp_path, emu):
    setup(tmp_path)  # no script: the emulator's default rule obeys the forced tool choice
    result = run_flow(tmp_path, emu, flow("""
  ask:
    input: weather please
    tools: [weather, counter]
    tool_choice: weather
    parallel_tool_calls: false
"""))
    assert result.status == "succeeded", result.error
    first, second = emu.bodies("ask")
    assert first["tool_choice"] == {"type": "function", "name": "weather"}
    assert second["tool_choice"] == "auto"
    assert first["parallel_tool_calls"] is False and second["parallel_tool_calls"] is False
    (call,) = tool_calls(result, "ask")
    assert call["arguments"] == {"city": "city", "days": 1}  # generated from the strict schema
    assert record(result)["steps"]["ask"]["text"].startswith("[emulator] tool results: {")


def test_streaming_step_runs_the_loop_too(tmp_path, emu):
    setup(tmp_path)
    emu.script({"steps": {"ask": [calls(("counter", {})), {"default_rule": True}]}})
    result = run_flow(tmp_path, emu, flow("""
  ask:
    input: go
    tools: [counter]
    stream: true
"""))
    assert result.status == "succeeded", result.error
    assert [p.get("stream") for p in emu.bodies("ask")] == [True, True]
    assert record(result)["steps"]["ask"]["text"] == "[emulator] tool results: 1"


# --------------------------------------------------------------------------- definitions


def test_strict_false_and_strict_fallback(tmp_path, emu):
    setup(tmp_path)
    emu.script({"steps": {"ask": [calls(("tally", {"counts": {"a": 2, "b": 3}})), {"default_rule": True}]}})
    result = run_flow(tmp_path, emu, """
name: strictness
tools:
  tally: {python: "tools:tally"}
  loose: {python: "tools:weather", strict: false}
steps:
  ask:
    input: add up
    tools: [tally, loose]
""")
    assert result.status == "succeeded", result.error
    tally, loose = emu.bodies("ask")[0]["tools"]
    assert tally["strict"] is False  # dict[str, int] cannot be expressed in strict mode
    assert tally["parameters"]["properties"]["counts"] == {
        "type": "object", "additionalProperties": {"type": "integer"}}
    assert loose["strict"] is False
    assert loose["parameters"]["required"] == ["city"]
    assert loose["parameters"]["properties"]["days"] == {
        "type": "integer", "default": 1, "description": "How many days ahead."}
    assert record(result)["steps"]["ask"]["text"] == "[emulator] tool results: 5"
    (warning,) = record(result)["steps"]["ask"]["tool_warnings"]
    assert warning.startswith("tool 'tally' is sent with strict: false (")


def test_each_flow_directory_gets_its_own_tools_module(tmp_path, emu):
    for name in ("one", "two"):
        write(tmp_path / name / "tools.py", f'def who() -> str:\n    """Who am I."""\n    return "{name}"\n')
    results = []
    for name in ("one", "two"):
        emu.reset()
        emu.script({"steps": {"ask": [calls(("who", {})), {"default_rule": True}]}})
        results.append(run_flow(tmp_path / name, emu, """
name: which
steps:
  ask:
    input: who?
    tools: [{python: "tools:who"}]
outputs:
  text: "{{ steps.ask.text }}"
"""))
    assert [r.outputs["text"] for r in results] == [
        "[emulator] tool results: one", "[emulator] tool results: two"]


def test_package_module_beside_the_flow(tmp_path, emu):
    write(tmp_path / "helpers" / "__init__.py", "")
    write(tmp_path / "helpers" / "data.py", "CODES = {'contoso': 'CTSO'}\n")
    write(tmp_path / "helpers" / "lookup.py", '''
from .data import CODES


async def ticker(company: str) -> str:
    """Ticker of a company."""
    return CODES.get(company.lower(), "unknown")
''')
    emu.script({"steps": {"ask": [calls(("ticker", {"company": "Contoso"})), {"default_rule": True}]}})
    result = run_flow(tmp_path, emu, """
name: pkg
tools:
  ticker: {python: "helpers.lookup:ticker"}
steps:
  ask:
    input: ticker?
    tools: [ticker]
""")
    assert result.status == "succeeded", result.error
    assert record(result)["steps"]["ask"]["text"] == "[emulator] tool results: CTSO"


def test_definition_errors_fail_the_step_clearly(tmp_path, emu):
    # a missing module or function is refused by validate (tests/plan/test_preflight.py)
    setup(tmp_path)
    result = run_flow(tmp_path, emu, """
name: broken
tools:
  badbind: {python: "tools:weather", bind: {token: "x"}}
  nocmd: {command: [./no-such-program]}
steps:
  c:
    input: x
    tools: [badbind]
  d:
    input: x
    tools: [nocmd]
""")
    assert result.status == "failed"
    steps = record(result)["steps"]
    assert steps["c"]["error"] == ("tool 'badbind' (tools:weather): bind names 'token', which is not "
                                   "a parameter of the function (its parameters: city, days)")
    assert steps["d"]["error"].startswith("tool 'nocmd': no such program './no-such-program'")
    assert emu.bodies() == []  # nothing was sent


def test_cwd_independent(tmp_path, emu, monkeypatch):
    """Tool modules and commands resolve from the flow file's directory, not the cwd."""
    setup(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    emu.script({"steps": {"ask": [calls(("weather", {"city": "Nice", "days": None})), {"default_rule": True}]}})
    result = run_flow(tmp_path, emu, flow("""
  ask:
    input: go
    tools: [weather]
"""))
    assert result.status == "succeeded", result.error
    assert os.getcwd() == str(elsewhere)


def test_tool_choice_must_name_a_tool_of_the_step(tmp_path, emu):
    """Caught when the flow is checked, before any request, with a suggestion."""
    from flowrun.errors import PlanError

    setup(tmp_path)
    with pytest.raises(PlanError) as caught:
        run_flow(tmp_path, emu, flow("""
  ask:
    input: go
    tools: [weather, counter]
    tool_choice: wether
"""))
    (problem,) = caught.value.problems
    assert problem.message == "tool_choice 'wether' is not one of the step's tools"
    assert problem.hint == "did you mean 'weather'?"
    assert problem.path == ("steps", "ask", "tool_choice")
    assert emu.bodies() == []
