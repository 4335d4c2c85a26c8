"""Custom tools (raw text in, grammar sent as the format) and the emulator's side of the
workspace tools: scripted calls that conform to the spec, grammar checks on scripted
input, and the output checks the service makes."""
from __future__ import annotations

import shutil
from pathlib import Path

import httpx2
import pytest
from flowkit import assert_conforms, parse_sse, record, run_flow

HERE = Path(__file__).parent

FLOW = """
name: custom
tools:
  set_version:
    custom:
      python: custom_tools_src:set_version
      description: Set the release version (semver).
      grammar: {syntax: regex, definition: "\\\\d+\\\\.\\\\d+\\\\.\\\\d+"}
  count:
    custom:
      command: [python3, -c, "import sys; print(len(sys.stdin.read().split()))"]
      grammar:
        syntax: lark
        definition: |
          start: WORD (" " WORD)*
          WORD: /[a-z]+/
  broken:
    custom: {python: "custom_tools_src:broken"}
steps:
  release:
    input: "release it"
    tools: [set_version, count, broken]
"""


def _copy_src(tmp_path: Path) -> None:
    shutil.copy(HERE / "custom_tools_src.py", tmp_path / "custom_tools_src.py")


def test_custom_tools_get_the_raw_text_and_the_grammar_is_sent_as_format(tmp_path, emu):
    _copy_src(tmp_path)
    emu.script({"steps": {"release": [
        {"custom_tool_call": [{"name": "set_version", "input": "1.2.3"},
                              {"name": "count", "input": "three small words"},
                              {"name": "broken", "input": "x"}]},
        {"default_rule": True}]}})
    result = run_flow(tmp_path, emu, FLOW)
    assert result.status == "succeeded", result.error
    assert result.steps["release"].result.text == (
        '[emulator] tool results: version set to 1.2.3; 3; {"error": "the tool raised RuntimeError: no such release"}')
    tools = emu.bodies("release")[0]["tools"]
    assert tools[0] == {"type": "custom", "name": "set_version", "description": "Set the release version (semver).",
                        "format": {"type": "grammar", "syntax": "regex", "definition": "\\d+\\.\\d+\\.\\d+"}}
    assert tools[1]["format"]["syntax"] == "lark" and tools[2] == {"type": "custom", "name": "broken"}
    calls = record(result)["steps"]["release"]["tool_calls"]
    assert [(c["kind"], c["input"], c.get("output")) for c in calls[:2]] == [
        ("custom", "1.2.3", "version set to 1.2.3"), ("custom", "three small words", "3")]
    assert calls[2]["error"] == "the tool raised RuntimeError: no such release"


@pytest.mark.parametrize("name, text, why", [
    ("set_version", "1.2", "does not match the regular expression"),
    ("count", "Two Words", "does not follow the lark grammar"),
])
def test_scripted_input_that_breaks_the_grammar_is_an_error(tmp_path, emu, name, text, why):
    _copy_src(tmp_path)
    emu.script({"steps": {"release": [{"custom_tool_call": {"name": name, "input": text}}]}})
    result = run_flow(tmp_path, emu, FLOW)
    assert result.status == "failed"
    assert f"The scripted custom_tool_call for '{name}' breaks the tool's grammar" in result.steps["release"].result.error
    assert why in result.steps["release"].result.error


TOOLS = [{"type": "shell"}, {"type": "apply_patch"}, {"type": "local_shell"},
         {"type": "custom", "name": "v", "format": {"type": "grammar", "syntax": "regex", "definition": "v\\d"}}]
SCRIPT = {"steps": {"s": [
    {"shell_call": {"commands": ["ls", "pwd"], "timeout_ms": 500, "max_output_length": 100}},
    {"apply_patch_call": [{"type": "create_file", "path": "a.txt", "diff": "+a\n"},
                          {"type": "delete_file", "path": "b.txt"}]},
    {"local_shell_call": {"command": ["ls", "-l"]}},
    {"custom_tool_call": {"name": "v", "input": "v2"}},
]}}


def _post(server, **body):
    return httpx2.post(server.url + "/v1/responses", timeout=10,
                       json={"model": "gpt-4.1", "tools": TOOLS, "metadata": {"flowrun_step": "s"}, **body})


def test_scripted_workspace_calls_conform_to_the_spec_json_and_streamed(emu):
    emu.script(SCRIPT)
    kinds = []
    for _ in range(4):
        r = _post(emu.server, input="go")
        assert r.status_code == 200, r.text
        assert_conforms("Response", r.json())
        kinds.append([i["type"] for i in r.json()["output"]])
    assert kinds == [["shell_call"], ["apply_patch_call", "apply_patch_call"], ["local_shell_call"],
                     ["custom_tool_call"]]
    emu.script({"steps": {"s": [SCRIPT["steps"]["s"][3]]}})
    r = _post(emu.server, input="go", stream=True)
    events = parse_sse(r.text)
    for event in events:
        assert_conforms("ResponseStreamEvent", event)
    types = [e["type"] for e in events]
    assert "response.custom_tool_call_input.done" in types
    assert events[types.index("response.output_item.added")]["item"]["input"] == ""


def test_outputs_are_checked_as_the_service_checks_them(emu):
    emu.script(SCRIPT)
    first = _post(emu.server, input="go").json()
    call = first["output"][0]
    ok = {"type": "shell_call_output", "call_id": call["call_id"], "max_output_length": 100,
          "output": [{"stdout": "", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}}] * 2}
    missing = _post(emu.server, input="next", previous_response_id=first["id"])
    assert missing.status_code == 400 and f"No tool output found for shell call {call['call_id']}" in missing.text
    short = _post(emu.server, previous_response_id=first["id"], input=[{**ok, "output": ok["output"][:1]}])
    assert short.status_code == 400 and "has 1 output entries; its call ran 2 commands" in short.text
    stray = _post(emu.server, input=[{"type": "apply_patch_call_output", "call_id": "call_nope", "status": "completed"}])
    assert stray.status_code == 400 and "No apply patch call found for output with call_id call_nope" in stray.text
    good = _post(emu.server, previous_response_id=first["id"], input=[ok])
    assert good.status_code == 200, good.text
    bad_grammar = _post(emu.server, input="x", tools=[{"type": "custom", "name": "v", "format": {
        "type": "grammar", "syntax": "regex", "definition": "(unclosed"}}])
    assert bad_grammar.status_code == 400 and "Invalid grammar definition (regex)" in bad_grammar.text
    emu.script(SCRIPT)
    no_tool = httpx2.post(emu.server.url + "/v1/responses", timeout=10, json={
        "model": "gpt-4.1", "input": "x", "metadata": {"flowrun_step": "s"}})
    assert no_tool.status_code == 400 and "has no shell tool" in no_tool.text
