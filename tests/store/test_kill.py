"""kill -9 at many chosen run-store events (:mod:`flowrun.crash_points`), then ``flowrun
resume``: the store stays whole, completed steps and turns are never requested again,
completed tool calls never run again, and the outputs equal an uninterrupted run's.
Counted by the emulator's journal."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from flowkit import cli_env, write
from storekit import Zygote, db_rows, integrity, resume_here, step_keys, wait_until

from flowrun.cli import main

CONCURRENCY = "3"
FAN = ["a", "b", "c", "d", "e", "f"]

TOOLS = """
import os, pathlib

def lookup(name: str, tag: str) -> str:
    \"\"\"Look something up.\"\"\"
    with open(pathlib.Path(__file__).parent / "calls.log", "a") as f:
        f.write(os.environ.get("SEGMENT", "?") + " " + tag + "\\n")
    return "found " + tag
"""


def durable_flow() -> str:
    """30 steps: three chains of simple steps, a for_each of tool loops, a tool loop, a
    background step and a chained step."""
    steps = []
    for i in range(1, 21):
        dep = f" after {{{{ steps.s{i - 3:02d}.text | length }}}}" if i > 3 else ""
        steps.append(f"  s{i:02d}: {{input: \"Part {i} of {{{{ inputs.topic }}}}{dep}\"}}")
    steps += [
        "  fan:",
        f"    for_each: {json.dumps(FAN)}",
        "    input: \"Look up {{ item }}\"",
        "    tools: [{python: tools:lookup, bind: {tag: \"{{ item }}\"}}]",
        "    tool_choice: lookup",
        "  single: {input: \"Look up once\", tools: [lookup_one], tool_choice: lookup_one}",
        "  bg:",
        "    background: true",
        "    poll_interval: 0.05",
        "    input: \"Think about {{ steps.s02.text }}\"",
        "  chained: {continue: s05, input: \"Go on\"}",
    ]
    for i in range(21, 27):
        steps.append(f"  s{i}: {{input: \"Wrap {i}: {{{{ steps.fan[{(i - 21) % 6}].text }}}} / {{{{ steps.bg.text | length }}}}\"}}")
    outputs = ", ".join(f"steps.{s}.text" for s in ["s20", "single", "bg", "chained", "s26"])
    return "\n".join([
        "name: durable",
        "inputs: {topic: {type: string, default: kites}}",
        "tools:",
        "  lookup_one: {python: tools:lookup, bind: {tag: single}}",
        "steps:", *steps,
        "outputs:",
        f"  all: \"{{{{ [{outputs}] | join(' | ') }}}}\"",
        "  fan: \"{{ steps.fan | map(attribute='text') | join(' | ') }}\"",
        "",
    ])


def snapshot(runs: Path) -> dict:
    """What the store says is done: succeeded steps (with their text), answered and
    pending turns, and the step keys whose tool call returned."""
    steps = {r["key"]: r["text"] for r in db_rows(runs, "SELECT key, text FROM steps WHERE status='succeeded'")}
    answered: dict[str, set[int]] = {}
    pending: dict[str, set[int]] = {}
    for r in db_rows(runs, "SELECT key, turn, status FROM turns"):
        (pending if r["status"] == "pending" else answered).setdefault(r["key"], set()).add(r["turn"])
    calls = {r["key"] for r in db_rows(runs, "SELECT key FROM tool_calls WHERE status='done'")}
    return {"steps": steps, "answered": answered, "pending": pending, "calls": calls}


def progress(snap: dict) -> int:
    return len(snap["steps"]) + sum(map(len, snap["answered"].values())) + sum(map(len, snap["pending"].values()))


def tag_key(tag: str) -> str:
    return "single" if tag == "single" else f"fan.{FAN.index(tag)}"


def check_segment(before: dict, after: dict, posts: list[str], baseline: Counter, why: str) -> None:
    """The requests of one attempt, against what the store held when it started."""
    for key, n in Counter(posts).items():
        assert key not in before["steps"], f"{why}: {key} was complete, yet requested again"
        done = len(before["answered"].get(key, ())) + len(before["pending"].get(key, ()))
        assert n <= baseline[key] - done, f"{why}: {key}: {n} requests with {done} of {baseline[key]} turns stored"
    for key, text in before["steps"].items():
        assert after["steps"].get(key) == text, f"{why}: completed step {key} changed or vanished"
    recorded = sum(len(after["answered"].get(k, set()) - before["answered"].get(k, set())) for k in after["answered"])
    recorded += sum(len(after["pending"].get(k, set()) - before["pending"].get(k, set()) - after["answered"].get(k, set()))
                    for k in after["pending"])
    lost = len(posts) - recorded
    assert lost <= int(CONCURRENCY), f"{why}: {lost} requests lost; at most the ones in flight may be"


def run_argv(flow: Path, runs: Path, url: str) -> list[str]:
    return ["run", str(flow), "--provider", "emulator", "--base-url", url, "--json",
            "--run-dir", str(runs), "--max-concurrency", CONCURRENCY]


def resume_argv(runs: Path, url: str) -> list[str]:
    return ["resume", "last", "--provider", "emulator", "--base-url", url, "--json",
            "--run-dir", str(runs), "--max-concurrency", CONCURRENCY]


@pytest.fixture
def zygote():
    z = Zygote()
    yield z
    z.close()


# Where each attempt is killed: EVENT:N:PHASE of flowrun.crash_points (the N-th store event
# of that kind in the attempt's process; before it, inside its transaction, after its
# commit). The tool-loop points come first, while tool calls remain; the last kill lands
# inside the transaction that ends the run, after every step completed.
KILL_POINTS = [
    "call_start:1:after",   # mid tool loop: a call started, its output not stored yet
    "call:1:after",         # a call returned and was stored; its turn not finished
    "turn:1:after",         # a step started: its first model turn stored
    "call_start:1:before",  # a turn answered with a tool call, the call not started
    "item:1:inside",        # during a write transaction: an item's row not committed
    "item:1:after",         # between item commits
    "item:2:inside",
    "export:1:inside",      # during the record export (the new file not renamed yet)
    "run:1:inside",         # inside the resume's own start (its attempt not recorded)
    "step:1:inside",        # during a step's write transaction
    "turn_done:1:before",   # a model turn answered, its end not stored
    "checkpoint:2:after",
    "step:1:after",
    "turn_done:1:inside",
    "run:1:after",          # the resume recorded its attempt, nothing else yet
    "step:2:inside",
    "export:2:inside",
    "turn_done:2:after",
    "step:1:inside",
    "end:1:inside",         # the run's end: every step done, the status not committed
]
KILLS = len(KILL_POINTS)
FALLBACK = "end:1:before"  # should the work run out before a point is reached


def store_rows(runs: Path) -> dict[str, tuple]:
    """Every step and item row: key -> (status, attempt, text)."""
    return {r["key"]: (r["status"], r["attempt"], r["text"])
            for r in db_rows(runs, "SELECT key, status, attempt, text FROM steps")}


def check_point(hit: dict, runs: Path, rows_before: dict, rows_after: dict, attempts_before: int,
                why: str) -> None:
    """What a kill at this point must leave: a transaction in flight left nothing, a
    committed one is all there, an export in flight left the old record.json whole."""
    event, phase, key = hit["event"], hit["phase"], hit["detail"]
    attempts = len(db_rows(runs, "SELECT n FROM attempts"))
    if event in ("step", "item"):
        if phase == "inside":
            assert rows_after.get(key) == rows_before.get(key), f"{why}: {key} half-written"
        elif phase == "after":
            assert rows_after.get(key) not in (None, rows_before.get(key)), f"{why}: {key} lost"
    if event == "run":
        expect = attempts_before if phase != "after" else attempts_before + 1
        assert attempts == expect, f"{why}: {attempts} attempts recorded, {expect} expected"
    else:
        assert attempts == attempts_before + 1, f"{why}: the attempt was not recorded"
    if event == "end" and phase == "inside":
        (run,) = db_rows(runs, "SELECT status FROM runs")
        assert run["status"] == "running", f"{why}: the end of the run half-written"
        assert all(r[0] == "succeeded" for r in rows_after.values()), why
    records = list(runs.glob("*/record.json"))
    for rec in records:
        json.loads(rec.read_text())  # never torn
    if event == "export" and phase == "inside":
        (tmp,) = runs.glob("*/record.json.*.tmp")
        assert json.loads(tmp.read_text())["run_id"] == tmp.parent.name, why


def check_interrupted(runs: Path, why: str) -> None:
    """After the kill: ``flowrun runs`` / ``show`` and record.json say interrupted."""
    cli = CliRunner()
    out = cli.invoke(main, ["runs", "--run-dir", str(runs), "--json"])
    assert out.exit_code == 0, out.output
    if not json.loads(out.output):
        return  # killed before the run was recorded at all
    assert [r["status"] for r in json.loads(out.output)] == ["interrupted"], why
    shown = json.loads(cli.invoke(main, ["show", "last", "--run-dir", str(runs), "--json"]).output)
    assert shown["status"] == "interrupted" and shown["attempts"][-1]["status"] == "interrupted", why
    assert "running" not in {s["status"] for s in shown["steps"].values()}, why
    for rec in runs.glob("*/record.json"):
        assert json.loads(rec.read_text())["status"] == "interrupted", why


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_kill9_at_store_events_then_resume(tmp_path, emu, zygote):
    """20 kill -9s, each at a chosen store event (flowrun.crash_points), each followed by
    a resume: no torn state, completed work never requested or run again, and the final
    outputs equal an uninterrupted run's."""
    emu.faults("", latency_ms=10)
    for d in ("base", "work"):
        write(tmp_path / d / "flow.yaml", durable_flow())
        write(tmp_path / d / "tools.py", TOOLS)

    # the uninterrupted run
    base = tmp_path / "base"
    pid = zygote.start(run_argv(base / "flow.yaml", base / "runs", emu.base_url), base,
                       base / "out.json", {"SEGMENT": "base"})
    assert zygote.wait(pid) == 0, (base / "out.json.err").read_text()
    expected = json.loads((base / "out.json").read_text())
    assert expected["status"] == "succeeded" and len(expected["steps"]) == 30
    baseline = Counter(step_keys(b) for b in emu.bodies())
    assert baseline["fan.0"] == 2 and baseline["single"] == 2 and sum(baseline.values()) == 42

    work = tmp_path / "work"
    runs = work / "runs"
    ready = tmp_path / "paused.json"
    segment_of: dict[str, dict] = {}
    hits: list[str] = []
    before = snapshot(runs)
    attempts_before = 0
    for kill, point in enumerate(KILL_POINTS):
        why = f"kill {kill + 1} at {point}"
        seen = len(emu.journal())
        rows_before = store_rows(runs)
        segment_of[str(kill)] = before
        ready.unlink(missing_ok=True)
        env = {"SEGMENT": str(kill), "FLOWRUN_TEST_PAUSE_READY": str(ready),
               "FLOWRUN_TEST_PAUSE_AT": point if point == FALLBACK or point.startswith("end:")
               else f"{point},{FALLBACK}"}
        if kill == 0:  # the real command line, as a user runs it
            proc = subprocess.Popen([sys.executable, "-m", "flowrun.cli",
                                     *run_argv(work / "flow.yaml", runs, emu.base_url)],
                                    cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env=cli_env(**env))
            wait_until(lambda: ready.exists() or proc.poll() is not None, timeout=60)
            proc.kill()
            _, err = proc.communicate()
            assert proc.returncode == -9, f"{why}: the run ended by itself: {err[-2000:]}"
        else:
            pid = zygote.start(resume_argv(runs, emu.base_url), work, work / "out.json", env)
            ended = None
            try:
                wait_until(lambda: ready.exists() or (ended := zygote.poll(pid)) is not None, timeout=60)
            finally:
                code = ended if ended is not None else zygote.kill9(pid)
            assert code == -9, f"{why}: the run ended by itself ({code}): " + \
                (work / "out.json.err").read_text()[-2000:]
        hit = json.loads(ready.read_text())
        hits.append(f"{hit['event']}:{hit['n']}:{hit['phase']}")
        assert integrity(runs) == "ok", why
        after = snapshot(runs)
        rows_after = store_rows(runs)
        check_point(hit, runs, rows_before, rows_after, attempts_before, why)
        posts = [step_keys(e["body"]) for e in emu.journal()[seen:]
                 if e["method"] == "POST" and e["path"].endswith("/responses")
                 and e["body"] is not None]  # None: a body cut off by the kill (answered 400)
        check_segment(before, after, posts, baseline, why)
        check_interrupted(runs, why)
        attempts_before = len(db_rows(runs, "SELECT n FROM attempts"))
        before = after

    # every point was reached where it was meant to be (none fell back to the run's end)
    assert hits == KILL_POINTS, "\n".join(f"{a} -> {b}" for a, b in zip(KILL_POINTS, hits))

    # the last attempt: `flowrun resume last`, as a user runs it
    seen = len(emu.journal())
    proc = subprocess.run([sys.executable, "-m", "flowrun.cli", *resume_argv(runs, emu.base_url)],
                          cwd=work, capture_output=True, text=True, timeout=120,
                          env=cli_env(SEGMENT=str(KILLS)))
    assert proc.returncode == 0, proc.stderr
    final = json.loads(proc.stdout)
    assert [e for e in emu.journal()[seen:] if e["method"] == "POST"] == []  # all was done
    assert final["status"] == "succeeded"
    assert final["outputs"] == expected["outputs"]
    assert {k: v["status"] for k, v in final["steps"].items()} == {k: "succeeded" for k in expected["steps"]}
    # completed work was never requested again: every request of the whole soak, counted
    posts = sum(1 for e in emu.journal() if e["method"] == "POST" and e["path"].endswith("/responses"))
    soak = posts - sum(baseline.values())  # the uninterrupted run's are the first
    assert sum(baseline.values()) <= soak <= sum(baseline.values()) + KILLS * int(CONCURRENCY)
    # tool calls: each ran once, except one in flight at a kill (run again on resume)
    for line in (work / "calls.log").read_text().splitlines():
        segment, tag = line.split()
        assert tag_key(tag) not in segment_of[segment]["calls"], f"completed call {tag} ran again"
    attempts = db_rows(runs, "SELECT n, status FROM attempts ORDER BY n")
    assert len(attempts) == KILLS and attempts[-1]["status"] == "succeeded"  # one start rolled back
    assert {a["status"] for a in attempts[:-1]} == {"interrupted"}
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    assert json.loads((run_dir / "record.json").read_text())["status"] == "succeeded"
    assert list(run_dir.rglob("*.tmp")) == []  # exports cut short were cleared


