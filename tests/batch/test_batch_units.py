"""The pieces of batch mode on their own: custom ids, JSONL lines split at the file
limits, what an output or error line means, and the settings' environment variables."""

from __future__ import annotations

import json

import pytest

from flowrun.batch.lines import Line, custom_id, outcome, parse_custom_id, read_jsonl, split
from flowrun.batch.settings import BatchSettings
from flowrun.errors import RateLimited, RequestRejected, ServerError, UsageError


def test_custom_ids_name_row_step_item_and_turn():
    assert custom_id(3, "classify", 0) == "row-3:classify:0"
    assert custom_id(12, "explain.4", 2) == "row-12:explain:4:2"
    assert parse_custom_id("row-12:explain:4:2") == (12, "explain", 4, 2)
    assert parse_custom_id("row-3:classify:1") == (3, "classify", None, 1)
    with pytest.raises(ValueError):
        parse_custom_id("request-1")


def test_a_line_is_one_batch_request_in_jsonl():
    line = Line("row-1:a:0", 1, {"model": "m", "input": "héllo"})
    record = json.loads(line.data)
    assert line.data.endswith(b"\n") and line.data.count(b"\n") == 1
    assert record == {"custom_id": "row-1:a:0", "method": "POST", "url": "/v1/responses",
                      "body": {"model": "m", "input": "héllo"}}
    assert line.digest.startswith("sha256:")
    assert Line("row-2:a:0", 2, {"model": "m", "input": "héllo"}).digest == line.digest


def test_split_at_the_line_and_byte_limits():
    lines = [Line(f"row-{n}:a:0", n, {"input": "x" * 50}) for n in range(1, 8)]
    assert [len(p) for p in split(lines, max_lines=3)] == [3, 3, 1]
    size = len(lines[0].data)
    assert [len(p) for p in split(lines, max_bytes=2 * size)] == [2, 2, 2, 1]
    assert [len(p) for p in split(lines, max_bytes=2 * size - 1)] == [1] * 7
    assert sum(len(p) for p in split(lines)) == 7 and len(list(split(lines))) == 1
    with pytest.raises(RequestRejected, match="more than a batch file may hold"):
        list(split(lines, max_bytes=size - 1))


def test_what_output_and_error_lines_mean():
    ok = {"custom_id": "c", "response": {"status_code": 200, "body": {"id": "resp_1"}}, "error": None}
    assert outcome(ok, "") == {"id": "resp_1"}
    busy = outcome({"response": {"status_code": 429, "body": {"error": {"message": "slow"}}}}, "")
    assert isinstance(busy, RateLimited) and busy.retryable and busy.retry_after == 0.0 and "slow" in str(busy)
    broken = outcome({"response": {"status_code": 503, "body": {"error": {"message": "down"}}}}, "")
    assert isinstance(broken, ServerError) and broken.status == 503
    bad = outcome({"response": {"status_code": 400, "body": {"error": {"message": "bad model"}}}}, "")
    assert isinstance(bad, RequestRejected) and not bad.retryable and "bad model" in str(bad)
    expired = outcome({"response": None, "error": {"code": "batch_expired", "message": "late"}}, "")
    assert isinstance(expired, ServerError) and expired.retryable
    odd = outcome({"response": None, "error": {"code": "invalid_request", "message": "no"}}, "")
    assert isinstance(odd, RequestRejected)
    missing = outcome(None, "the batch expired before it ran it")
    assert isinstance(missing, ServerError) and "expired" in str(missing)


def test_read_jsonl_keys_by_custom_id_and_skips_blank_lines():
    data = b'{"custom_id": "a", "response": null}\n\n{"custom_id": "b", "response": null}\n'
    assert sorted(read_jsonl(data)) == ["a", "b"]


def test_settings_by_provider_and_environment():
    fast = BatchSettings.for_provider("emulator", environ={})
    slow = BatchSettings.for_provider("azure", "dep", True, environ={})
    assert fast.poll_initial < 0.1 <= 2 <= slow.poll_initial
    assert (slow.deployment, slow.detach, slow.quota_initial) == ("dep", True, 60.0)
    tuned = BatchSettings.for_provider("openai", environ={"FLOWRUN_BATCH_POLL": "5,30", "FLOWRUN_BATCH_MAX_LINES": "10"})
    assert (tuned.poll_initial, tuned.poll_max, tuned.max_lines) == (5.0, 30.0, 10)
    for env in ({"FLOWRUN_BATCH_POLL": "soon"}, {"FLOWRUN_BATCH_POLL": "-1"},
                {"FLOWRUN_BATCH_MAX_LINES": "many"}):
        with pytest.raises(UsageError):
            BatchSettings.for_provider("openai", environ=env)


def test_the_progress_view_shows_each_batch_status_and_every_tenth_of_its_lines():
    import io

    from rich.console import Console

    from flowrun.batch.progress import BatchProgress

    out = io.StringIO()
    view = BatchProgress(Console(file=out, width=200))
    event = {"batch_id": "batch_1", "layer": 2, "round": 1, "part": 0, "lines": 100, "completed": 0, "failed": 0}
    view.on_batch({**event, "status": "submitted"})
    view.on_batch({**event, "status": "in_progress", "completed": 3})
    view.on_batch({**event, "status": "in_progress", "completed": 8})  # under a tenth more: not shown
    view.on_batch({**event, "status": "in_progress", "completed": 12, "failed": 2})
    view.on_batch({**event, "status": "completed", "completed": 97, "failed": 3})
    shown = out.getvalue().splitlines()
    assert shown == ["layer 2 round 1 submitted 0/100  batch_1", "layer 2 round 1 in_progress 3/100  batch_1",
                     "layer 2 round 1 in_progress 14/100, 2 failed  batch_1",
                     "layer 2 round 1 completed 100/100, 3 failed  batch_1"]
