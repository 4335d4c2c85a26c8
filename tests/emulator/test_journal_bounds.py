"""The journal is bounded (long values cut, and the entry says so; oldest entries go) and
keeps only allowlisted header values."""
from __future__ import annotations

import json

import openai

from flowrun.emulator.journal import ALLOWED_HEADERS, Journal, JournalLimits


def test_large_bodies_are_cut_and_marked(http):
    big = "x" * (5 * 2**20)  # over the 4 MiB string limit
    for _ in range(2):
        r = http.post("/v1/responses", json={"model": "gpt-4.1", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": big}]}], "store": False})
        assert r.status_code == 200
    served = http.get("/_emulator/requests")
    assert len(served.content) < 64 * 1024  # not 10 MB: the journal did not keep the bodies
    entries = served.json()
    assert len(entries) == 2
    for entry in entries:
        part = entry["body"]["input"][0]["content"][0]
        assert part["type"] == "input_text" and part["text"] == "x" * 1024
        assert entry["truncated"] == [{"path": "input[0].content[0].text", "chars": 5 * 2**20, "kept": 1024}]
    small = http.post("/v1/responses", json={"model": "gpt-4.1", "input": "hi"})
    assert small.status_code == 200 and "truncated" not in http.get("/_emulator/requests").json()[-1]


def test_journal_evicts_oldest_entries_and_bounds_lists():
    journal = Journal(JournalLimits(max_entries=3, max_entry_chars=1000, max_total_chars=2500))
    for i in range(5):
        journal.record("POST", "/v1/responses", {"n": i}, [], float(i))
    assert [e["body"]["n"] for e in journal.entries()] == [2, 3, 4] and journal.dropped == 2
    journal.record("POST", "/v1/responses", {"input": list(range(10_000))}, [], 9.0)
    entry = journal.entries()[-1]
    kept = len(entry["body"]["input"])
    assert 0 < kept < 200 and entry["truncated"] == [{"path": "input", "items": 10_000, "kept": kept}]
    for _ in range(3):  # each entry ~1000 chars: the 2500 total keeps two, below max_entries
        journal.record("POST", "/v1/responses", {"input": list(range(10_000))}, [], 9.0)
    assert len(journal) == 2 and journal.dropped == 7


def test_only_allowlisted_header_values_are_kept(server, http):
    secrets = {"X-Trace": "trace-secret-1", "X-Upstream": "Bearer up-secret-2", "X-Forwarded-For": "10.1.2.3",
               "Api-Key": "key-secret-3", "X-Stainless-Token": "stainless-secret-4"}
    with openai.OpenAI(base_url=server.base_url, api_key="sk-secret-5", max_retries=0,
                       default_headers={**secrets, "OpenAI-Beta": "responses=v1"}) as c:
        c.responses.create(model="gpt-4.1", input="x", extra_headers={"Idempotency-Key": "idem-1"})
    [entry] = http.get("/_emulator/requests").json()
    dumped = json.dumps(entry)
    for value in [*secrets.values(), "sk-secret-5"]:
        assert value not in dumped and value.split()[-1] not in dumped
    headers = entry["headers"]
    assert headers["openai-beta"] == "responses=v1" and headers["idempotency-key"] == "idem-1"
    assert headers["content-type"] == "application/json" and headers["user-agent"].startswith("OpenAI/Python")
    assert headers["x-stainless-lang"] == "python"
    assert all(name in ALLOWED_HEADERS or name.startswith("x-stainless-") for name in headers)
