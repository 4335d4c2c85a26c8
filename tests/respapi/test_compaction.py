"""Compaction: ``context_management`` keeps a long tool loop from resending its whole
history; the emulator produces compaction items and accepts them back."""

from __future__ import annotations

import json

import openai
import pytest
from flowkit import EXAMPLES, assert_conforms, run_file

from flowrun.emulator import load_script


def test_long_tool_loop_stops_resending_history(emu, tmp_path):
    emu.server.emulator.load_script(load_script(EXAMPLES / "compaction.emulator.yaml"))
    result = run_file(EXAMPLES / "compaction.yaml", emu, run_root=tmp_path)
    assert result.status == "succeeded", result.steps["digest"].error
    turns = emu.bodies("digest")
    assert len(turns) == 7
    pages = [json.dumps(t["input"]).count("Page ") for t in turns]  # tool outputs resent
    compacted = [i for i, t in enumerate(turns) 
                 if isinstance(t["input"], list) and t["input"][0].get("type") == "compaction"]
    assert compacted, "no turn started from a compaction item"
    first = compacted[0]
    # before: the input grew by a page each turn; from compaction on it is the item plus
    # what followed it, so no turn carries more than the threshold allows (3 pages, not 6)
    assert pages[:first] == list(range(first))
    assert pages[first] == 1 and max(pages) <= 3 and pages[-1] < 6
    items = result.steps["digest"].result.items
    assert any(i["type"] == "compaction" for i in items)


def test_emulator_compaction_items_and_compact_endpoint(client):
    big = " ".join(["lorem"] * 900)
    r = client.responses.with_raw_response.create(
        model="gpt-4.1", input=big, context_management=[{"type": "compaction", "compact_threshold": 1000}],
        store=False).http_response.json()
    assert_conforms("Response", r)
    comp = r["output"][0]
    assert comp["type"] == "compaction" and comp["encrypted_content"].startswith("emu1.")
    # sent back, the compaction item stands for what it compacted: nothing before it counts
    after = client.responses.create(model="gpt-4.1", store=False, input=[
        {"role": "user", "content": big}, {"type": "compaction", "encrypted_content": comp["encrypted_content"]},
        {"role": "user", "content": "next"}])
    assert after.usage.input_tokens == 1
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="gpt-4.1", input=[{"type": "compaction", "encrypted_content": "forged"}])
    compact = client.responses.with_raw_response.compact(model="gpt-4.1", input=big).http_response.json()
    assert_conforms("CompactResource", compact)
    assert compact["object"] == "response.compaction" and compact["output"][0]["type"] == "compaction"
    assert compact["usage"]["input_tokens"] > 1000
