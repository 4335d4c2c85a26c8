"""Fault injection: spec grammar, status queues, latency."""
from __future__ import annotations

import asyncio
import time

import openai
import pytest

from flowrun.emulator import Emulator, FaultSpecError, parse_spec
from flowrun.emulator.faults import StatusFault, StreamFault


def test_spec_grammar():
    rules, latency = parse_spec(" 429x2:retry_after=1.5:message=busy, 500 ,drop@3x2,slow@10,latency=25")
    assert rules == [StatusFault(429, 2, 1.5, "busy"), StatusFault(500, 1), StreamFault("drop", 3, 2),
                     StreamFault("slow", 10, 1)]
    assert latency == 25
    assert parse_spec("") == ([], None)


@pytest.mark.parametrize("spec, fragment", [
    ("429x0", "count must be at least 1"),
    ("200", "status must be 400-599"),
    ("429:retry=1", "unknown option"),
    ("429:retry_after=soon", "retry_after must be a number"),
    ("drop3", "not understood"),
    ("latency=fast", "not understood"),
])
def test_spec_errors(spec, fragment):
    with pytest.raises(FaultSpecError) as info:
        parse_spec(spec)
    assert fragment in str(info.value)


def test_status_queue_then_success(server, http):
    r = http.post("/_emulator/faults", json={"spec": "429x2:retry_after=1,503"})
    assert [f["status"] for f in r.json()["status"]] == [429, 503]
    c = openai.OpenAI(base_url=server.base_url, api_key="t", max_retries=0)
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as info:
            c.responses.create(model="m", input="x")
        assert info.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.InternalServerError) as info:
        c.responses.create(model="m", input="x")
    assert info.value.status_code == 503
    assert c.responses.create(model="m", input="x").status == "completed"
    # retrieval routes are not subject to status faults
    assert http.get("/_emulator/faults").json()["status"] == []


def test_faults_do_not_consume_script_entries(server, http, load_script):
    load_script({"default": ["first", "second"]})
    http.post("/_emulator/faults", json={"spec": "500:retry_after=0.01"})
    c = openai.OpenAI(base_url=server.base_url, api_key="t", max_retries=1)
    assert c.responses.create(model="m", input="x").output_text == "first"


def test_bad_fault_body(http):
    r = http.post("/_emulator/faults", json={"spec": "oops"})
    assert r.status_code == 400 and "not understood" in r.json()["error"]["message"]
    assert http.post("/_emulator/faults", json={"latency": 5}).status_code == 400


async def _burst(server, http, n: int, latency_ms: int):
    """``n`` concurrent requests under a latency fault: the responses and the seconds taken."""
    http.post("/_emulator/faults", json={"latency_ms": latency_ms}).raise_for_status()
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key="t", max_retries=0) as c:
        start = time.monotonic()
        results = await asyncio.gather(*(c.responses.create(model="m", input=f"q{i}") for i in range(n)))
        return results, time.monotonic() - start


@pytest.mark.asyncio
async def test_latency_is_non_blocking(server, http):
    results, elapsed = await _burst(server, http, 20, latency_ms=200)
    assert sorted(r.output_text for r in results) == sorted(f"[emulator] turn 1: q{i}" for i in range(20))
    assert 0.2 <= elapsed < 1.0  # 20 x 200 ms in parallel, not in series


def test_from_env():
    env = {"FLOWRUN_EMULATOR_FAULTS": "429x3,drop@1", "FLOWRUN_EMULATOR_LATENCY_MS": "40"}
    emulator = Emulator.from_env(environ=env)
    assert emulator.faults.latency_ms == 40
    assert [f.count for f in emulator.faults.status] == [3] and emulator.faults.stream[0].value == 1
    assert Emulator.from_env(latency_ms=5, faults="", environ=env).faults.latency_ms == 5
    with pytest.raises(ValueError):
        Emulator.from_env(environ={"FLOWRUN_EMULATOR_LATENCY_MS": "soon"})
    with pytest.raises(FaultSpecError):
        Emulator.from_env(environ={"FLOWRUN_EMULATOR_FAULTS": "429x"})


@pytest.mark.asyncio
async def test_hundred_concurrent_requests_with_latency(server, http):
    results, elapsed = await _burst(server, http, 100, latency_ms=100)
    assert len({r.id for r in results}) == 100
    assert 0.1 <= elapsed < 3.0
