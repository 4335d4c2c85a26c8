"""``flowrun resume``: completed steps, items and tool-loop turns reused with zero
requests; failed, cancelled and never-started work run again; flow changes refused or
re-run by request digest; chains rebuilt when the service lost the response."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner
from flowkit import record, run_flow, write, write_flow
from storekit import db_rows, resume_here, step_keys

from flowrun.cli import main
from flowrun.errors import Cancelled, UsageError

CHAIN = """
    name: chain
    inputs: {topic: {type: string, default: tea}, tone: {type: string, default: dry}}
    steps:
      a: {input: "About {{ inputs.topic }}"}
      b: {input: "Expand {{ steps.a.text }}"}
      c: {input: "Title in a {{ inputs.tone }} tone"}
      d: {input: "Summarise {{ steps.b.text }}"}
      e:
        for_each: [one, two, three]
        input: "Item {{ item }}"
    outputs:
      d: "{{ steps.d.text }}"
      e: "{{ steps.e | map(attribute='text') | join('|') }}"
"""


def posted(emu) -> list[str]:
    return [step_keys(b) for b in emu.bodies()]


def test_resume_reruns_only_failed_and_skipped_work(tmp_path, emu):
    emu.script({"steps": {"b": [{"error": {"status": 400, "message": "nope"}}, "expanded"],
                          "e[1]": [{"error": {"status": 400, "message": "no two"}}, "two ok"]}})
    first = run_flow(tmp_path, emu, CHAIN, max_concurrency=1)
    assert first.status == "failed" and first.steps["d"].status == "skipped"
    assert sorted(posted(emu)) == ["a", "b", "c", "e.0", "e.1", "e.2"]
    emu.server.emulator.journal.clear()

    again = resume_here(emu, tmp_path / "runs")
    assert again.status == "succeeded" and again.run_id == first.run_id
    assert sorted(posted(emu)) == ["b", "d", "e.1"]  # a, c, e.0, e.2: zero requests
    assert again.outputs == {"d": f"[emulator] turn 1: Summarise expanded", "e": "[emulator] turn 1: Item one|two ok|[emulator] turn 1: Item three"}
    assert again.steps["a"].result.response_id == first.steps["a"].result.response_id
    rec = record(again)
    assert rec["attempt"] == 2 and [a["status"] for a in rec["attempts"]] == ["failed", "succeeded"]
    assert rec["attempts"][1]["note"].startswith("resumed a failed run")
    assert rec["steps"]["a"]["run_attempt"] == 1 and rec["steps"]["b"]["run_attempt"] == 2
    assert [i["run_attempt"] for i in rec["steps"]["e"]["items"]] == [1, 2, 1]
    (row,) = db_rows(tmp_path / "runs", "SELECT status, attempt FROM runs")
    assert row == {"status": "succeeded", "attempt": 2}
    # resuming a finished run sends nothing at all
    emu.server.emulator.journal.clear()
    assert resume_here(emu, tmp_path / "runs", first.run_id[:15]).outputs == again.outputs
    assert posted(emu) == []


def test_changed_flow_is_refused_then_rerun_by_request_digest(tmp_path, emu):
    first = run_flow(tmp_path, emu, CHAIN)
    assert first.status == "succeeded"
    flow = tmp_path / "flow.yaml"
    flow.write_text(flow.read_text().replace("Expand {{", "Expand at length {{"))
    with pytest.raises(UsageError) as err:
        resume_here(emu, tmp_path / "runs")
    assert "changed since run" in str(err.value) and "step b changed" in str(err.value)
    assert "--allow-changes" in err.value.format()
    out = CliRunner().invoke(main, ["resume", "last", "--run-dir", str(tmp_path / "runs"),
                                    "--provider", "emulator", "--base-url", emu.base_url, "--json"])
    assert out.exit_code == 2 and "step b changed" in out.output and "Traceback" not in out.output
    emu.server.emulator.journal.clear()
    again = resume_here(emu, tmp_path / "runs", allow_changes=True)
    assert again.status == "succeeded"
    assert sorted(posted(emu)) == ["b", "d"]  # the changed step and what depends on it
    assert "changed" in record(again)["attempts"][1]["note"]


def test_input_override_reruns_what_depends_on_it(tmp_path, emu):
    first = run_flow(tmp_path, emu, CHAIN)
    assert first.status == "succeeded"
    emu.server.emulator.journal.clear()
    again = resume_here(emu, tmp_path / "runs", assignments=("tone=warm",))
    assert again.status == "succeeded" and posted(emu) == ["c"]
    assert "warm" in again.steps["c"].result.text
    (row,) = db_rows(tmp_path / "runs", "SELECT inputs FROM runs")
    assert json.loads(row["inputs"]) == {"topic": "tea", "tone": "warm"}


TOOLS = """
import asyncio, pathlib
HERE = pathlib.Path(__file__).parent

def count(n: int) -> str:
    \"\"\"Count.\"\"\"
    with open(HERE / "count.log", "a") as f:
        f.write("called\\n")
    return "counted"

