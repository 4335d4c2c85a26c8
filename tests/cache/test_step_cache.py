"""The step cache: a second identical run sends nothing; a changed prompt re-runs exactly
that step and what depends on it; ttl, world-dependent steps, secrets, uploads and
artifacts. Counted by the emulator journal (the real openai SDK over HTTP)."""

from __future__ import annotations

import sqlite3

from cachekit import make_pdf, posted, rows
from flowkit import record, run_flow, step_error, write

CHAIN = """
    name: chain
    inputs: {topic: {type: string, default: tea}}
    defaults: {cache: true}
    steps:
      a: {input: "About {{ inputs.topic }}"}
      b: {input: "Expand {{ steps.a.text }}"}
      c: {input: "Title, please"}
      d: {input: "Summarise {{ steps.b.text }}"}
      e: {continue: b, input: "And shorter"}
      f:
        for_each: [one, two]
        input: "Item {{ item }} of {{ steps.c.text }}"
    outputs:
      d: "{{ steps.d.text }}"
      e: "{{ steps.e.text }}"
      f: "{{ steps.f | map(attribute='text') | join('|') }}"
"""


def run(tmp_path, emu, text=CHAIN, **kw):
    kw.setdefault("cache_dir", tmp_path / "cache")
    return run_flow(tmp_path, emu, text, **kw)


def test_second_identical_run_sends_zero_requests(tmp_path, emu):
    first = run(tmp_path, emu)
    assert first.status == "succeeded", {s: step_error(first, s) for s in first.steps}
    assert posted(emu) == ["a", "b", "c", "d", "e", "f.0", "f.1"]
    emu.server.emulator.journal.clear()

    again = run(tmp_path, emu)
    assert again.status == "succeeded" and again.run_id != first.run_id
    assert emu.journal() == []  # not one request of any kind
    assert again.outputs == first.outputs
    assert again.steps["e"].result.response_id == first.steps["e"].result.response_id
    rec = record(again)["steps"]
    assert all(rec[s].get("cached") for s in "abcde")
    assert [i.get("cached") for i in rec["f"]["items"]] == [True, True]
    assert rec["a"]["cache"]["from_run"] == first.run_id
    assert again.to_json()["steps"]["a"]["cached"] is True
    # the run store marks them cached too; the first run's rows are not
    steps = rows(tmp_path / "runs" / "flowrun.db", "SELECT run_id, key, cached FROM steps")
    assert {r["key"]: r["cached"] for r in steps if r["run_id"] == again.run_id and r["key"] != "f"} \
        == {k: 1 for k in ["a", "b", "c", "d", "e", "f.0", "f.1"]}
    assert not any(r["cached"] for r in steps if r["run_id"] == first.run_id)
    # the cached run's responses are in its own run directory
    assert (again.run_dir / "responses" / "a.json").is_file()


def test_changed_prompt_reruns_exactly_that_step_and_its_dependents(tmp_path, emu):
    first = run(tmp_path, emu)
    assert first.status == "succeeded"
    emu.server.emulator.journal.clear()
    changed = CHAIN.replace('"Expand {{', '"Expand at length {{')
    again = run(tmp_path, emu, changed)
    assert again.status == "succeeded"
    # b changed; d reads b's text and e continues b: they run, nothing else does
    assert posted(emu) == ["b", "d", "e"]
    assert again.steps["a"].result.cached and not again.steps["b"].result.cached
    assert not again.steps["e"].result.cached and again.steps["c"].result.cached
    emu.server.emulator.journal.clear()
    # an input change re-runs what reads it, and what depends on that
    run(tmp_path, emu, changed, inputs={"topic": "coffee"})
    assert posted(emu) == ["a", "b", "d", "e"]


def test_cache_off_by_default_and_no_cache_wins(tmp_path, emu):
    plain = CHAIN.replace("defaults: {cache: true}", "defaults: {}")
    run(tmp_path, emu, plain)
    run(tmp_path, emu, plain)
    assert len(emu.bodies()) == 14 and not (tmp_path / "cache").exists()
    emu.server.emulator.journal.clear()
    run(tmp_path, emu, plain, cache=True)  # --cache: every step
    run(tmp_path, emu, plain, cache=True)
    assert len(emu.bodies()) == 7
    emu.server.emulator.journal.clear()
    again = run(tmp_path, emu, cache=False)  # --no-cache beats the flow's cache: true
    assert len(emu.bodies()) == 7 and not again.steps["a"].result.cached
    # a step's own cache: false beats --cache
    emu.server.emulator.journal.clear()
    run(tmp_path, emu, plain.replace('a: {input:', 'a: {cache: false, input:'), cache=True)
    assert posted(emu) == ["a"]


def test_ttl_expiry(tmp_path, emu):
    flow = """
        name: ttl
        steps:
          quick: {input: "Hello", cache: {ttl: 30m}}
          slow: {input: "World", cache: {ttl: 7d}}
    """
    run(tmp_path, emu, flow)
    emu.server.emulator.journal.clear()
    run(tmp_path, emu, flow)
    assert posted(emu) == []
    # an hour passes: entries were stored an hour earlier than they were
    conn = sqlite3.connect(tmp_path / "cache" / "cache.db")
    with conn:
        conn.execute("UPDATE entries SET created = created - 3600")
    conn.close()
    again = run(tmp_path, emu, flow)
    assert posted(emu) == ["quick"]  # past its 30m; 7d has not passed
    assert again.steps["slow"].result.cached and not again.steps["quick"].result.cached
    emu.server.emulator.journal.clear()
    run(tmp_path, emu, flow)  # the fresh answer was stored again
    assert posted(emu) == []


