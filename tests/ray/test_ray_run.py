"""Dataset runs on a real local Ray cluster against the emulator: the same results file as
the local engine, one quota across two workers with no 429, artifacts made on a worker in
the driver's run directory, the flow's tools module and data files shipped as the
working_dir, secrets reaching the workers but no Ray log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dataset_kit import csv_file, flow_file, lines, run, tickets
from flowkit import write
from raykit import comparable, ray_run

from flowrun.emulator.quota import quotas, set_quota
from flowrun.rundb import RunDB

pytestmark = pytest.mark.slow  # a Ray cluster per module; every run connects to it


def test_200_rows_give_the_same_results_as_the_local_engine(tmp_path, emu, cluster):
    data = csv_file(tmp_path / "tickets.csv", tickets(200))
    local = run(tmp_path, emu, data, results=tmp_path / "local.jsonl")
    # --provider emulator without a URL: the driver serves the emulator on loopback for the workers
    on_ray = ray_run(tmp_path, None, cluster, data, results=tmp_path / "ray.jsonl")

    assert local.status == on_ray.status == "succeeded", on_ray.error
    assert on_ray.to_json()["rows"] == local.to_json()["rows"]
    assert comparable(on_ray.results) == comparable(local.results)
    assert len(lines(on_ray.results)) == 200
    engine = on_ray.to_json()["engine"]
    assert engine["name"] == "ray" and engine["workers"] == 2 and engine["reruns"] == 0
    assert sum(engine["rows_per_worker"]) == 200 and min(engine["rows_per_worker"]) > 0  # both worked
    db = RunDB.at(tmp_path / "runs", create=False)
    try:
        stored = db._rows("SELECT row, line FROM dataset_rows WHERE run_id=?", (on_ray.run_id,))
    finally:
        db.close()
    assert sorted(r["row"] for r in stored) == list(range(1, 201))  # every row in the driver's store
    assert {r["line"] for r in stored} == set(Path(on_ray.results).read_text().splitlines())


def test_one_quota_across_two_workers_no_429(tmp_path, emu, cluster):
    rpm, tpm = 3000, 120000  # 50 requests/s, 2,000 tokens/s
    set_quota(emu.server.emulator, rpm=rpm, tpm=tpm)
    data = csv_file(tmp_path / "tickets.csv", tickets(100))
    result = ray_run(tmp_path, emu, cluster, data, rpm=rpm * 0.95, tpm=tpm * 0.95, concurrency=16)

    assert result.status == "succeeded", result.error
    posts = [e for e in emu.journal() if e["method"] == "POST" and e["path"].endswith("/responses")]
    assert len(posts) == 200 and [e for e in posts if e["status"] == 429] == []
    assert quotas(emu.server.emulator).refused == 0
    assert min(result.to_json()["engine"]["rows_per_worker"]) > 0  # both workers sent requests
    assert result.to_json()["rate_limits"] == {"rpm": rpm * 0.95, "tpm": tpm * 0.95}


IMAGE_FLOW = """\
name: logos
secrets: [LOGO_TOKEN]
inputs:
  ticket: string
  brief: {type: file, default: briefs/brief.txt}
steps:
  read:
    python: logo_tools:read_brief
    with: {path: "{{ inputs.brief }}"}
  draw:
    input: "Draw a logo for {{ inputs.ticket }} (token {{ secrets.LOGO_TOKEN }})"
    tools: [{image_generation: {size: 1024x1024}}]
    tool_choice: required
outputs:
  image: "{{ steps.draw.images[0] }}"
  said: "{{ steps.draw.text }}"
  brief: "{{ steps.read.output }}"
"""
TOOLS = """\
import os


def read_brief(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        return {"text": fh.read().strip(), "from_the_shipped_copy": path.startswith(os.getcwd() + os.sep),
                "in": os.getcwd()}
"""


def test_artifacts_reach_the_driver_and_secrets_stay_out_of_ray(tmp_path, emu, cluster, monkeypatch):
    secret = "sk-logo-4f9a1c7e2b8d6035"
    monkeypatch.setenv("LOGO_TOKEN", secret)
    flow = write(tmp_path / "logos.yaml", IMAGE_FLOW)
    write(tmp_path / "logo_tools.py", TOOLS)  # a tools module and a data file beside the flow
    write(tmp_path / "briefs" / "brief.txt", "Round, blue, friendly.")
    data = csv_file(tmp_path / "tickets.csv", tickets(4))
    result = ray_run(tmp_path, emu, cluster, data, flow=flow)

    assert result.status == "succeeded", result.error
    out = lines(result.results)
    assert sorted(r["row"] for r in out) == [1, 2, 3, 4]
    for r in out:
        brief = r["outputs"]["brief"]  # read on the worker, from Ray's working_dir copy
        assert brief["text"] == "Round, blue, friendly." and brief["from_the_shipped_copy"] is True
        assert str(tmp_path) not in brief["in"]  # the worker ran in the copy, not in the flow dir
        image = Path(r["outputs"]["image"])
        assert image.is_relative_to(result.run_dir / "rows" / str(r["row"])), image
        assert image.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert all(secret in json.dumps(b) for b in emu.bodies())  # the workers had the secret
    assert secret not in Path(result.results).read_text()
    leaks = [p for d in [tmp_path, *cluster.session_dirs()] for p in Path(d).rglob("*")
             if p.is_file() and not p.is_symlink() and _contains(p, secret.encode())]
    assert leaks == []  # not in the run store, results, Ray's logs or its spilled objects

    shared = tmp_path / "shared"  # --artifacts-dir: workers write there, nothing comes back as bytes
    shared.mkdir()
    again = ray_run(tmp_path, emu, cluster, data, flow=flow, artifacts_dir=shared)
    assert again.status == "succeeded", again.error
    for r in lines(again.results):
        image = Path(r["outputs"]["image"])
        assert image.is_relative_to(shared / again.run_id / "rows" / str(r["row"])), image
        assert image.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert not (again.run_dir / "rows").exists()


def _contains(path: Path, needle: bytes) -> bool:
    try:
        return needle in path.read_bytes()
    except OSError:
        return False