async def block(n: int) -> str:
    \"\"\"Block the first time.\"\"\"
    with open(HERE / "block.log", "a") as f:
        f.write("called\\n")
    marker = HERE / "blocked"
    if not marker.exists():
        marker.write_text("1")
        await asyncio.sleep(60)
    return "unblocked"
"""


def test_interrupted_tool_loop_resumes_at_the_next_turn(tmp_path, emu):
    write(tmp_path / "tools.py", TOOLS)
    emu.script({"steps": {"work": [
        {"function_calls": [{"name": "count", "arguments": {"n": 1}}]},
        {"function_calls": [{"name": "block", "arguments": {"n": 2}}]},
        "all done",
    ]}})
    flow = """
        name: loop
        tools:
          count: {python: tools:count}
          block: {python: tools:block}
        steps:
          work: {input: "Go", tools: [count, block]}
    """

    def cancel_when_blocked(coro):
        async def go():
            task = asyncio.ensure_future(coro)
            while not (tmp_path / "blocked").exists():
                await asyncio.sleep(0.01)
            task.cancel()
            try:
                return await task
            except Cancelled as exc:
                return exc.result
        return asyncio.run(go())

    first = run_flow(tmp_path, emu, flow, runner=cancel_when_blocked)
    assert first.status == "cancelled"
    assert len(emu.bodies("work")) == 2
    emu.server.emulator.journal.clear()
    again = resume_here(emu, tmp_path / "runs")
    assert again.status == "succeeded" and again.steps["work"].result.text == "all done"
    # turns 0 and 1 are not requested again; `count` returned before: not called again;
    # `block` was in flight when the run was cancelled: it runs again
    bodies = emu.bodies("work")
    assert len(bodies) == 1
    assert [i["output"] for i in bodies[0]["input"] if i.get("type") == "function_call_output"] == ["unblocked"]
    assert (tmp_path / "count.log").read_text().count("called") == 1
    assert (tmp_path / "block.log").read_text().count("called") == 2
    turns = db_rows(tmp_path / "runs", "SELECT turn, attempt, status FROM turns ORDER BY turn")
    assert turns == [{"turn": 0, "attempt": 1, "status": "done"}, {"turn": 1, "attempt": 1, "status": "done"},
                     {"turn": 2, "attempt": 2, "status": "done"}]
    calls = {r["name"]: r["attempt"] for r in db_rows(tmp_path / "runs", "SELECT * FROM tool_calls")}
    assert calls == {"count": 1, "block": 2}
    assert [c["name"] for c in again.steps["work"].result.tool_calls] == ["count", "block"]


def test_chain_rebuilt_from_stored_items_when_the_service_lost_the_response(tmp_path, emu):
    emu.script({"steps": {"b": [{"error": {"status": 400, "message": "not now"}}, "chained"]}})
    write_flow(tmp_path, """
        name: continues
        steps:
          a: {input: "Remember 42"}
          b: {continue: a, input: "What number?"}
    """)
    first = run_flow(tmp_path, emu, (tmp_path / "flow.yaml").read_text())
    assert first.status == "failed"
    a_id = first.steps["a"].result.response_id
    emu.server.emulator.store.clear()  # the service no longer has a's response
    emu.server.emulator.journal.clear()
    again = resume_here(emu, tmp_path / "runs")
    assert again.status == "succeeded" and again.steps["b"].result.text == "chained"
    tried, rebuilt = emu.bodies("b")
    assert tried["previous_response_id"] == a_id
    assert "previous_response_id" not in rebuilt
    assert [i.get("role") for i in rebuilt["input"] if i.get("role")] == ["user", "assistant", "user"]
    assert emu.bodies("a") == []
    note = record(again)["steps"]["b"]["chain_rebuilt"][0]
    assert a_id in note and "manual chaining" in note


def conversations_created(emu) -> int:
    return sum(1 for p in emu.paths("POST") if p.rstrip("/").endswith("/conversations"))


def test_resume_goes_on_in_the_run_wide_conversation(tmp_path, emu):
    emu.script({"steps": {"b": [{"error": {"status": 400, "message": "not now"}}, "second"]}})
    first = run_flow(tmp_path, emu, """
        name: shared
        defaults: {conversation: new}
        steps:
          a: {input: "Remember 42"}
          b: {input: "What number?", needs: [a]}
    """)
    assert first.status == "failed" and conversations_created(emu) == 1
    conv = first.steps["a"].result.conversation_id
    emu.server.emulator.journal.clear()
    again = resume_here(emu, tmp_path / "runs")
    assert again.status == "succeeded"
    assert conversations_created(emu) == 0  # not created again
    (body,) = emu.bodies("b")
    assert body["conversation"] == conv and again.steps["b"].result.conversation_id == conv
    assert emu.bodies("a") == []


def test_resumed_tool_loop_goes_on_in_its_own_conversation(tmp_path, emu):
    write(tmp_path / "tools.py", TOOLS)
    emu.script({"steps": {"work": [
        {"function_calls": [{"name": "count", "arguments": {"n": 1}}]},
        {"function_calls": [{"name": "block", "arguments": {"n": 2}}]},
        "all done",
    ]}})
    flow = """
        name: own
        tools:
          count: {python: tools:count}
          block: {python: tools:block}
        steps:
          work: {input: "Go", tools: [count, block], conversation: new}
    """

    def cancel_when_blocked(coro):
        async def go():
            task = asyncio.ensure_future(coro)
            while not (tmp_path / "blocked").exists():
                await asyncio.sleep(0.01)
            task.cancel()
            try:
                return await task
            except Cancelled as exc:
                return exc.result
        return asyncio.run(go())

    first = run_flow(tmp_path, emu, flow, runner=cancel_when_blocked)
    assert first.status == "cancelled" and conversations_created(emu) == 1
    conv = emu.bodies("work")[0]["conversation"]
    emu.server.emulator.journal.clear()
    again = resume_here(emu, tmp_path / "runs")
    assert again.status == "succeeded" and again.steps["work"].result.text == "all done"
    assert conversations_created(emu) == 0
    (body,) = emu.bodies("work")  # turns 0 and 1 replayed from the store
    assert body["conversation"] == conv and again.steps["work"].result.conversation_id == conv
    assert (tmp_path / "count.log").read_text().count("called") == 1


def test_resume_cli_by_run_directory_with_the_run_exit_codes(tmp_path, emu):
    emu.script({"steps": {"b": [{"error": {"status": 400, "message": "nope"}},
                                {"error": {"status": 400, "message": "still no"}}, "expanded"]}})
    first = run_flow(tmp_path, emu, CHAIN)
    assert first.status == "failed"
    argv = ["resume", str(first.run_dir), "--provider", "emulator", "--base-url", emu.base_url,
            "--json", "--run-dir", str(tmp_path / "elsewhere")]  # the directory names its store
    cli = CliRunner()
    failed = cli.invoke(main, argv)
    assert failed.exit_code == 1, failed.output
    out = json.loads(failed.output)
    assert (out["run_id"], out["status"]) == (first.run_id, "failed") and "still no" in out["error"]
    done = cli.invoke(main, argv)
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["status"] == "succeeded"
    attempts = db_rows(tmp_path / "runs", "SELECT n, status FROM attempts ORDER BY n")
    assert [a["status"] for a in attempts] == ["failed", "failed", "succeeded"]


def test_secrets_come_from_the_environment_again_and_are_never_stored(tmp_path, emu, monkeypatch):
    token = "sk-resume-" + "7" * 24
    monkeypatch.setenv("API_TOKEN", token)
    emu.script({"steps": {"b": [{"error": {"status": 400, "message": "nope"}}, "fine"]}})
    first = run_flow(tmp_path, emu, """
        name: secret-resume
        secrets: [API_TOKEN]
        steps:
          a: {input: "Use {{ secrets.API_TOKEN }} for a"}
          b: {input: "Use {{ secrets.API_TOKEN }} for b", needs: [a]}
    """)
    assert first.status == "failed"
    monkeypatch.delenv("API_TOKEN")
    with pytest.raises(UsageError) as err:  # not stored: without it, no resume
        resume_here(emu, tmp_path / "runs")
    assert "API_TOKEN" in str(err.value) and token not in err.value.format()
    monkeypatch.setenv("API_TOKEN", token)
    emu.server.emulator.journal.clear()
    again = resume_here(emu, tmp_path / "runs")
    assert again.status == "succeeded" and posted(emu) == ["b"]
    assert token in emu.bodies("b")[0]["input"]  # sent to the service, from the environment
    runs = tmp_path / "runs"
    stored = b"".join(p.read_bytes() for p in runs.rglob("*") if p.is_file())
    assert token.encode() not in stored and token[:14].encode() not in stored


def test_resume_reuses_a_completed_steps_artifacts(tmp_path, emu):
    emu.script({"steps": {"look": [{"error": {"status": 400, "message": "not yet"}}, "a lighthouse"]}})
    first = run_flow(tmp_path, emu, """
        name: art
        steps:
          gen: {input: Draw a red lighthouse., tools: [image_generation]}
          look: {input: [{text: "Describe"}, {image: "{{ steps.gen.images[0] }}"}]}
        outputs: {image: "{{ steps.gen.images[0] }}", look: "{{ steps.look.text }}"}
    """)
    assert first.status == "failed" and first.steps["gen"].status == "succeeded"
    (image,) = first.steps["gen"].result.images
    (row,) = db_rows(tmp_path / "runs", "SELECT key, path, attempt FROM artifacts")
    assert (row["key"], row["path"], row["attempt"]) == ("gen", image, 1)
    data = open(image, "rb").read()
    emu.server.emulator.journal.clear()
    again = resume_here(emu, tmp_path / "runs")
    assert again.status == "succeeded" and posted(emu) == ["look"]  # gen: zero requests
    assert again.outputs == {"image": image, "look": "a lighthouse"}
    assert open(image, "rb").read() == data
    sent = [part for item in emu.bodies("look")[0]["input"] for part in item.get("content", [])
            if isinstance(part, dict) and part.get("type") == "input_image"]
    assert len(sent) == 1  # the stored image went to the resumed step
    assert record(again)["steps"]["gen"]["images"] == [image]