TOOLS_PY = """
    from pathlib import Path

    def lookup(city: str) -> str:
        \"\"\"Weather of a city.\"\"\"
        log = Path(__file__).with_name("calls.log")
        log.write_text(log.read_text() + city + "\\n" if log.exists() else city + "\\n")
        return f"sunny in {city}"
"""

TOOL_FLOW = """
    name: tools
    defaults: {cache: true}
    tools:
      lookup: {python: "weather:lookup"}
    steps:
      inherits: {input: "Weather in Lyon?", tools: [lookup]}
      asks: {input: "Weather in Oslo?", tools: [lookup], cache: true}
      plain: {input: "No tools"}
"""


def test_world_dependent_steps_are_cached_only_when_they_ask(tmp_path, emu):
    write(tmp_path / "weather.py", TOOLS_PY)
    script = {"steps": {s: [{"function_calls": [{"name": "lookup", "arguments": {"city": c}}]},
                            {"default_rule": True}] for s, c in (("inherits", "Lyon"), ("asks", "Oslo"))}}
    emu.script(script)
    first = run(tmp_path, emu, TOOL_FLOW)
    assert first.status == "succeeded", {s: step_error(first, s) for s in first.steps}
    assert sorted((tmp_path / "calls.log").read_text().split()) == ["Lyon", "Oslo"]
    emu.reset()
    emu.script(script)
    again = run(tmp_path, emu, TOOL_FLOW)
    assert again.status == "succeeded"
    # `inherits` has a function tool and only the defaults ask: it runs (and calls) again;
    # `asks` says cache: true itself: its answer and its tool calls are reused
    assert posted(emu) == ["inherits", "inherits"]
    assert sorted((tmp_path / "calls.log").read_text().split()) == ["Lyon", "Lyon", "Oslo"]
    assert again.steps["asks"].result.cached and again.steps["asks"].result.text == first.steps["asks"].result.text
    assert record(again)["steps"]["asks"]["tool_calls"] == record(first)["steps"]["asks"]["tool_calls"]


def test_request_with_a_secret_is_never_cached(tmp_path, emu, monkeypatch):
    secret = "sk-very-secret-value-123456"
    flow = """
        name: secret
        defaults: {cache: true}
        steps:
          leaky: {input: "Token {{ secrets.API_TOKEN }}"}
          clean: {input: "Nothing secret"}
    """
    notices = []

    from flowrun.hooks import RunHooks

    class Hooks(RunHooks):
        def on_notice(self, step_key, message):
            notices.append(message)

    monkeypatch.setenv("API_TOKEN", secret)
    run(tmp_path, emu, flow, hooks=Hooks())
    emu.server.emulator.journal.clear()
    again = run(tmp_path, emu, flow, hooks=Hooks())
    assert posted(emu) == ["leaky"] and again.steps["clean"].result.cached
    assert any("leaky not cached: its request contains a secret" in n for n in notices)
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_uploaded_files_are_keyed_by_their_bytes(tmp_path, emu):
    pdf = make_pdf(tmp_path / "report.pdf", ["Alpha page", "Beta page"])
    flow = """
        name: upload
        defaults: {cache: true}
        steps:
          summary:
            input:
              - file: report.pdf
                upload: true
              - text: Summarise.
    """
    first = run(tmp_path, emu, flow)
    assert first.status == "succeeded", step_error(first, "summary")
    assert [e["path"] for e in emu.journal()] == ["/v1/files", "/v1/responses"]
    emu.server.emulator.journal.clear()
    run(tmp_path, emu, flow)
    assert emu.journal() == []  # no upload, no request: the file's bytes are the same
    make_pdf(pdf, ["Alpha page", "Gamma page"])
    run(tmp_path, emu, flow)
    assert [e["path"] for e in emu.journal()] == ["/v1/files", "/v1/responses"]


def test_artifacts_come_back_into_the_new_run(tmp_path, emu):
    flow = """
        name: art
        steps:
          gen: {input: Draw a red lighthouse., tools: [image_generation], cache: true}
          look:
            cache: true
            input: [{text: "Describe"}, {image: "{{ steps.gen.images[0] }}"}]
        outputs: {image: "{{ steps.gen.images[0] }}", look: "{{ steps.look.text }}"}
    """
    first = run(tmp_path, emu, flow)
    assert first.status == "succeeded", {s: step_error(first, s) for s in first.steps}
    emu.server.emulator.journal.clear()
    again = run(tmp_path, emu, flow)
    assert emu.journal() == []
    from pathlib import Path

    old, new = Path(first.outputs["image"]), Path(again.outputs["image"])
    assert new != old and again.run_dir in new.parents and new.read_bytes() == old.read_bytes()
    assert record(again)["steps"]["gen"]["images"] == [str(new)]
    # the next step sent the image's bytes, not its path: same key although the path moved
    assert again.outputs["look"] == first.outputs["look"] and again.steps["look"].result.cached


def test_the_cached_research_example(tmp_path, emu):
    from flowkit import EXAMPLES, run_file

    flow = EXAMPLES / "cached-research.yaml"
    kw = {"run_root": tmp_path / "runs", "cache_dir": tmp_path / "cache"}
    first = run_file(flow, emu, **kw)
    assert first.status == "succeeded" and len(emu.bodies()) == 5
    emu.server.emulator.journal.clear()
    again = run_file(flow, emu, **kw)
    assert posted(emu) == ["headline"]  # cache: false; the rest came from the cache
    assert again.outputs["answers"] == first.outputs["answers"]
