"""Resume and remote MCP: an approval given at the prompt before the run was killed is not
asked again; the calls run once the service has the answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from flowkit import cli_env, write_flow
from storekit import db_rows, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hosted_mcp"))
from hosted_mcp_kit import TOKEN, docs_flow  # type: ignore[import-not-found]  # noqa: E402
from mcp_docs_fixture import DocsServer  # type: ignore[import-not-found]  # noqa: E402


@pytest.fixture(scope="module")
def docs():
    server = DocsServer(TOKEN).start()
    yield server
    server.stop()


def flowrun(*args: str, stderr: object = subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flowrun.cli", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=stderr, text=True,
                            env=cli_env(DOCS_TOKEN=TOKEN))


def test_approval_given_before_a_kill_is_not_asked_again(tmp_path, emu, docs):
    emu.script({"steps": {"ask": [
        {"mcp_call": [{"server_label": "docs", "name": "fetch_page", "arguments": {"page": "api-keys"}},
                      {"server_label": "docs", "name": "fetch_page", "arguments": {"page": "rotation"}}]},
        {"text": "Both pages read."}]}})
    flow = write_flow(tmp_path, docs_flow(docs.url))  # no approve: policy: the user is asked
    runs = tmp_path / "runs"
    common = ["--interactive", "--json", "--provider", "emulator", "--base-url", emu.base_url,
              "--run-dir", str(runs)]
    log = tmp_path / "first.err"
    with open(log, "w") as stderr:
        first = flowrun("run", str(flow), *common, stderr=stderr)
    first.stdin.write("y\n")  # the first approval; the second question is never answered
    first.stdin.flush()
    prompts = lambda: log.read_text().count("asks to call tool 'fetch_page'")  # noqa: E731
    try:
        wait_until(lambda: prompts() == 2 and db_rows(runs, "SELECT * FROM approvals"), timeout=90)
    finally:
        first.kill()  # SIGKILL while it waits at the second prompt
        first.communicate(timeout=30)
    err1 = log.read_text()
    assert len(db_rows(runs, "SELECT * FROM approvals")) == 1
    assert docs.called("fetch_page") == []  # the service has no answer yet
    posts_before = len(emu.bodies("ask"))

    again = flowrun("resume", "last", *common)
    out, err = again.communicate("y\n", timeout=120)
    assert again.returncode == 0, err
    assert err.count("asks to call tool 'fetch_page'") == 1 and '"page": "rotation"' in err
    result = json.loads(out)
    assert result["status"] == "succeeded"
    # the answered turn was not requested again: one more request, carrying both answers
    bodies = emu.bodies("ask")
    assert len(bodies) == posts_before + 1
    answers = [i for i in bodies[-1]["input"] if i.get("type") == "mcp_approval_response"]
    assert [a["approve"] for a in answers] == [True, True]
    assert sorted(c["arguments"]["page"] for c in docs.called("fetch_page")) == ["api-keys", "rotation"]
    record = json.loads((Path(result["run_dir"]) / "record.json").read_text())
    approvals = record["steps"]["ask"]["approvals"]
    assert [(a["decision"], a["decided_by"]) for a in approvals] == [("approved", "user")] * 2
    rows = db_rows(runs, "SELECT attempt FROM approvals ORDER BY time")
    assert [r["attempt"] for r in rows] == [1, 2]
    assert TOKEN not in out + err + err1
