"""The emulator's quotas over real HTTP with the openai SDK: 429 with Retry-After past
the requests or tokens quota, x-ratelimit-* headers on every response, the journal's
status, reset, and the ``flowrun emulator --rpm`` flag."""

from __future__ import annotations

import openai
import pytest

from flowrun.emulator.model import count_tokens
from flowrun.emulator.quota import quotas, set_quota


def test_requests_past_the_quota_get_429_with_retry_after(emu, client):
    set_quota(emu.server.emulator, rpm=6)  # one request every 10 s, at most one at once
    raw = client.responses.with_raw_response.create(model="m", input="hello")
    assert raw.headers["x-ratelimit-limit-requests"] == "6"
    assert raw.headers["x-ratelimit-remaining-requests"] == "0"
    assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    with pytest.raises(openai.RateLimitError) as err:
        client.responses.create(model="m", input="hello")
    headers = err.value.response.headers
    assert 8000 < int(headers["retry-after-ms"]) <= 10000 and headers["retry-after"] == "10"
    assert err.value.code == "rate_limit_exceeded"
    assert "requests per minute" in err.value.message
    assert "x-ratelimit-remaining-requests" in headers
    assert [e["status"] for e in emu.journal()] == [200, 429]
    assert quotas(emu.server.emulator).refused == 1


def test_tokens_are_charged_from_usage_and_refuse_once_spent(emu, client):
    set_quota(emu.server.emulator, tpm=60)  # 1 token a second
    text = "one two three four five six seven eight"
    first = client.responses.create(model="m", input=text)
    assert first.usage.total_tokens == count_tokens(text) + first.usage.output_tokens
    assert first.usage.total_tokens > 10  # the bucket is now in debt for many seconds
    with pytest.raises(openai.RateLimitError) as err:
        client.responses.create(model="m", input=text)
    assert "tokens per minute" in err.value.message
    assert quotas(emu.server.emulator).charged == first.usage.total_tokens


def test_no_quota_no_headers_and_reset_forgets_it(emu, client):
    raw = client.responses.with_raw_response.create(model="m", input="hi")
    assert not [h for h in raw.headers if h.startswith("x-ratelimit")]
    set_quota(emu.server.emulator, rpm=60)
    emu.reset()
    for _ in range(3):
        client.responses.create(model="m", input="hi")  # no quota after reset


def test_bad_quota_settings_are_refused(emu):
    with pytest.raises(ValueError, match="'rpm' must be a positive number"):
        set_quota(emu.server.emulator, rpm=-1)
