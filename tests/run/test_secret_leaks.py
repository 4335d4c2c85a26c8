"""Zero leaks: planted canary secrets are looked for, whole and in part, in everything a run
leaves behind - record.json, responses/, every other file of the run directory, ``--json``
stdout, stderr, the live view and what the model was sent."""

from __future__ import annotations

import io
import json
import sys

import pytest
from rich.console import Console

from flowkit import cli_env, files_text, flowrun_cli, record, run_flow, write, write_flow
from flowrun.errors import SpecError
from flowrun.secrets import EnvView, Redactor
from flowrun.templating import TemplateError, evaluate
from flowrun.view import LiveView

CANARY = "Xq9J-Zk4W-vQ7p-Jm2Z-Kx8V-wR5t"
SPACED = "Xq9J-Zk4W vQ7p-Jm2Z"  # a secret with a space: the emulator streams it in two deltas


def fragments(secret: str, text: str, k: int = 6) -> list[str]:
    """Every piece of ``secret`` ``k`` characters long that occurs in ``text``."""
    return sorted({secret[i:i + k] for i in range(len(secret) - k + 1) if secret[i:i + k] in text})


def leaks(secret: str, **places: str) -> dict[str, list[str]]:
    """Where pieces of ``secret`` turn up (place -> the pieces); empty when nowhere."""
    return {where: found for where, text in places.items() if (found := fragments(secret, text))}


def run_cli(tmp_path, emu, flow, *args, **env):
    proc = flowrun_cli("run", str(flow), "--provider", "emulator", "--base-url", emu.base_url,
                       "--json", *args, cwd=tmp_path, env=cli_env(**env))
    places = {"stdout": proc.stdout, "stderr": proc.stderr, "journal": json.dumps(emu.journal())}
    places.update(files_text(tmp_path / ".flowrun"))
    return proc, places


# --------------------------------------------------------------------------- truncation


def test_command_stderr_is_masked_before_its_tail_is_kept(tmp_path, emu):
    # 1985 characters after the secret: a tail of 2000 cut first would keep its last 15
    write(tmp_path / "leaky.py", "import os, sys\nsys.stdin.read()\n"
          "sys.stderr.write(os.environ['CANARY'] + 'E' * 1985)\nsys.exit(3)\n")
    flow = write_flow(tmp_path, f"""
        name: leaky
        secrets: [CANARY]
        tools:
          leaky: {{command: ["{sys.executable}", leaky.py]}}
        steps:
          a: {{input: go, tools: [leaky]}}
    """)
    emu.script({"steps": {"a": [{"function_calls": [{"name": "leaky", "arguments": {}}]},
                                {"text": "the tool failed"}]}})
    proc, places = run_cli(tmp_path, emu, flow, CANARY=CANARY)
    assert proc.returncode == 0, proc.stderr
    (call,) = record_of(tmp_path)["steps"]["a"]["tool_calls"]
    assert "exited with status 3" in call["error"] and call["error"].endswith("E" * 50)
    assert leaks(CANARY, **places) == {}


def record_of(tmp_path):
    (path,) = (tmp_path / ".flowrun" / "runs").glob("*/record.json")
    return json.loads(path.read_text())


@pytest.mark.parametrize("keep", ["head", "tail"])
def test_truncate_masks_first_and_masks_a_partial_secret_at_the_edge(keep):
    redactor = Redactor()
    redactor.add(CANARY)
    for cut in range(1, len(CANARY)):  # the secret straddles the cut
        if keep == "head":
            text = "a" * (100 - cut) + CANARY + "b" * 100
        else:
            text = "a" * 100 + CANARY + "b" * (100 - len(CANARY) + cut)
        short = redactor.truncate(text, 100, keep=keep)
        assert len(short) <= 100 and leaks(CANARY, short=short) == {}, (cut, short)
        assert fragments(CANARY, short, k=3) == [], (cut, short)
    # a text cut upstream: what is left of a secret at the new edge is masked too
    assert redactor.truncate("a" * 95 + CANARY[:5] + "ccccc", 100) == "a" * 95 + "***"
    assert redactor.truncate("ccccc" + CANARY[-5:] + "a" * 95, 100, keep="tail") == "***" + "a" * 95
    assert redactor.truncate("x" * 120, 100, marker="... [cut]") == "x" * 100 + "... [cut]"
    assert redactor.truncate("short and clean", 100) == "short and clean"


# --------------------------------------------------------------------------- streaming


