"""Faults under the default policies: retries through a bad patch, dropped streams named
as such, Retry-After capped by max_delay, and the default concurrency limit. Real SDK
over HTTP against the emulator's injected faults."""

from __future__ import annotations

import asyncio
import time

from flowkit import Recorder, run_flow, step_error

from flowrun.emulator.service import BEFORE_REPLY
from flowrun.retry import DEFAULT_POLICY
from flowrun.spec import Flow, RetryPolicy


def test_the_default_policy_is_the_documented_field_defaults():
    assert DEFAULT_POLICY == RetryPolicy()
    assert (DEFAULT_POLICY.max, DEFAULT_POLICY.initial_delay, DEFAULT_POLICY.max_delay) == (8, 0.5, 60.0)
    assert Flow.model_fields["max_concurrency"].default == 100


def test_default_retries_ride_out_a_drop_a_500_and_a_429_in_a_row(tmp_path, emu):
    """Three failed attempts in a row (one step in 37 sees that under 10 % each of 429,
    500 and drops): the default policy, no ``retries:`` in the flow, must get through."""
    emu.script({"steps": {"a": [
        {"text": "cut short", "drop_stream_after": 2},
        {"error": {"status": 500, "message": "boom"}},
        {"error": {"status": 429, "message": "slow down", "retry_after": 0.05}},
        {"text": "finally"},
    ]}})
    hooks = Recorder()
    result = run_flow(tmp_path, emu, """
        name: patch
        defaults: {stream: true}
        steps:
          a: {input: "hello"}
    """, hooks=hooks)
    assert result.status == "succeeded", step_error(result, "a")
    assert result.steps["a"].result.text == "finally"
    assert result.steps["a"].result.attempts == 4 == len(emu.posts("a"))
    retries = [d for d in hooks.details() if d.startswith("retry ")]
    assert "stream dropped after 2 events" in retries[0], retries
    assert "Connection error" not in " ".join(retries)
    assert "server error (500)" in retries[1] and "rate limited (429)" in retries[2]


def test_a_dropped_stream_that_stays_dropped_says_so(tmp_path, emu):
    emu.faults("drop@3x5")
    result = run_flow(tmp_path, emu, """
        name: dropped
        steps:
          a: {input: "hello", stream: true, retries: {max: 1, initial_delay: 0.01}}
    """)
    assert result.status == "failed"
    assert "stream dropped after 3 events" in step_error(result, "a")


def test_a_retry_after_past_max_delay_fails_at_once_saying_what_was_asked(tmp_path, emu):
    emu.faults("429x1:retry_after=3600")
    start = time.monotonic()
    result = run_flow(tmp_path, emu, """
        name: patient
        steps:
          a: {input: "hello", timeout: 10s}
    """)
    elapsed = time.monotonic() - start
    assert result.status == "failed"
    error = step_error(result, "a")
    assert "retry after 3600 s" in error and "max_delay (60 s)" in error, error
    assert elapsed < 5
    assert len(emu.posts("a")) == 1


def test_a_retry_after_within_max_delay_is_obeyed(tmp_path, emu):
    emu.faults("429x1:retry_after=0.3")
    result = run_flow(tmp_path, emu, """
        name: patient
        steps:
          a: {input: "hello", retries: {max: 1, initial_delay: 0.01, max_delay: 0.5}}
    """)
    assert result.status == "succeeded", step_error(result, "a")
    first, second = (e["time"] for e in emu.posts("a"))
    assert second - first >= 0.28


class InFlight:
    """An emulator BEFORE_REPLY hook that holds each request until more than ``limit`` are
    held at once or no new one has arrived for ``quiet`` seconds (the client is waiting
    for a slot), and keeps the peak number held."""

    def __init__(self, limit: int, quiet: float = 0.4):
        self.limit, self.quiet = limit, quiet
        self.held = self.peak = 0
        self.last = 0.0

    async def __call__(self, turn):
        if turn.step != "each":  # a late request of another test on the shared emulator
            return []
        self.held += 1
        self.peak = max(self.peak, self.held)
        self.last = time.monotonic()
        try:
            while self.held <= self.limit and time.monotonic() - self.last < self.quiet:
                await asyncio.sleep(0.02)
        finally:
            self.held -= 1
        return []


def test_a_wide_for_each_is_limited_by_the_default_concurrency(tmp_path, emu):
    """With no max_concurrency, at most 100 requests are in flight at once."""
    gate = InFlight(limit=100)
    BEFORE_REPLY.append(gate)
    try:
        result = run_flow(tmp_path, emu, """
            name: wide
            steps:
              each:
                for_each: "{{ range(150) | list }}"
                input: "item {{ item }}"
        """)
    finally:
        BEFORE_REPLY.remove(gate)
    assert result.status == "succeeded", step_error(result, "each")
    assert len(emu.posts("each")) == 150
    assert 20 < gate.peak <= 100, gate.peak


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:  # bound, never listening: a connect is refused
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_endpoint_fails_fast_naming_it(tmp_path):
    """Connection refused or an unknown host: two quick retries, not the default eight
    with backoff (which took about a minute), and an error that names the endpoint."""
    from flowrun.providers import ProviderConfig

    port = _closed_port()
    for base_url, why in ((f"http://127.0.0.1:{port}/v1", "connection refused"),
                          ("http://no-such-host.invalid/v1", "host no-such-host.invalid not found")):
        hooks = Recorder()
        result = run_flow(tmp_path, None, """
            name: unreachable
            steps:
              a: {model: gpt-4.1, input: "hello"}
        """, hooks=hooks, provider=ProviderConfig("compatible", base_url, "sk-test"))
        assert result.status == "failed"
        error = step_error(result, "a")
        assert error.startswith(f"cannot reach POST {base_url}/responses: {why}"), error
        assert "--base-url" in error and "OPENAI_BASE_URL" in error
        retries = [d for d in hooks.details() if d.startswith("retry ")]
        assert [r.split(" in ")[0] for r in retries] == ["retry 1", "retry 2"], retries
        assert all(float(r.split(" in ")[1].split("s:")[0]) <= 0.5 for r in retries), retries


def test_unreachable_is_only_refused_or_unknown_hosts():
    """Other failures keep the full policy: a dropped connection, a timeout, a 5xx."""
    import random

    from flowrun.errors import ConnectionFailed, EndpointUnreachable, ServerError
    from flowrun.retry import UNREACHABLE_RETRIES, with_retries

    def failing(error):
        calls = []

        async def op():
            calls.append(1)
            raise error
        return op, calls

    policy = RetryPolicy(max=5, initial_delay=0.001, max_delay=0.001)
    for error, attempts in ((EndpointUnreachable("cannot reach"), UNREACHABLE_RETRIES + 1),
                            (ConnectionFailed("stream dropped"), 6), (ServerError("500", 500), 6)):
        op, calls = failing(error)
        try:
            asyncio.run(with_retries(op, policy, rng=random.Random(1)))
        except type(error):
            pass
        assert len(calls) == attempts, (error, len(calls))
    op, calls = failing(EndpointUnreachable("cannot reach"))  # never more than the policy allows
    try:
        asyncio.run(with_retries(op, RetryPolicy(max=1), rng=random.Random(1)))
    except EndpointUnreachable:
        pass
    assert len(calls) == 2
