"""Record a run on a separately started emulator, then replay it offline: identical
outputs, zero requests to that emulator; a changed prompt fails with a request diff."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from flowkit import REPO, Emu, flowrun_cli

EXAMPLES = REPO / "examples" / "flows"


def _copy_example(tmp: Path, name: str) -> Path:
    for f in EXAMPLES.iterdir():
        if f.is_file() and (f.name.startswith(name + ".") or f.suffix == ".py"):
            shutil.copy(f, tmp / f.name)
    if (EXAMPLES / "data").is_dir():
        shutil.copytree(EXAMPLES / "data", tmp / "data")
    return tmp / f"{name}.yaml"


def _artifact_bytes(value: object, run_dir: Path) -> object:
    """Outputs with artifact paths replaced by the files' bytes (paths differ per run)."""
    if isinstance(value, dict):
        return {k: _artifact_bytes(v, run_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [_artifact_bytes(v, run_dir) for v in value]
    if isinstance(value, str) and "/artifacts/" in value and "\n" not in value:
        return Path(value).read_bytes()
    return value


def test_record_on_a_real_emulator_then_replay_offline(tmp_path: Path, emu: Emu) -> None:
    flow = _copy_example(tmp_path, "data-analysis")
    emu.script(yaml.safe_load((EXAMPLES / "data-analysis.emulator.yaml").read_text()))
    cassette = tmp_path / "cassettes" / "analysis.json"
    proc = flowrun_cli("run", str(flow), "--provider", "compatible", "--base-url", emu.server.base_url,
                       "--record", str(cassette), "--json", cwd=tmp_path,
                       env={"OPENAI_API_KEY": "sk-live-canary-0123456789abcdef"})
    assert proc.returncode == 0, proc.stderr
    recorded = json.loads(proc.stdout)
    requests_after_recording = len(emu.journal())
    doc = json.loads(cassette.read_text())
    assert doc["flowrun_cassette"] == 1 and len(doc["turns"]) == 2
    assert any(t.get("container_files") for t in doc["turns"]), "the code interpreter files are in it"
    assert "sk-live-canary" not in cassette.read_text()

    (tmp_path / "data-analysis.emulator.yaml").unlink()  # the replay needs no script
    (tmp_path / "data-analysis.test.yaml").write_text(
        "cases:\n  replayed:\n    recording: cassettes/analysis.json\n")
    proc = flowrun_cli("test", str(tmp_path / "data-analysis.test.yaml"), "--json", "--run-dir",
                       str(tmp_path / "test-runs"), cwd=tmp_path)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report
    assert len(emu.journal()) == requests_after_recording, "the replay sent nothing to the emulator"

    proc = flowrun_cli("run", str(flow), "--replay", str(cassette), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    replayed = json.loads(proc.stdout)
    assert _artifact_bytes(replayed["outputs"], tmp_path) == _artifact_bytes(recorded["outputs"], tmp_path)
    assert len(emu.journal()) == requests_after_recording

    # the prompt changed: the replay fails with a diff of the request
    flow.write_text(flow.read_text().replace("Which region grew fastest", "Which region shrank most"))
    proc = flowrun_cli("test", str(tmp_path / "data-analysis.test.yaml"), cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout
    assert "no longer matches the recording" in proc.stdout
    assert "-" in proc.stdout and "shrank most" in proc.stdout, proc.stdout


def test_a_broken_cassette_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = flowrun_cli("run", str(EXAMPLES / "quickstart.yaml"), "--replay", str(bad), cwd=tmp_path)
    assert proc.returncode == 2 and "not a flowrun cassette" in proc.stderr and "Traceback" not in proc.stderr