class WatchedView(LiveView):
    """The real live view on a terminal-like console, remembering every row it drew."""

    def __init__(self) -> None:
        self.out = io.StringIO()
        super().__init__(console=Console(file=self.out, force_terminal=True, width=300), live=True)
        self.drawn: list[str] = []

    def _refresh(self) -> None:
        self.drawn.extend(f"{row.get('stream', '')}|{row.get('detail', '')}" for row in self.rows.values())
        super()._refresh()


def test_a_retried_dropped_stream_shows_no_part_of_a_secret_and_no_stale_text(tmp_path, emu, monkeypatch):
    monkeypatch.setenv("SPACED", SPACED)
    text = f"one two {SPACED} end"
    # events: created, in_progress, item added, part added, "one ", "two ", "Xq9J-Zk4W " - cut
    emu.script({"steps": {"a": [{"text": text, "drop_stream_after": 7}, {"text": text}]}})
    view = WatchedView()
    result = run_flow(tmp_path, emu, """
        name: drop
        secrets: [SPACED]
        steps:
          a: {input: x, stream: true, retries: {max: 1, initial_delay: 0.01}}
    """, hooks=view)
    assert result.status == "succeeded", result.error
    assert result.steps["a"].result.attempts == 2
    assert view.rows["a"]["stream"] == "one two *** end"  # the dropped attempt's text is gone
    assert leaks(SPACED[:10], drawn="\n".join(view.drawn), terminal=view.out.getvalue(),
                 **files_text(result.run_dir)) == {}


# --------------------------------------------------------------------------- short secrets


def test_a_secret_too_short_to_mask_is_refused(tmp_path, emu):
    flow = write_flow(tmp_path, """
        name: pin
        secrets: [PIN]
        steps:
          a: {input: "the pin is {{ secrets.PIN }}"}
    """)
    proc, places = run_cli(tmp_path, emu, flow, PIN="Q7z")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "PIN" in proc.stderr and "at least 4 characters" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert emu.posts() == []
    assert [where for where, t in places.items() if "Q7z" in t] == []


# --------------------------------------------------------------------------- env credentials


def test_an_undeclared_credential_env_variable_is_a_validate_error(tmp_path, emu):
    flow = write_flow(tmp_path, """
        name: envkey
        steps:
          a:
            input: "my key is {{ env.OPENAI_API_KEY }}"
    """)
    proc = flowrun_cli("validate", str(flow), cwd=tmp_path, env={"OPENAI_API_KEY": CANARY})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "flow.yaml:5:12: steps.a.input: env.OPENAI_API_KEY looks like a credential" in proc.stderr and "env.OPENAI_API_KEY" in proc.stderr
    assert "secrets:" in proc.stderr and "Traceback" not in proc.stderr
    proc, places = run_cli(tmp_path, emu, flow, OPENAI_API_KEY=CANARY)
    assert proc.returncode == 2
    assert emu.posts() == []
    assert leaks(CANARY, **places) == {}


def test_a_credential_env_variable_declared_as_secret_is_readable_and_masked(tmp_path, emu, monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", CANARY)
    flow = """
        name: env
        {declare}
        steps:
          a: {{input: "hello"}}
        outputs:
          token: "{{{{ env.MY_SERVICE_TOKEN }}}}"
    """
    with pytest.raises(SpecError, match="env.MY_SERVICE_TOKEN looks like a credential"):
        run_flow(tmp_path, emu, flow.format(declare=""))
    result = run_flow(tmp_path, emu, flow.format(declare="secrets: [MY_SERVICE_TOKEN]"))
    assert result.status == "succeeded", result.error
    assert result.outputs["token"] == "***"
    assert leaks(CANARY, **files_text(result.run_dir)) == {}
    assert record(result)["outputs"]["token"] == "***"


def test_reading_an_undeclared_credential_at_render_time_is_refused():
    redactor = Redactor()
    env = EnvView({"SOME_TOKEN": CANARY, "HOME": "/home/me"}, redactor, declared=())
    assert evaluate("{{ env.HOME }}", {"env": env}) == "/home/me"
    for template in ("{{ env.SOME_TOKEN }}", "{{ env['SOME_TOKEN'] }}", "x {{ env.SOME_TOKEN }}"):
        with pytest.raises(TemplateError) as info:
            evaluate(template, {"env": env})
        message = str(info.value)
        assert "env.SOME_TOKEN" in message and "secrets:" in message and CANARY not in message
    declared = EnvView({"SOME_TOKEN": CANARY}, redactor, declared=("SOME_TOKEN",))
    assert evaluate("{{ env.SOME_TOKEN }}", {"env": declared}) == CANARY
    assert redactor.text(CANARY) == "***"
