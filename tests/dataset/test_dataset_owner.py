"""A dataset run holds its run's owner lock (:mod:`flowrun.run_owner`) for its life, as a
single run does: killed with SIGKILL, it reads as interrupted by the lock (also where its
pid now names a live process); a resume of it is refused while another process owns it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner
from dataset_kit import csv_file, flow_file, lines, tickets
from flowkit import cli_env

from flowrun.cli import main
from flowrun.rundb import RunDB
from flowrun.run_owner import OwnerLock, held


def _flowrun(args: list[str], tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flowrun.cli", *args], cwd=tmp_path, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _until(predicate, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not predicate():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def _posts(emu) -> int:
    return sum(1 for e in emu.journal() if e["method"] == "POST")


def test_killed_dataset_run_is_interrupted_by_its_lock_and_a_second_resume_is_refused(tmp_path, emu):
    emu.faults(latency_ms=25)
    flow = flow_file(tmp_path)
    data = csv_file(tmp_path / "tickets.csv", tickets(60))
    results = tmp_path / "out.jsonl"
    runs = tmp_path / "runs"
    endpoint = ["--provider", "emulator", "--base-url", emu.base_url, "--json", "--run-dir", str(runs)]
    proc = _flowrun(["run", str(flow), "--dataset", str(data), "--max-concurrency", "4",
                     "--results", str(results), *endpoint], tmp_path)
    try:
        _until(lambda: results.exists() and len(results.read_text().splitlines()) >= 5, proc)
        (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
        assert held(run_dir) is True  # the live run owns its run
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert held(run_dir) is False  # the kernel dropped it with the process
    cli = CliRunner()

    # a second process owns the run (it took the lock, its row not written yet): refused
    other = OwnerLock(run_dir)
    assert other.acquire(wait=0)
    before = _posts(emu)
    out = cli.invoke(main, ["resume", "last", *endpoint])
    other.release()
    assert out.exit_code == 2, out.output
    assert "being run by another process" in out.output
    assert _posts(emu) == before  # nothing was sent

    # the run's pid now names a live process (reused; its start time unknown, as without
    # /proc): the free lock still tells the run is dead
    db = RunDB.at(runs, create=False)
    try:
        db.conn.execute("UPDATE runs SET pid=?, start_token=NULL", (os.getpid(),))
    finally:
        db.close()
    out = cli.invoke(main, ["runs", "--run-dir", str(runs), "--json"])
    assert out.exit_code == 0, out.output
    assert [r["status"] for r in json.loads(out.output)] == ["interrupted"]
    out = cli.invoke(main, ["show", "last", "--json", "--run-dir", str(runs)])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["status"] == "interrupted"

    # two resumes at once: the second is refused while the first runs, the first finishes
    emu.faults(latency_ms=100)
    first = _flowrun(["resume", "last", *endpoint], tmp_path)
    try:
        _until(lambda: held(run_dir) is True, first)
        second = cli.invoke(main, ["resume", "last", *endpoint])
        assert second.exit_code == 2, second.output
        assert "is being run by another process" in second.output or "is still running" in second.output
        assert first.poll() is None  # the refusal was while the first one ran
        emu.faults(latency_ms=0)
        stdout, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(30)
    assert first.returncode == 0, stderr.decode()
    assert json.loads(stdout)["status"] == "succeeded"
    assert sorted(r["row"] for r in lines(results)) == list(range(1, 61))  # every row once
    assert held(run_dir) is False
