"""The command line: interactive approval through stdin, and the example flow with its
local MCP server. Nothing the CLI prints or writes may contain the bearer token."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from flowkit import EXAMPLES, REPO, files_text, flowrun_cli, write_flow
from hosted_mcp_kit import TOKEN, docs_flow  # type: ignore[import-not-found]


@pytest.mark.parametrize("answer", ["y", "n"])
def test_interactive_approval_through_stdin(tmp_path, emu, docs, answer):
    # the model passes the token as an argument: the prompt must show it masked
    page = "api-keys" if answer == "y" else TOKEN
    emu.script({"steps": {"ask": [
        {"mcp_call": {"server_label": "docs", "name": "fetch_page", "arguments": {"page": page}}},
        {"text": "Here is the page."}]}})
    flow = write_flow(tmp_path, docs_flow(docs.url))  # no approve: policy
    proc = flowrun_cli("run", str(flow), "--interactive", "--json", "--provider", "emulator",
                       "--base-url", emu.base_url, "--run-dir", str(tmp_path / "runs"),
                       cwd=tmp_path, input=answer + "\n", env={"DOCS_TOKEN": TOKEN})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # exactly one JSON object
    assert out["status"] == "succeeded" and out["steps"]["ask"]["status"] == "succeeded"

    # the question named the server, the tool and the (redacted) arguments
    assert "MCP server 'docs' asks to call tool 'fetch_page'" in proc.stderr
    assert "approve? [y/N]" in proc.stderr
    shown = '"page": "api-keys"' if answer == "y" else '"page": "***"'
    assert shown in proc.stderr

    record = json.loads((Path(out["run_dir"]) / "record.json").read_text())
    (approval,) = record["steps"]["ask"]["approvals"]
    assert approval["decided_by"] == "user"
    assert approval["server"] == "docs" and approval["tool"] == "fetch_page"
    if answer == "y":
        assert approval["decision"] == "approved"
        assert docs.called("fetch_page") == [{"tool": "fetch_page", "arguments": {"page": "api-keys"},
                                              "authorized": True}]
        calls = [c for c in record["steps"]["ask"]["tool_calls"] if c["type"] == "mcp_call"]
        assert calls[0]["output"].startswith("# api-keys")
    else:
        assert approval["decision"] == "denied" and approval["arguments"] == {"page": "***"}
        assert docs.called("fetch_page") == []

    # the token is nowhere: stdout, stderr, the run directory, the emulator's journal
    assert TOKEN not in proc.stdout and TOKEN not in proc.stderr
    for path, text in files_text(Path(out["run_dir"])).items():
        assert TOKEN not in text, f"the token leaked into {path}"
    journal = emu.journal()
    assert len([e for e in journal if e["path"].endswith("/responses")]) == 2
    assert TOKEN not in json.dumps(journal)


def test_a_wrong_token_is_a_clear_cli_error(tmp_path, emu, docs):
    wrong = "tok-wrong-99887766"
    emu.script({"steps": {"ask": [{"mcp_call": {"name": "search_docs", "arguments": {"query": "x"}}}]}})
    flow = write_flow(tmp_path, docs_flow(docs.url, approve="all"))
    proc = flowrun_cli("run", str(flow), "--provider", "emulator", "--base-url", emu.base_url,
                       "--run-dir", str(tmp_path / "runs"), cwd=tmp_path, env={"DOCS_TOKEN": wrong})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    shown = " ".join(proc.stderr.split())  # the terminal view wraps long lines
    assert "HTTP 401 Unauthorized: the bearer token is not valid for the docs server" in shown
    assert wrong not in proc.stdout + proc.stderr
    for path, text in files_text(tmp_path / "runs").items():
        assert wrong not in text, path


def test_the_example_flow_runs_on_the_emulator_against_the_example_server(tmp_path):
    sys.path.insert(0, str(REPO / "examples"))
    try:
        from mcp_server import DocsExample  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(REPO / "examples"))
    token = "example-token-5f4e3d"
    server = DocsExample(token, port=0).start()
    try:
        flow = EXAMPLES / "mcp-docs.yaml"
        proc = flowrun_cli("run", str(flow), "--json", "--provider", "emulator", "-i", f"docs_url={server.url}",
                           "-i", "question=How do I rotate an API key?", "--run-dir", str(tmp_path / "runs"),
                           cwd=tmp_path, env={"DOCS_MCP_TOKEN": token})
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    assert out["status"] == "succeeded"
    assert "Settings" in out["outputs"]["answer"]
    record = json.loads((Path(out["run_dir"]) / "record.json").read_text())
    answer = record["steps"]["answer"]
    assert [(a["tool"], a["decision"], a["decided_by"]) for a in answer["approvals"]] == [
        ("fetch_page", "approved", "policy")]
    names = [(c["type"], c.get("name")) for c in answer["tool_calls"]]
    assert names == [("mcp_list_tools", None), ("mcp_call", "search_docs"), ("mcp_call", "fetch_page")]
    assert answer["tool_calls"][0]["tools"] == ["search_docs", "fetch_page"]  # delete_page filtered
    assert token not in proc.stdout + proc.stderr
    for path, text in files_text(Path(out["run_dir"])).items():
        assert token not in text, path


def test_a_default_denial_is_shown_on_stderr_and_stdout_stays_json(tmp_path, emu, docs):
    emu.script({"steps": {"ask": [
        {"mcp_call": {"server_label": "docs", "name": "fetch_page", "arguments": {"page": "intro"}}},
        {"text": "I could not read the page."}]}})
    flow = write_flow(tmp_path, docs_flow(docs.url))  # no approve: policy, not interactive
    proc = flowrun_cli("run", str(flow), "--json", "--provider", "emulator", "--base-url", emu.base_url,
                       "--run-dir", str(tmp_path / "runs"), cwd=tmp_path, env={"DOCS_TOKEN": TOKEN})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "succeeded"
    assert "ask: denied MCP call 'fetch_page' on 'docs'" in proc.stderr
    assert "--interactive" in proc.stderr
    assert docs.called("fetch_page") == []
