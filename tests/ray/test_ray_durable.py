"""Durable Ray runs: a worker process killed mid-run (SIGKILL to the actor's PID) has
its rows run again and every row lands once; a driver killed mid-run is finished by
``flowrun resume`` on Ray, without sending a finished row again."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from dataset_kit import csv_file, flow_file, lines, row_of, tickets
from raykit import ray_cli

from flowrun.resume import resume_run
from flowrun.rundb import RunDB

pytestmark = pytest.mark.slow  # a Ray cluster per module; every run connects to it


def _wait_for_lines(proc, results, n, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if results.exists() and len(results.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.02)
    raise AssertionError(f"fewer than {n} results in {timeout}s")


def _worker_pid(cluster, suffix=".w1", timeout=120):
    """The PID of a running worker actor of the (only) run, asked through Ray itself."""
    import ray

    ray.init(address=cluster.address, namespace="flowrun", logging_level="error", log_to_driver=False)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            names = [n for n in ray.util.list_named_actors() if n.endswith(suffix)]
            if names:
                return ray.get(ray.get_actor(names[0]).info.remote())["pid"]
            time.sleep(0.1)
        raise AssertionError("no worker actor")
    finally:
        ray.shutdown()


def test_a_killed_worker_has_its_rows_run_again_each_row_once(tmp_path, emu, cluster):
    emu.faults(latency_ms=60)
    flow = flow_file(tmp_path)
    data = csv_file(tmp_path / "tickets.csv", tickets(120))
    results = tmp_path / "out.jsonl"
    proc = ray_cli(tmp_path, emu, cluster, flow, data, results, "--workers", "2", "--max-concurrency", "4")
    try:
        pid = _worker_pid(cluster)
        _wait_for_lines(proc, results, 15)
        os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    result = json.loads(out)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert result["rows"] == {"total": 120, "succeeded": 120, "failed": 0, "skipped": 0, "reused": 0}
    assert result["engine"]["reruns"] >= 1  # rows in flight on the dead worker went again
    got = lines(results)
    assert sorted(r["row"] for r in got) == list(range(1, 121))  # every row exactly once
    assert all(r["status"] == "succeeded" for r in got)
    sent = [row_of(b) for b in emu.bodies("classify")]
    assert len(sent) > len(set(sent)) == 120  # some rows were sent twice, each written once
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the killed process is gone; a restarted one took its place
    db = RunDB.at(tmp_path / "runs", create=False)
    try:
        assert db._rows("SELECT count(*) AS n FROM dataset_rows")[0]["n"] == 120
    finally:
        db.close()


def test_resume_finishes_a_ray_run_whose_driver_was_killed(tmp_path, emu, cluster):
    emu.faults(latency_ms=40)
    flow = flow_file(tmp_path)
    data = csv_file(tmp_path / "tickets.csv", tickets(100))
    results = tmp_path / "out.jsonl"
    proc = ray_cli(tmp_path, emu, cluster, flow, data, results, "--workers", "2", "--max-concurrency", "2")
    try:
        _wait_for_lines(proc, results, 20)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    db = RunDB.at(tmp_path / "runs", create=False)
    try:
        done_before = {r["row"] for r in db._rows("SELECT row FROM dataset_rows WHERE status='succeeded'")}
    finally:
        db.close()
    assert 20 <= len(done_before) < 100
    resumed_at = len(emu.journal())

    result = resume_run("last", str(tmp_path / "runs"), (), None, "emulator", emu.base_url, True, None)

    assert result.status == "succeeded", result.error
    assert (result.total, result.succeeded, result.failed, result.reused) == (100, 100, 0, len(done_before))
    assert result.to_json()["engine"]["name"] == "ray"  # the rest ran on Ray, as the run started
    sent_after = {row_of(e["body"]) for e in emu.journal()[resumed_at:] if e["method"] == "POST"}
    assert sent_after == set(range(1, 101)) - done_before  # no finished row sent again
    assert sorted(r["row"] for r in lines(results)) == list(range(1, 101))
