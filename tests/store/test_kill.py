"""kill -9 at random points, then ``flowrun resume``: the store stays whole, completed
steps and turns are never requested again, completed tool calls never run again, and
the outputs equal an uninterrupted run's. Counted by the emulator's journal."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from flowkit import cli_env, write
from storekit import Zygote, db_rows, integrity, resume_here, step_keys, wait_until

KILLS = 20
MIN_KILLS = 12  # a fast machine may finish the run after fewer kills than planned
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


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_kill9_at_random_points_then_resume(tmp_path, emu, zygote):
    seed = int(os.environ.get("FLOWRUN_KILL_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    why = f"seed {seed}"
    emu.faults("", latency_ms=30)
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
    segment_of: dict[str, dict] = {}
    before = snapshot(runs)
    for kill in range(KILLS + 1):
        last = kill == KILLS
        seen = len(emu.journal())
        segment_of[str(kill)] = before
        env = {"SEGMENT": str(kill)}
        if kill == 0 or last:  # the real command line, as a user runs it
            argv = run_argv(work / "flow.yaml", runs, emu.base_url) if kill == 0 else resume_argv(runs, emu.base_url)
            proc = subprocess.Popen([sys.executable, "-m", "flowrun.cli", *argv], cwd=work,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=cli_env(**env))
            if last:
                out, err = proc.communicate(timeout=120)
                assert proc.returncode == 0, f"{why}: {err}"
                final = json.loads(out)
            else:
                wait_until(lambda: progress(snapshot(runs)) > 0, timeout=60)
                time.sleep(rng.uniform(0, 0.05))
                proc.kill()
                proc.communicate()
        else:
            pid = zygote.start(resume_argv(runs, emu.base_url), work, work / "out.json", env)
            target = progress(before) + 1
            try:
                wait_until(lambda: progress(snapshot(runs)) >= target, timeout=60)
            finally:
                time.sleep(rng.uniform(0, 0.05))  # somewhere in the next piece of work
                code = zygote.kill9(pid)
            if code == 0 and kill >= MIN_KILLS:
                # a fast machine finished the run inside the kill window: that attempt is the
                # last one (it ran as a resume, like the final attempt would)
                final = json.loads((work / "out.json").read_text())
                last = True
            else:
                assert code == -9, f"{why}: the run finished after {kill} kills ({code}): " + \
                    (work / "out.json.err").read_text()[-2000:]
        assert integrity(runs) == "ok", why
        after = snapshot(runs)
        posts = [step_keys(e["body"]) for e in emu.journal()[seen:]
                 if e["method"] == "POST" and e["path"].endswith("/responses")]
        check_segment(before, after, posts, baseline, f"{why}, attempt {kill + 1}")
        before = after
        if last:
            kills = kill
            break

    assert final["status"] == "succeeded", why
    assert final["outputs"] == expected["outputs"], why
    assert {k: v["status"] for k, v in final["steps"].items()} == {k: "succeeded" for k in expected["steps"]}
    # tool calls: each ran once, except one in flight at a kill (run again on resume)
    for line in (work / "calls.log").read_text().splitlines():
        segment, tag = line.split()
        assert tag_key(tag) not in segment_of[segment]["calls"], f"{why}: completed call {tag} ran again"
    attempts = db_rows(runs, "SELECT n, status FROM attempts ORDER BY n")
    assert len(attempts) == kills + 1 and attempts[-1]["status"] == "succeeded"
    assert {a["status"] for a in attempts[:-1]} == {"interrupted"}, why


def test_background_response_is_reattached_not_created_again(tmp_path, emu, zygote):
    write(tmp_path / "flow.yaml", """
        name: bg
        steps:
          slow: {input: "Think hard", background: true, poll_interval: 0.05}
    """)
    runs = tmp_path / "runs"
    pid = zygote.start(run_argv(tmp_path / "flow.yaml", runs, emu.base_url), tmp_path, tmp_path / "out.json")
    try:
        (row,) = wait_until(lambda: db_rows(runs, "SELECT * FROM turns WHERE status='pending'"))
    finally:
        assert zygote.kill9(pid) == -9
    assert len(emu.bodies("slow")) == 1
    again = resume_here(emu, runs)
    assert again.status == "succeeded" and again.steps["slow"].result.response_id == row["response_id"]
    assert len(emu.bodies("slow")) == 1  # polled, not created again
    assert f"/v1/responses/{row['response_id']}" in emu.paths("GET")
