"""Service text that is not valid Unicode (a lone surrogate, sent as the JSON escape
``"\\udc80"``) is kept and saved escaped; a failed write leaves no temporary file."""

from __future__ import annotations

import json

import pytest
from flowkit import flowrun_cli, record, run_flow, write, write_flow

from flowrun.store import RunStore

LONE = "bad \udc80 text"
FLOW = """
    name: surrogate
    steps:
      a:
        input: hi
        stream: {stream}
    outputs:
      t: "{{{{ steps.a.text }}}}"
"""


@pytest.mark.parametrize("stream", [False, True])
def test_a_lone_surrogate_in_a_reply_is_kept_and_saved_escaped(tmp_path, emu, stream):
    emu.script({"steps": {"a": [{"text": LONE}]}})
    result = run_flow(tmp_path, emu, FLOW.format(stream=str(stream).lower()))
    assert result.status == "succeeded", result.error
    assert result.outputs == {"t": LONE}
    saved = result.run_dir / "responses" / "a.json"
    raw = saved.read_bytes()
    assert b"\\udc80" in raw
    raw.decode("utf-8")  # valid UTF-8 on disk
    message = json.loads(raw)["output"][-1]["content"][0]
    assert message["text"] == LONE
    assert record(result)["steps"]["a"]["text"] == LONE
    assert not list(result.run_dir.rglob("*.tmp"))


def test_run_json_prints_a_lone_surrogate_escaped(tmp_path):
    flow = write_flow(tmp_path, FLOW.format(stream="false"))
    # the script as a JSON file holds the escape itself, as the service would send it
    write(tmp_path / "flow.emulator.json", '{"steps": {"a": [{"text": "bad \\udc80 text"}]}}')
    proc = flowrun_cli("run", str(flow), "--provider", "emulator", "--json",
                       "--emulator-script", str(tmp_path / "flow.emulator.json"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "succeeded"
    assert out["outputs"] == {"t": LONE}
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_failed_record_write_leaves_no_tmp_file(tmp_path):
    store = RunStore(tmp_path, "run1")
    (store.dir / "record.json").mkdir()  # the final rename cannot replace a directory
    with pytest.raises(OSError):
        store.write_record({"status": "running"})
    assert not list(store.dir.rglob("*.tmp"))
