"""Background mode: polling, cancel, resuming a stream with starting_after."""
from __future__ import annotations

import asyncio

import openai
import pytest

from flowrun.emulator import EmulatorServer


@pytest.mark.asyncio
async def test_background_goes_queued_in_progress_completed():
    # own server with slow phases (150 ms each) so 10 ms polling reliably sees every status
    async with EmulatorServer(background_delay_ms=150) as server:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="t", max_retries=0) as aclient:
            r = await aclient.responses.create(model="m", input="long job", background=True)
            assert r.status == "queued" and r.background is True and r.output == []
            seen = [r.status]
            while r.status in ("queued", "in_progress"):
                await asyncio.sleep(0.01)
                r = await aclient.responses.retrieve(r.id)
                if r.status != seen[-1]:
                    seen.append(r.status)
    assert seen == ["queued", "in_progress", "completed"]
    assert r.output_text == "[emulator] turn 1: long job" and r.usage.total_tokens > 0


@pytest.mark.asyncio
async def test_cancel_background(aclient):
    r = await aclient.responses.create(model="m", input="cancel me", background=True)
    cancelled = await aclient.responses.cancel(r.id)
    assert cancelled.status == "cancelled"
    await asyncio.sleep(0.1)  # longer than both phases: it must stay cancelled
    again = await aclient.responses.retrieve(r.id)
    assert again.status == "cancelled" and again.output == []
    assert (await aclient.responses.cancel(r.id)).status == "cancelled"  # idempotent


@pytest.mark.asyncio
async def test_cancel_rules(aclient):
    done = await aclient.responses.create(model="m", input="sync")
    with pytest.raises(openai.BadRequestError):
        await aclient.responses.cancel(done.id)
    with pytest.raises(openai.NotFoundError):
        await aclient.responses.cancel("resp_unknown")
    with pytest.raises(openai.BadRequestError) as info:
        await aclient.responses.create(model="m", input="x", background=True, store=False)
    assert "store" in info.value.message


def test_background_stream_resume_with_starting_after(client, load_script):
    load_script({"default": [{"text": "resumable background text with several words", "drop_stream_after": 4}]})
    first = []
    with pytest.raises(openai.APIConnectionError):
        for event in client.responses.create(model="m", input="x", background=True, stream=True):
            first.append(event)
    assert [e.type for e in first] == ["response.created", "response.queued", "response.in_progress",
                                       "response.output_item.added"]
    assert first[0].response.status == "queued"
    cursor = first[-1].sequence_number
    resumed = list(client.responses.retrieve(first[0].response.id, stream=True, starting_after=cursor))
    assert [e.sequence_number for e in resumed] == list(range(cursor + 1, cursor + 1 + len(resumed)))
    assert resumed[0].type == "response.content_part.added" and resumed[-1].type == "response.completed"
    text = "".join(e.delta for e in resumed if e.type == "response.output_text.delta")
    assert text == "resumable background text with several words" == resumed[-1].response.output_text


def test_stream_helper_resumes_by_response_id(client):
    created = client.responses.create(model="m", input="resume helper", background=True, stream=True)
    head = next(iter(created))
    created.close()
    with client.responses.stream(response_id=head.response.id, starting_after=0) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert events[0].sequence_number == 1 and final.output_text == "[emulator] turn 1: resume helper"


def test_stream_resume_requires_background_stream(client, http):
    r = client.responses.create(model="m", input="x", background=True)
    got = http.get(f"/v1/responses/{r.id}", params={"stream": "true"})
    assert got.status_code == 400 and got.json()["error"]["param"] == "stream"
    bad = http.get(f"/v1/responses/{r.id}", params={"stream": "true", "starting_after": "abc"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "starting_after"


def test_scripted_error_fails_background_response(client, load_script):
    import time
    load_script({"default": [{"error": {"status": 429, "message": "quota"}}]})
    r = client.responses.create(model="m", input="x", background=True)
    assert r.status == "queued"  # the error surfaces in the response, not as HTTP
    while r.status in ("queued", "in_progress"):
        time.sleep(0.01)
        r = client.responses.retrieve(r.id)
    assert r.status == "failed" and r.error.code == "rate_limit_exceeded" and r.error.message == "quota"


def test_delete_background_response_ends_followers(client):
    r = client.responses.create(model="m", input="x", background=True, stream=True)
    head = next(iter(r))
    client.responses.delete(head.response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(head.response.id)
    r.close()