def test_background_response_is_reattached_not_created_again(tmp_path, emu, zygote):
    write(tmp_path / "flow.yaml", """
        name: bg
        steps:
          slow: {input: "Think hard", background: true, poll_interval: 0.05}
    """)
    runs = tmp_path / "runs"
    ready = tmp_path / "paused.json"
    # killed right after the background response's id is stored, while it is in progress
    pid = zygote.start(run_argv(tmp_path / "flow.yaml", runs, emu.base_url), tmp_path, tmp_path / "out.json",
                       {"FLOWRUN_TEST_PAUSE_AT": "turn:1:after", "FLOWRUN_TEST_PAUSE_READY": str(ready)})
    try:
        wait_until(lambda: ready.exists(), timeout=60)
    finally:
        assert zygote.kill9(pid) == -9
    (row,) = db_rows(runs, "SELECT * FROM turns")
    assert row["status"] == "pending"
    assert len(emu.bodies("slow")) == 1
    again = resume_here(emu, runs)
    assert again.status == "succeeded" and again.steps["slow"].result.response_id == row["response_id"]
    assert len(emu.bodies("slow")) == 1  # polled, not created again
    assert f"/v1/responses/{row['response_id']}" in emu.paths("GET")


def test_streamed_background_response_is_reattached_by_its_stream(tmp_path, emu, zygote):
    write(tmp_path / "flow.yaml", """
        name: bg-stream
        steps:
          slow: {input: "Think hard", background: true, stream: true}
    """)
    runs = tmp_path / "runs"
    ready = tmp_path / "paused.json"
    # killed right after the response id is stored (its first stream event), mid-stream
    pid = zygote.start(run_argv(tmp_path / "flow.yaml", runs, emu.base_url), tmp_path, tmp_path / "out.json",
                       {"FLOWRUN_TEST_PAUSE_AT": "turn:1:after", "FLOWRUN_TEST_PAUSE_READY": str(ready)})
    try:
        wait_until(lambda: ready.exists(), timeout=60)
    finally:
        assert zygote.kill9(pid) == -9
    (row,) = db_rows(runs, "SELECT * FROM turns")
    assert row["status"] == "pending" and row["response_id"].startswith("resp_")
    assert len(emu.bodies("slow")) == 1
    again = resume_here(emu, runs)
    assert again.status == "succeeded" and again.steps["slow"].result.response_id == row["response_id"]
    assert again.steps["slow"].result.text == "[emulator] turn 1: Think hard"
    assert len(emu.bodies("slow")) == 1  # its stream was followed again, not created again
    streamed = [e for e in emu.journal() if e["method"] == "GET" and row["response_id"] in e["path"]]
    assert streamed and "stream=true" in streamed[-1].get("query", "") + streamed[-1]["path"]
