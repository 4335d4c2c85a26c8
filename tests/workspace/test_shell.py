"""The shell tool through real flows on the emulator: the allow list (a refused command
never runs), no shell unless asked, the timeout that kills the whole process group, the
empty environment, masking before the output cap, and no network."""
from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest
from flowkit import record, run_flow

from flowrun.tools.shell_run import isolation

PY = sys.executable


def _flow(policy: str) -> str:
    return f"""
name: sh
secrets: [SHELL_TOKEN]
tools:
  sh:
    shell: {policy}
steps:
  work:
    input: "work"
    tools: [sh]
"""


def _run(tmp_path, emu, policy: str, *calls, env=None):
    emu.script({"steps": {"work": [*({"shell_call": c} for c in calls), {"default_rule": True}]}})
    environ = {"PATH": "/usr/bin:/bin", "SHELL_TOKEN": "tok-SECRET-1234567890", **(env or {})}
    result = run_flow(tmp_path, emu, _flow(policy), environ=environ)
    assert result.status == "succeeded", result.error
    step = record(result)["steps"]["work"]
    return result, Path(step["workspace"]), [cmd for call in step["tool_calls"] for cmd in call["commands"]]


def test_a_command_outside_allow_never_runs(tmp_path, emu):
    policy = "{allow: [echo, [git, status]]}"
    result, ws, cmds = _run(tmp_path, emu, policy,
                            ["touch marker1", "echo fine", "git commit -m x", "/usr/bin/touch marker2"],
                            "echo ok; touch marker3",           # shell syntax, but no shell
                            "echo ok && touch marker4")
    assert not list(ws.glob("marker*"))
    assert [c.get("exit_code") for c in cmds] == [126, 0, 126, 126, 126, 126]
    assert cmds[1]["stdout"] == "fine\n"
    assert "'touch marker1' is not allowed by this step's shell policy (allowed: echo, git status)" in cmds[0]["refused"]
    assert "uses shell syntax (;)" in cmds[4]["refused"]
    sent = emu.outputs("work", "shell_call_output")
    assert sent[0]["output"][0] == {"stdout": "", "stderr": "flowrun: refused: " + cmds[0]["refused"],
                                    "outcome": {"type": "exit", "exit_code": 126}}
    assert [len(o["output"]) for o in sent] == [4, 1, 1]


def test_with_shell_true_every_simple_command_must_be_allowed(tmp_path, emu):
    policy = "{allow: [echo, tr], shell: true}"
    _, ws, cmds = _run(tmp_path, emu, policy,
                       ["echo hello | tr a-z A-Z", "echo a && touch marker1", "echo $(touch marker2)",
                        "echo `touch marker3`", "echo ok\ntouch marker4", "echo hi > out.txt"])
    assert [c["exit_code"] for c in cmds] == [0, 126, 126, 126, 126, 0]
    assert cmds[0]["stdout"] == "HELLO\n"
    assert "'touch marker1' is not allowed" in cmds[1]["refused"]
    assert "command substitution ($()" in cmds[2]["refused"] and "(`)" in cmds[3]["refused"]
    assert not list(ws.glob("marker*")) and (ws / "out.txt").read_text() == "hi\n"


def test_a_command_past_its_timeout_is_killed_with_its_process_group(tmp_path, emu):
    code = ("import subprocess, time; p = subprocess.Popen(['sleep', '60']); "
            "open('grandchild.pid', 'w').write(str(p.pid)); print('started', flush=True); time.sleep(60)")
    policy = f"{{allow: [[{PY}, -c]], timeout: 1.5s}}"
    started = time.monotonic()
    result, ws, cmds = _run(tmp_path, emu, policy, {"commands": [f"{PY} -c \"{code}\""]})
    assert time.monotonic() - started < 20
    assert cmds[0]["timed_out"] is True and "exit_code" not in cmds[0]
    assert cmds[0]["stdout"] == "started\n"
    pid = int((ws / "grandchild.pid").read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid), f"grandchild {pid} is still running"
    sent = emu.outputs("work", "shell_call_output")[0]["output"][0]
    assert sent["outcome"] == {"type": "timeout"}
    assert "ran past its 1.5s timeout; its process group was killed" in sent["stderr"]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_the_environment_is_only_what_the_step_lists_and_secrets_are_masked(tmp_path, emu):
    policy = '{allow: [env], env: {TOKEN: "{{ secrets.SHELL_TOKEN }}", MODE: "ci"}}'
    result, ws, cmds = _run(tmp_path, emu, policy, "env", env={"OPENAI_API_KEY": "sk-should-not-leak"})
    names = sorted(line.split("=", 1)[0] for line in cmds[0]["stdout"].splitlines())
    assert names == ["HOME", "MODE", "PATH", "TMPDIR", "TOKEN"]
    assert "TOKEN=***" in cmds[0]["stdout"] and "SECRET" not in (result.run_dir / "record.json").read_text()
    sent = emu.outputs("work", "shell_call_output")[0]["output"][0]["stdout"]
    assert "TOKEN=***\n" in sent and "tok-SECRET" not in sent and "sk-should" not in sent
    home = [line for line in cmds[0]["stdout"].splitlines() if line.startswith("HOME=")][0][5:]
    assert Path(home).parent == result.run_dir / "tmp" and ws.parent == result.run_dir / "workspaces"


def test_output_is_masked_before_it_is_cut(tmp_path, emu):
    # the secret straddles the point where a cut to 1000 characters would fall
    code = "import os; print('a' * 495 + os.environ['T'] + 'b' * 5000)"
    policy = f'{{allow: [{PY}], max_output: 1000, env: {{T: "{{{{ secrets.SHELL_TOKEN }}}}"}}}}'
    _, _, cmds = _run(tmp_path, emu, policy, {"commands": [f'{PY} -c "{code}"']})
    out = cmds[0]["stdout"]
    assert out.startswith("a" * 495 + "***bb")
    assert "tok-SEC" not in out and "[... about " in out and len(out) < 1100
    sent = emu.outputs("work", "shell_call_output")[0]["output"][0]["stdout"]
    assert sent == out


@pytest.mark.skipif(not isolation().network_namespace, reason="no user/network namespaces here")
def test_commands_have_no_network(tmp_path, emu):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('connected')"
        _, _, cmds = _run(tmp_path, emu, f"{{allow: [{PY}]}}", {"commands": [f'{PY} -c "{code}"']})
    assert cmds[0]["exit_code"] == 1 and "connected" not in cmds[0]["stdout"]
    assert "Error" in cmds[0]["stderr"]


@pytest.mark.skipif(not isolation().landlock_abi, reason="this kernel has no Landlock")
def test_commands_cannot_write_outside_the_workspace(tmp_path, emu):
    target = tmp_path / "outside.txt"
    code = f"open({str(target)!r}, 'w').write('x')"
    _, _, cmds = _run(tmp_path, emu, f"{{allow: [{PY}]}}", {"commands": [f'{PY} -c "{code}"', f'{PY} -c "open(\'in.txt\', \'w\')"']})
    assert cmds[0]["exit_code"] == 1 and "PermissionError" in cmds[0]["stderr"]
    assert cmds[1]["exit_code"] == 0
    assert not target.exists()
