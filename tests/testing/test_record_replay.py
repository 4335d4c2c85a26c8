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


def _record(tmp_path: Path, emu: Emu) -> tuple[Path, Path, Path]:
    flow = _copy_example(tmp_path, "data-analysis")
    emu.script(yaml.safe_load((EXAMPLES / "data-analysis.emulator.yaml").read_text()))
    cassette = tmp_path / "cassettes" / "analysis.json"
    proc = flowrun_cli("run", str(flow), "--provider", "compatible", "--base-url", emu.server.base_url,
                       "--record", str(cassette), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    tests = tmp_path / "data-analysis.test.yaml"
    tests.write_text("cases:\n  replayed:\n    recording: cassettes/analysis.json\n"
                     "    expect: {outputs: {answer: {contains: revenue}}}\n")
    flow.write_text(flow.read_text().replace("Which region grew fastest", "Which region shrank most"))
    return flow, cassette, tests


def test_update_records_anew_on_the_provider_the_cassette_was_recorded_on(tmp_path: Path, emu: Emu) -> None:
    flow, cassette, tests = _record(tmp_path, emu)
    doc = json.loads(cassette.read_text())
    assert doc["provider"] == {"kind": "compatible", "base_url": emu.server.base_url}
    before = len(emu.journal())
    proc = flowrun_cli("test", str(tests), "--update", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "no longer matches the recording" in out and "+" in out and "shrank most" in out, out
    assert f"re-recorded {cassette}" in out and f"on compatible at {emu.server.base_url}" in out, out
    assert "offline" not in out
    assert len(emu.journal()) > before, "the new recording came from the provider"
    sent = json.dumps([t["request"] for t in json.loads(cassette.read_text())["turns"]])
    assert "shrank most" in sent and "grew fastest" not in sent
    # the new cassette replays offline: nothing more reaches the provider
    after = len(emu.journal())
    proc = flowrun_cli("test", str(tests), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert len(emu.journal()) == after


def test_update_records_offline_when_the_provider_is_gone(tmp_path: Path, emu: Emu) -> None:
    import socket

    flow, cassette, tests = _record(tmp_path, emu)
    with socket.socket() as sock:  # a port nothing listens on: the recording's provider is gone
        sock.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    doc = json.loads(cassette.read_text())
    doc["provider"]["base_url"] = gone
    cassette.write_text(json.dumps(doc))
    before = len(emu.journal())
    proc = flowrun_cli("test", str(tests), "--update", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "shrank most" in out and "on the emulator's scripted model" in out, out
    assert f"offline: compatible at {gone} is not reachable (cannot connect to 127.0.0.1:" in out, out
    assert len(emu.journal()) == before
    new = json.loads(cassette.read_text())
    assert new["provider"] == {"kind": "emulator"} and "shrank most" in cassette.read_text()
    assert any(t.get("container_files") for t in new["turns"]), "the scripted code ran and its files are kept"
    proc = flowrun_cli("test", str(tests), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout


def test_update_keeps_the_cassette_when_the_new_run_fails(tmp_path: Path, emu: Emu) -> None:
    flow, cassette, tests = _record(tmp_path, emu)
    old = cassette.read_text()
    emu.script({"steps": {"analyze": [{"error": {"status": 400, "message": "model retired"}}]}})
    proc = flowrun_cli("test", str(tests), "--update", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout
    assert "not re-recorded: the new recording's run failed" in proc.stdout, proc.stdout
    assert cassette.read_text() == old


def test_a_cassette_recorded_in_one_folder_replays_in_another(tmp_path: Path, emu: Emu) -> None:
    """Local paths in requests (the CSV's path rendered into the prompt) are stored as
    placeholders, so a checkout elsewhere (CI's clean clone) replays with zero mismatches."""
    here = tmp_path / "here"
    here.mkdir()
    flow = _copy_example(here, "data-analysis")
    emu.script(yaml.safe_load((EXAMPLES / "data-analysis.emulator.yaml").read_text()))
    proc = flowrun_cli("run", str(flow), "--provider", "compatible", "--base-url", emu.server.base_url,
                       "--record", str(here / "cassettes" / "analysis.json"), "--json",
                       "--run-dir", str(here / "runs"), cwd=here)
    assert proc.returncode == 0, proc.stderr
    recorded = _artifact_bytes(json.loads(proc.stdout)["outputs"], here)
    text = (here / "cassettes" / "analysis.json").read_text()
    assert "{flow_dir}/data/sales.csv" in text and str(here) not in text, "no absolute local path is stored"
    assert str(here / "data" / "sales.csv") in json.dumps(emu.journal()), "the service got the real path"
    (here / "data-analysis.emulator.yaml").unlink()
    (here / "data-analysis.test.yaml").write_text(
        "cases:\n  replayed:\n    recording: cassettes/analysis.json\n")

    there = tmp_path / "elsewhere" / "clone"
    shutil.copytree(here, there, ignore=shutil.ignore_patterns("runs"))
    shutil.rmtree(here)  # nothing of the first folder is left to match
    before = len(emu.journal())
    proc = flowrun_cli("test", str(there / "data-analysis.test.yaml"), "--json", cwd=there)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report
    assert report["summary"]["failed"] == 0 and report["summary"]["passed"] == 1, report
    proc = flowrun_cli("run", str(there / "data-analysis.yaml"), "--replay",
                       str(there / "cassettes" / "analysis.json"), "--json", cwd=there)
    assert proc.returncode == 0, proc.stderr
    replayed = json.loads(proc.stdout)
    assert _artifact_bytes(replayed["outputs"], there) == recorded
    assert len(emu.journal()) == before, "the replays sent nothing to the emulator"

    # a changed prompt still fails there, with a diff of the request (paths as placeholders)
    flow = there / "data-analysis.yaml"
    flow.write_text(flow.read_text().replace("Which region grew fastest", "Which region shrank most"))
    proc = flowrun_cli("test", str(there / "data-analysis.test.yaml"), cwd=there)
    assert proc.returncode == 1, proc.stdout
    assert "no longer matches the recording" in proc.stdout, proc.stdout
    assert "shrank most" in proc.stdout and "{flow_dir}/data/sales.csv" in proc.stdout, proc.stdout
    assert str(there) not in proc.stdout.split("no longer matches", 1)[1], proc.stdout


def test_a_cassette_with_absolute_paths_still_replays_where_it_was_recorded(tmp_path: Path, emu: Emu) -> None:
    """Cassettes made before paths were placeholders keep matching in their own folder."""
    flow, cassette, tests = _record(tmp_path, emu)
    flow.write_text(flow.read_text().replace("Which region shrank most", "Which region grew fastest"))
    text = cassette.read_text()
    assert "{flow_dir}" in text
    old = json.loads(text.replace("{flow_dir}", str(tmp_path)))  # as an older flowrun wrote it
    assert str(tmp_path / "data" / "sales.csv") in json.dumps(old["turns"][0]["request"])
    cassette.write_text(json.dumps(old))
    proc = flowrun_cli("test", str(tests), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout


def test_places_rewrite_only_whole_paths_under_the_folders() -> None:
    from flowrun.testing.local_paths import Places

    places = Places(flow_dir="/w/repo/flows", run_root="/w/repo/flows/runs", cwd="/w/repo")
    said = "read /w/repo/flows/data/a.csv, then /w/repo/flows/runs/20261202-1/artifacts/c.png"
    body = {"input": [{"content": said},
                      "/w/repo/notes.txt", "/w/repo2/x", "/v/w/repo/x", "/elsewhere/y", "/w/repo"],
            "n": 3}
    assert places.placeholders(body) == {
        "input": [{"content": "read {flow_dir}/data/a.csv, then {run_dir}/artifacts/c.png"},
                  "{cwd}/notes.txt", "/w/repo2/x", "/v/w/repo/x", "/elsewhere/y", "{cwd}"],
        "n": 3}
    assert body["input"][1] == "/w/repo/notes.txt", "a copy: the request as sent is unchanged"
