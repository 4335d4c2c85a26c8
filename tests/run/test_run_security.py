"""Secrets stay masked, hostile text stays text, and odd input gets a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowkit import Recorder, cli_env, files_text, flowrun_cli, run_flow, write_flow
from flowrun.secrets import Redactor
from flowrun.store import RunStore
from flowrun.templating import TemplateError, evaluate

ODD_SECRET = 'pa"ss\\wo/rd-XYZ\u00e9-0042'


def test_a_secret_is_masked_inside_json_inside_json():
    redactor = Redactor()
    redactor.add(ODD_SECRET)
    nested = json.dumps({"arguments": json.dumps({"q": ODD_SECRET})})
    for text in (nested, json.dumps({"q": ODD_SECRET}, ensure_ascii=False), ODD_SECRET):
        masked = redactor.text(text)
        assert "XYZ" not in masked and "***" in masked, masked


def test_a_secret_echoed_in_a_function_call_never_reaches_disk(tmp_path, emu, monkeypatch):
    monkeypatch.setenv("ODD", ODD_SECRET)
    (tmp_path / "tools.py").write_text("def echo(q: str) -> str:\n    return 'got it'\n")
    emu.script({"steps": {"a": [{"function_calls": [{"name": "echo", "arguments": {"q": ODD_SECRET}}]},
                                {"text": "done"}]}})
    result = run_flow(tmp_path, emu, """
        name: odd
        secrets: [ODD]
        tools: {echo: {python: "tools:echo"}}
        steps:
          a: {input: "{{ secrets.ODD }}", tools: [echo]}
    """)
    assert result.status == "succeeded", result.error
    for path, text in files_text(result.run_dir).items():
        assert "XYZ" not in text, path


def test_a_long_secret_is_not_leaked_by_a_shortened_error(tmp_path, emu, monkeypatch):
    token = "JWT-" + "A" * 150
    monkeypatch.setenv("LONG", token)
    result = run_flow(tmp_path, emu, """
        name: long
        secrets: [LONG]
        steps:
          a: {for_each: "{{ secrets.LONG }}", input: "{{ item }}"}
    """)
    assert result.status == "failed"
    error = result.steps["a"].error
    assert "for_each must give a list" in error and "JWT-AAAA" not in error
    assert "JWT-AAAA" not in (result.run_dir / "record.json").read_text()


def test_streamed_text_is_masked_even_when_a_secret_spans_deltas(tmp_path, emu, monkeypatch):
    monkeypatch.setenv("TOKEN", "sk-stream-secret-0123456789")
    hooks = Recorder()
    result = run_flow(tmp_path, emu, """
        name: stream
        secrets: [TOKEN]
        steps:
          a: {input: "repeat after me: {{ secrets.TOKEN }} and some more words after it", stream: true}
    """, hooks=hooks)
    assert result.status == "succeeded", result.error
    shown = hooks.deltas["a"]
    assert "sk-stream" not in shown and "0123456789" not in shown
    assert shown == result.steps["a"].result.text.replace("sk-stream-secret-0123456789", "***")


def test_credential_looking_env_values_are_masked(tmp_path, emu, monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-from-env-987654")
    result = run_flow(tmp_path, emu, """
        name: env
        secrets: [MY_SERVICE_TOKEN]
        steps:
          a: {input: "hello"}
        outputs:
          leaked: "{{ env.MY_SERVICE_TOKEN }}"
    """)
    assert result.status == "succeeded"
    assert result.outputs["leaked"] == "***"
    assert "tok-from-env" not in (result.run_dir / "record.json").read_text()


def test_model_text_is_not_read_as_terminal_markup(tmp_path, emu):
    flow = write_flow(tmp_path, """
        name: markup
        steps:
          a: {input: "x"}
    """)
    emu.script({"steps": {"a": [{"error": {"status": 400, "message": "bad value [/link] [bold]here"}}]}})
    proc = flowrun_cli("run", str(flow), "--provider", "emulator", "--base-url", emu.base_url,
                       cwd=tmp_path, env=cli_env(COLUMNS="200"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "bad value [/link] [bold]here" in proc.stderr


def test_a_run_dir_that_cannot_be_created_is_a_usage_error(tmp_path, emu):
    flow = write_flow(tmp_path, """
        name: rundir
        steps:
          a: {input: "x"}
    """)
    (tmp_path / "afile").write_text("")
    proc = flowrun_cli("run", str(flow), "--provider", "emulator", "--base-url", emu.base_url,
                       "--run-dir", str(tmp_path / "afile" / "sub"), cwd=tmp_path, env=cli_env())
    assert proc.returncode == 2
    assert "cannot create the run directory" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_relative_run_root_gives_absolute_artifact_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = RunStore(Path("runs"), "r1")
    assert store.dir.is_absolute()
    path = store.artifact_path("step", "../../evil.png")
    assert path.relative_to(store.dir).parts[0] == "artifacts"


@pytest.mark.parametrize("template", ["{{ 'a' * 10000000 }}", "{{ [0] * 5000000 }}", "{{ 7 ** 100000 }}"])
def test_templates_cannot_build_giant_values(template):
    with pytest.raises(TemplateError, match="not allowed in a template"):
        evaluate(template, {})
    assert evaluate("{{ 'ab' * 2 }} {{ 2 ** 8 }}", {}) == "abab 256"
