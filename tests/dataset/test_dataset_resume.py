"""Resuming a dataset run: killed with SIGKILL mid-run, ``flowrun resume`` runs only the
rows that did not finish (no succeeded row is sent again), the results file ends with
every row once; ``--retry-failed`` re-runs the failed rows and only them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from dataset_kit import csv_file, flow_file, lines, row_of, run, tickets
from flowkit import cli_env

from flowrun.dataset.state import dataset_of
from flowrun.resume import resume_run
from flowrun.rundb import RunDB


def _resume(tmp_path, emu, **kw):
    return resume_run("last", str(tmp_path / "runs"), (), None, "emulator", emu.base_url, True, None,
                      **kw)


def test_killed_dataset_run_resumes_without_resending_a_succeeded_row(tmp_path, emu):
    emu.faults(latency_ms=25)
    flow = flow_file(tmp_path)
    data = csv_file(tmp_path / "tickets.csv", tickets(100))
    results = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowrun.cli", "run", str(flow), "--dataset", str(data), "--json",
         "--provider", "emulator", "--base-url", emu.base_url, "--max-concurrency", "4",
         "--results", str(results), "--run-dir", str(tmp_path / "runs")],
        cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if results.exists() and len(results.read_text().splitlines()) >= 20:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    db = RunDB.at(tmp_path / "runs", create=False)
    try:
        run_id = db.last_run()["id"]
        done_before = {r["row"] for r in db._rows("SELECT row FROM dataset_rows WHERE run_id=? AND "
                                                  "status='succeeded'", (run_id,))}
        assert dataset_of(db, run_id) is not None
    finally:
        db.close()
    assert 20 <= len(done_before) < 100
    resumed_at = len(emu.journal())

    result = _resume(tmp_path, emu)

    assert result.status == "succeeded", result.error
    assert (result.total, result.succeeded, result.failed, result.skipped) == (100, 100, 0, 0)
    assert result.reused == len(done_before)
    sent_after = [row_of(e["body"]) for e in emu.journal()[resumed_at:] if e["method"] == "POST"]
    assert not set(sent_after) & done_before  # no succeeded row was sent again
    assert set(sent_after) == set(range(1, 101)) - done_before
    out = lines(results)
    assert sorted(r["row"] for r in out) == list(range(1, 101))  # every row once
    assert all(r["status"] == "succeeded" for r in out)


def test_resume_keeps_failed_rows_unless_retry_failed(tmp_path, emu):
    rows = tickets(5)
    rows[2]["priority"] = "high"
    data = csv_file(tmp_path / "tickets.csv", rows)
    first = run(tmp_path, emu, data)
    assert (first.succeeded, first.failed) == (4, 1)
    before = len(emu.journal())

    again = _resume(tmp_path, emu)  # nothing unfinished: nothing is sent
    assert (again.succeeded, again.failed, again.reused) == (4, 1, 5)
    assert len(emu.journal()) == before

    rows[2]["priority"] = 2  # fix the row... the dataset changed, so the resume says so
    csv_file(data, rows)
    from flowrun.errors import UsageError
    import pytest

    with pytest.raises(UsageError, match="changed since run"):
        _resume(tmp_path, emu, retry_failed=True)
    fixed = _resume(tmp_path, emu, retry_failed=True, allow_changes=True)
    assert (fixed.status, fixed.succeeded, fixed.failed, fixed.reused) == ("succeeded", 5, 0, 4)
    assert [row_of(e["body"]) for e in emu.journal()[before:] if e["method"] == "POST"] == [3, 3]
    out = lines(fixed.results)
    assert sorted(r["row"] for r in out) == [1, 2, 3, 4, 5]
    assert json.dumps(out).count('"failed"') == 0
