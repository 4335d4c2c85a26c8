"""Batch runs that outlive their process: killed with SIGKILL during a batch, ``flowrun
resume`` re-attaches to the batch (no second create for that layer) and finishes;
Ctrl-C cancels the running batches, or with ``--detach`` leaves them running and says how
to resume."""

from __future__ import annotations

import json
import os
import sqlite3
import signal
import subprocess
import sys
import time

from batch_kit import ROUNDS, dataset, flow_file, lines, posts, run
from flowkit import cli_env, flowrun_cli

from flowrun.batch.state import jobs
from flowrun.emulator.batch_settings import set_batch_settings
from flowrun.resume import resume_run
from flowrun.rundb import RunDB


def _start(tmp_path, emu, data, *extra):
    flow = flow_file(tmp_path)
    return subprocess.Popen(
        [sys.executable, "-m", "flowrun.cli", "run", str(flow), "--dataset", str(data), "--batch", "--json",
         "--provider", "emulator", "--base-url", emu.base_url, "--results", str(tmp_path / "out.jsonl"),
         "--run-dir", str(tmp_path / "runs"), *extra],
        cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _jobs(tmp_path):
    db_path = tmp_path / "runs" / "flowrun.db"
    if not db_path.exists():
        return None, []
    db = RunDB.at(tmp_path / "runs", create=False)
    try:
        last = db.last_run()
        return (last["id"], jobs(db, last["id"])) if last else (None, [])
    except sqlite3.OperationalError:  # the run is creating its tables
        return None, []
    finally:
        db.close()


def _wait_for_batch(tmp_path, proc, n=1):
    """Until the run has created ``n`` batches (their ids in the store)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run_id, found = _jobs(tmp_path)
        if len([j for j in found if j["batch_id"]]) >= n:
            return run_id, found
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    raise AssertionError("no batch was created")


def _resume(tmp_path, emu):
    return resume_run("last", str(tmp_path / "runs"), (), None, "emulator", emu.base_url, True, None)


def _expected(tmp_path, emu, data):
    """The results of the same dataset run without --batch (the emulator is deterministic)."""
    local = run(tmp_path, emu, data, batch=False, results=tmp_path / "local.jsonl", runs="local")
    assert local.status == "succeeded", local.error
    return lines(tmp_path / "local.jsonl")


def test_killed_during_a_batch_resume_reattaches_without_creating_it_again(tmp_path, emu):
    data = dataset(tmp_path / "tickets.jsonl", 12)
    expected = _expected(tmp_path, emu, data)
    emu.reset()
    set_batch_settings(emu.server.emulator, pause_after=3)  # the first batch stalls after 3 lines
    proc = _start(tmp_path, emu, data)
    try:
        run_id, found = _wait_for_batch(tmp_path, proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert len(posts(emu, "/v1/batches")) == 1
    first = found[0]
    assert (first["layer"], first["round"], first["lines"]) == (1, 1, 12)
    set_batch_settings(emu.server.emulator, pause_after=None)  # the service goes on meanwhile
    resumed_at = len(emu.journal())

    result = _resume(tmp_path, emu)

    assert result.status == "succeeded", result.error
    assert (result.total, result.succeeded, result.failed) == (12, 12, 0)
    after = emu.journal()[resumed_at:]
    created = [e for e in after if e["method"] == "POST" and e["path"] == "/v1/batches"]
    assert len(created) == ROUNDS - 1  # layer 1 round 1 was re-attached, not created again
    assert all(e["body"]["input_file_id"] != first["file_id"] for e in created)
    assert any(e["method"] == "GET" and e["path"] == f"/v1/batches/{first['batch_id']}" for e in after)
    assert result.batches == {"created": ROUNDS - 1, "re_attached": 1, "left_running": []}
    out = lines(tmp_path / "out.jsonl")
    assert sorted(out) == list(range(1, 13))
    assert {n: r["outputs"] for n, r in out.items()} == {n: r["outputs"] for n, r in expected.items()}
    _, stored = _jobs(tmp_path)
    assert [j["batch_id"] for j in stored].count(first["batch_id"]) == 1
    assert len(stored) == ROUNDS
    shown = json.loads(flowrun_cli("show", run_id, "--json", "--run-dir", str(tmp_path / "runs")).stdout)
    assert [b["batch_id"] for b in shown["batches"]] == [j["batch_id"] for j in stored]
    assert shown["batches"][0]["status"] == "completed" and shown["batches"][0]["counts"]["completed"] == 12
    assert len(shown["attempts"]) == 2


def test_ctrl_c_cancels_the_running_batch_and_resume_sends_its_lines_again(tmp_path, emu):
    data = dataset(tmp_path / "tickets.jsonl", 6)
    set_batch_settings(emu.server.emulator, pause_after=2)
    proc = _start(tmp_path, emu, data)
    try:
        run_id, found = _wait_for_batch(tmp_path, proc)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    batch_id = found[0]["batch_id"]
    assert f"/v1/batches/{batch_id}/cancel" in emu.paths("POST")
    assert f"cancelled batch {batch_id}" in stdout  # the --json summary's error
    set_batch_settings(emu.server.emulator, pause_after=None)
    with emu.sdk() as sdk:
        assert sdk.batches.retrieve(batch_id).status in ("cancelling", "cancelled")

    result = _resume(tmp_path, emu)

    assert result.status == "succeeded", result.error
    assert result.succeeded == 6
    assert result.batches["re_attached"] == 0 and result.batches["created"] == ROUNDS


def test_detach_leaves_the_batch_running_and_resume_picks_it_up(tmp_path, emu):
    data = dataset(tmp_path / "tickets.jsonl", 6)
    set_batch_settings(emu.server.emulator, pause_after=2)
    proc = _start(tmp_path, emu, data, "--detach")
    try:
        run_id, found = _wait_for_batch(tmp_path, proc)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    batch_id = found[0]["batch_id"]
    assert not [p for p in emu.paths("POST") if p.endswith("/cancel")]
    assert f"detached from batch {batch_id} (still running)" in stdout
    assert f"flowrun resume {run_id}" in stdout
    with emu.sdk() as sdk:
        assert sdk.batches.retrieve(batch_id).status == "in_progress"
    set_batch_settings(emu.server.emulator, pause_after=None)

    result = _resume(tmp_path, emu)

    assert result.status == "succeeded", result.error
    assert result.batches["re_attached"] == 1 and result.batches["created"] == ROUNDS - 1
    assert len(posts(emu, "/v1/batches")) == ROUNDS


def test_killed_while_creating_the_batch_resume_never_makes_a_second_one(tmp_path, emu):
    """Killed after the upload was recorded and while ``POST /batches`` was on its way:
    the resumed run looks for a batch of that file before it creates one."""
    data = dataset(tmp_path / "tickets.jsonl", 4)
    emu.faults(latency_ms=400)  # every request takes 0.4 s: the create is in flight a while
    proc = _start(tmp_path, emu, data)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run_id, found = _jobs(tmp_path)
            if found:
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.01)
        assert found and found[0]["batch_id"] is None  # uploaded and recorded, not created yet
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
    file_id = found[0]["file_id"]
    emu.faults(latency_ms=0)
    time.sleep(0.5)  # the create that was in flight lands (or not) on the service

    result = _resume(tmp_path, emu)

    assert result.status == "succeeded", result.error
    assert result.succeeded == 4
    with emu.sdk() as sdk:
        made = [b for b in sdk.batches.list(limit=100).data if b.input_file_id == file_id]
    assert len(made) == 1  # one batch for that file, whether the killed run's create landed or not
    assert "/v1/batches" in emu.paths("GET")  # the resumed run looked before it created
    _, stored = _jobs(tmp_path)
    assert stored[0]["file_id"] == file_id and stored[0]["batch_id"] == made[0].id


def test_a_batch_the_service_no_longer_has_is_sent_again(tmp_path):
    """``--provider emulator`` runs the emulator in-process: a detached batch dies with the
    process, so the resumed run (a new emulator) finds it gone (404) and sends its lines
    in a new batch."""
    data = dataset(tmp_path / "tickets.jsonl", 4)
    flow = flow_file(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowrun.cli", "run", str(flow), "--dataset", str(data), "--batch", "--detach",
         "--json", "--provider", "emulator", "--results", str(tmp_path / "out.jsonl"),
         "--run-dir", str(tmp_path / "runs")],
        cwd=tmp_path, env=cli_env(FLOWRUN_EMULATOR_BATCH_DELAY_MS="500"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        run_id, found = _wait_for_batch(tmp_path, proc)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    gone = found[0]["batch_id"]

    result = resume_run("last", str(tmp_path / "runs"), (), None, None, None, True, None)

    assert result.status == "succeeded", result.error
    assert result.succeeded == 4
    assert result.batches["re_attached"] == 0 and result.batches["created"] == ROUNDS
    _, stored = _jobs(tmp_path)
    first = next(j for j in stored if j["batch_id"] == gone)
    assert first["status"] == "gone" and "404" in first["error"]
    assert sorted(lines(tmp_path / "out.jsonl")) == [1, 2, 3, 4]
