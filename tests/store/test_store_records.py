"""The run store: what a run writes to flowrun.db, the readable export beside it, dead
processes read as interrupted, and the history commands."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from flowkit import record, run_flow, write
from storekit import db_rows, resume_here, step_keys

from flowrun.cli import main
from flowrun.dead_runs import settle
from flowrun.errors import UsageError
from flowrun.run_owner import OwnerLock
from flowrun.history import runs_view
from flowrun.rundb import RunDB, process_token

TOOLS = """
def lookup(name: str) -> str:
    \"\"\"Look a name up.\"\"\"
    return "found " + name
"""

TOOL_FLOW = """
    name: store-tools
    inputs: {who: {type: string, default: Ada}}
    tools:
      lookup: {python: tools:lookup}
    steps:
      ask:
        input: "Find {{ inputs.who }}"
        tools: [lookup]
        tool_choice: lookup
      each:
        for_each: [x, y, z]
        input: "Say {{ item }} after {{ steps.ask.text }}"
    outputs:
      answer: "{{ steps.ask.text }}"
"""


def test_run_writes_every_step_item_turn_and_call_to_the_store(tmp_path, emu):
    write(tmp_path / "tools.py", TOOLS)
    result = run_flow(tmp_path, emu, TOOL_FLOW)
    assert result.status == "succeeded"
    runs = tmp_path / "runs"
    (run,) = db_rows(runs, "SELECT * FROM runs")
    assert (run["id"], run["flow_name"], run["status"], run["attempt"]) == (
        result.run_id, "store-tools", "succeeded", 1)
    assert run["pid"] == os.getpid() and run["steps_ok"] == 2 and run["tokens"] > 0
    assert json.loads(run["inputs"]) == {"who": "Ada"}
    assert json.loads(run["provider"])["kind"] == "emulator"
    steps = {r["key"]: r for r in db_rows(runs, "SELECT * FROM steps")}
    assert sorted(steps) == ["ask", "each", "each.0", "each.1", "each.2"]
    assert steps["each.1"]["idx"] == 1 and steps["each.1"]["status"] == "succeeded"
    assert steps["ask"]["text"] == result.steps["ask"].result.text
    assert steps["ask"]["digest"].startswith("sha256:") and steps["ask"]["cached"] == 0
    turns = db_rows(runs, "SELECT * FROM turns WHERE key='ask' ORDER BY turn")
    assert [(t["turn"], t["status"]) for t in turns] == [(0, "done"), (1, "done")]
    assert turns[1]["response_id"] == result.steps["ask"].response_id
    assert json.loads(turns[0]["follow_up"])[0]["type"] == "function_call_output"
    (call,) = db_rows(runs, "SELECT * FROM tool_calls")
    assert (call["key"], call["name"], call["status"], call["output"]) == ("ask", "lookup", "done", "found name")
    # the readable export is still there, with the attempt that did each step
    rec = record(result)
    assert rec["status"] == "succeeded" and rec["attempt"] == 1
    assert rec["steps"]["ask"]["run_attempt"] == 1
    assert [a["status"] for a in rec["attempts"]] == ["succeeded"]
    assert (result.run_dir / "responses" / "ask.1.json").is_file()


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def _as_kill9_leaves_it(db: RunDB, result, pid: int, token: str | None = None) -> None:
    """The store and record.json as ``kill -9`` leaves them: still ``running``."""
    db.conn.execute("UPDATE runs SET status='running', pid=?, start_token=?, ended=NULL", (pid, token))
    db.conn.execute("UPDATE attempts SET status='running'")
    db.conn.execute("UPDATE steps SET status='running'")
    rec = record(result)
    rec["status"] = rec["steps"]["a"]["status"] = "running"
    (result.run_dir / "record.json").write_text(json.dumps(rec))


def test_a_run_whose_process_died_reads_as_interrupted(tmp_path, emu):
    result = run_flow(tmp_path, emu, "name: dies\nsteps:\n  a: {input: hi}\n")
    runs = tmp_path / "runs"
    db = RunDB.at(runs)
    # a live process with the run's pid and start time, holding its owner lock: still
    # running, nothing settled, and a second process cannot run it
    _as_kill9_leaves_it(db, result, os.getpid(), process_token(os.getpid()))
    owner = OwnerLock(result.run_dir)
    assert owner.acquire()
    assert runs_view(db, None, None, 5)[0]["status"] == "running"
    assert settle(db) == [] and record(result)["status"] == "running"
    assert runs_view(db, None, "interrupted", 5) == []
    with pytest.raises(UsageError, match="still running"):
        resume_here(emu, runs)
    # the pid of a live process that started later is not the run's process
    db.conn.execute("UPDATE runs SET start_token='1'")
    assert runs_view(db, None, None, 5)[0]["status"] == "interrupted"
    # nor is a live pid (its start time unknown, as without /proc) whose lock is free
    db.conn.execute("UPDATE runs SET start_token=NULL")
    assert runs_view(db, None, None, 5)[0]["status"] == "running"
    owner.release()
    assert runs_view(db, None, None, 5)[0]["status"] == "interrupted"
    # its process gone: `flowrun runs` shows it interrupted, and records it so
    _as_kill9_leaves_it(db, result, _dead_pid())
    cli = CliRunner()
    out = cli.invoke(main, ["runs", "--run-dir", str(runs), "--json"])
    assert out.exit_code == 0, out.output
    assert [r["status"] for r in json.loads(out.output)] == ["interrupted"]
    assert db_rows(runs, "SELECT status FROM runs") == [{"status": "interrupted"}]
    assert db_rows(runs, "SELECT status FROM attempts") == [{"status": "interrupted"}]
    rec = record(result)
    assert rec["status"] == "interrupted" and rec["steps"]["a"]["status"] == "interrupted"
    assert "died" in rec["error"] and [a["status"] for a in rec["attempts"]] == ["interrupted"]
    assert [r["run_id"] for r in runs_view(db, None, "interrupted", 5)] == [result.run_id]
    assert "interrupted" in cli.invoke(main, ["runs", "--run-dir", str(runs)]).output
    # `flowrun show` settles the run it shows
    _as_kill9_leaves_it(db, result, _dead_pid())
    shown = json.loads(cli.invoke(main, ["show", result.run_id, "--run-dir", str(runs), "--json"]).output)
    assert shown["status"] == "interrupted" and shown["steps"]["a"]["status"] == "interrupted"
    assert shown["attempts"][0]["status"] == "interrupted"
    assert record(result)["status"] == "interrupted"
    # two resumes at once: the one that comes second finds the owner lock taken
    _as_kill9_leaves_it(db, result, _dead_pid())
    assert owner.acquire()
    with pytest.raises(UsageError, match="being run by another process"):
        resume_here(emu, runs)
    owner.release()
    assert resume_here(emu, runs).status == "succeeded"
    db.close()


def test_runs_lists_ten_thousand_runs_fast(tmp_path):
    runs = tmp_path / "runs"
    db = RunDB.at(runs)
    now = time.time()
    rows = [(f"run-{i:05d}", f"flow{i % 7}", ("succeeded", "failed")[i % 3 == 0], now - 10_000 + i,
             now - 10_000 + i + 2, 2.0, i % 5, i % 3 == 0, 100 + i) for i in range(10_000)]
    with db.conn:
        db.conn.execute("BEGIN")
        db.conn.executemany(
            "INSERT INTO runs (id, flow_name, status, started, ended, duration, steps_ok,"
            " steps_failed, tokens) VALUES (?,?,?,?,?,?,?,?,?)", rows)
        db.conn.execute("COMMIT")
    latest = runs_view(db, None, None, 20)
    of_flow = runs_view(db, "flow3", "failed", 10)
    # fast whatever the history holds: each listing reads an index in order and stops at
    # the limit - no scan of the table, no sort (benchmarks/bench_store.py times it)
    for flow, status in [(None, None), ("flow3", None), ("flow3", "failed"), (None, "failed")]:
        sql, args = db.list_query(flow, status, 20)
        plan = " | ".join(r[3] for r in db.conn.execute("EXPLAIN QUERY PLAN " + sql, args))
        assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, (flow, status, plan)
    db.close()
    assert [r["run_id"] for r in latest[:2]] == ["run-09999", "run-09998"]
    assert len(of_flow) == 10 and all(r["flow"] == "flow3" and r["status"] == "failed" for r in of_flow)
    assert of_flow[0]["run_id"] == "run-09999" and of_flow[1]["run_id"] == "run-09978"
    out = CliRunner().invoke(main, ["runs", "--run-dir", str(runs), "--limit", "3"])
    lines = out.output.splitlines()
    assert out.exit_code == 0 and len(lines) == 4 and lines[1].startswith("run-09999")
    assert "STEPS" in lines[0] and "4 ok" in lines[1]


def test_show_a_step_with_secrets_masked(tmp_path, emu, monkeypatch):
    token = "sk-live-" + "9" * 24
    monkeypatch.setenv("API_TOKEN", token)
    write(tmp_path / "tools.py", TOOLS)
    result = run_flow(tmp_path, emu, """
        name: secretive
        secrets: [API_TOKEN]
        tools:
          lookup: {python: tools:lookup}
        steps:
          ask:
            input: "Use token {{ secrets.API_TOKEN }} to find it"
            tools: [lookup]
            tool_choice: lookup
    """)
    assert result.status == "succeeded"
    runs = tmp_path / "runs"
    cli = CliRunner()
    out = cli.invoke(main, ["show", "last", "ask", "--run-dir", str(runs), "--json"])
    assert out.exit_code == 0, out.output
    view = json.loads(out.output)
    assert view["turns"][0]["request"]["input"].startswith("Use token ")
    assert [c["name"] for c in view["tool_calls"]] == ["lookup"]
    text = cli.invoke(main, ["show", "last", "ask", "--run-dir", str(runs)]).output
    assert "turn 1: done" in text and "call lookup" in text
    everything = out.output + text + (runs / "flowrun.db").read_bytes().decode("latin-1")
    for wal in runs.glob("flowrun.db-wal"):
        everything += wal.read_bytes().decode("latin-1")
    assert token not in everything and token[:12] not in everything
    by_dir = cli.invoke(main, ["show", str(result.run_dir), "--json"])  # a run directory
    assert by_dir.exit_code == 0 and json.loads(by_dir.output)["run_id"] == result.run_id
    missing = cli.invoke(main, ["show", "last", "nope", "--run-dir", str(runs)])
    assert missing.exit_code == 2 and "no step 'nope'" in missing.output and "ask" in missing.output
    none = cli.invoke(main, ["runs", "--run-dir", str(tmp_path / "elsewhere")])
    assert none.exit_code == 2 and "no run store" in none.output and "Traceback" not in none.output


def _refuse_writes(runs, table: str, when: str) -> None:
    """A real SQLite failure on some writes: a trigger that aborts them as a full disk does."""
    conn = sqlite3.connect(runs / "flowrun.db")
    conn.execute(f"CREATE TRIGGER full_{table} BEFORE INSERT ON {table} WHEN {when}"
                 " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    conn.commit()
    conn.close()


def test_a_failing_store_write_fails_the_step_with_a_clear_error(tmp_path, emu):
    flow = """
        name: full-disk
        steps:
          a: {input: "Say hi"}
          b: {input: "Expand {{ steps.a.text }}"}
          c: {input: "Summarise {{ steps.b.text }}"}
          e: {for_each: [one, two], input: "Item {{ item }}", continue_on_error: true}
    """
    runs = tmp_path / "runs"
    run_flow(tmp_path, emu, "name: first\nsteps:\n  a: {input: hi}\n")  # the store exists
    _refuse_writes(runs, "steps", "NEW.key IN ('b', 'e.1') AND NEW.status = 'succeeded'")
    first = run_flow(tmp_path, emu, flow, max_concurrency=1)
    assert first.status == "failed"
    b = first.steps["b"]
    assert b.status == "failed" and b.error is not None
    assert "cannot write to the run store" in b.error and "saving step b" in b.error
    assert "database or disk is full" in b.error and "flowrun resume" in b.error
    item = first.steps["e"].items[1]
    assert item.status == "failed" and item.error_type == "StoreError" and "saving item e.1" in item.error
    assert first.error.startswith("step ") and "cannot write to the run store" in first.error
    assert first.steps["c"].status == "skipped"
    rec = record(first)
    assert rec["steps"]["b"]["status"] == "failed" and "disk is full" in rec["steps"]["b"]["error"]
    assert "saving item e.1" in rec["store_error"] or "saving step b" in rec["store_error"]
    # the disk has room again: resume re-runs what was not saved, and what depends on it
    conn = sqlite3.connect(runs / "flowrun.db")
    conn.execute("DROP TRIGGER full_steps")
    conn.commit()
    conn.close()
    emu.server.emulator.journal.clear()
    again = resume_here(emu, runs, first.run_id)
    assert again.status == "succeeded"
    # b's and e.1's answers were stored with their turns (only their step rows were not):
    # replayed without a request; c, which never ran, is the only request
    assert [step_keys(body) for body in emu.bodies()] == ["c"]
    assert again.steps["b"].result.text == b.result.text
    assert again.steps["e"].items[1].text == item.text
    assert db_rows(runs, "SELECT status FROM steps WHERE key IN ('b', 'e.1')") == [{"status": "succeeded"}] * 2


def test_a_run_the_store_cannot_record_stops_with_a_clear_error(tmp_path, emu):
    write(tmp_path / "flow.yaml", "name: full\nsteps:\n  a: {input: hi}\n")
    runs = tmp_path / "runs"
    RunDB.at(runs).close()
    _refuse_writes(runs, "runs", "1")
    out = CliRunner().invoke(main, ["run", str(tmp_path / "flow.yaml"), "--provider", "emulator",
                                    "--base-url", emu.base_url, "--run-dir", str(runs)])
    assert out.exit_code == 1, out.output
    assert "cannot write to the run store" in out.output and "starting the run" in out.output
    assert "database or disk is full" in out.output and "Traceback" not in out.output
    assert emu.bodies() == []  # nothing was sent that could not be recorded
