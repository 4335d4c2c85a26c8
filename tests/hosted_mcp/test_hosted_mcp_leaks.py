"""An MCP call's output is masked before the run record keeps its first 20,000 characters:
no prefix of a secret that straddles the cut survives."""

from __future__ import annotations

import json

from flowkit import files_text, run_flow, tool_calls

CANARY = "Xq9J-Zk4W-vQ7p-Jm2Z-Kx8V-wR5t"
PREFIX = "2 pages match '"  # the docs server's search_docs answers f"2 pages match {query!r}: ..."


def test_a_secret_across_the_record_cut_of_an_mcp_output_leaks_no_prefix(tmp_path, emu, docs,
                                                                         token_env, monkeypatch):
    monkeypatch.setenv("CANARY", CANARY)
    query = "q" * (20_000 - 12 - len(PREFIX)) + CANARY  # 12 characters before the cut
    emu.script({"steps": {"ask": [{"mcp_call": {"server_label": "docs", "name": "search_docs",
                                                "arguments": {"query": query}}}]}})
    settings = {"mcp": docs.url, "headers": {"Authorization": "Bearer {{ secrets.DOCS_TOKEN }}"},
                "approve": ["search_docs"]}
    result = run_flow(tmp_path, emu, f"""
name: mcp-leak
secrets: [DOCS_TOKEN, CANARY]
tools:
  docs: {json.dumps(settings)}
steps:
  ask: {{input: go, tools: [docs]}}
""")
    assert result.status == "succeeded", result.error
    call = [c for c in tool_calls(result, "ask") if c["type"] == "mcp_call"][0]
    assert call["output"].startswith(PREFIX + "qqq") and call["output"].endswith("... [truncated]")
    places = {"journal": json.dumps(emu.journal()), **files_text(result.run_dir)}
    found = {where: [CANARY[i:i + 6] for i in range(len(CANARY) - 5) if CANARY[i:i + 6] in text]
             for where, text in places.items()}
    assert {where: pieces for where, pieces in found.items() if pieces} == {}
