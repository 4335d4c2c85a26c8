"""Rows read as a stream (a JSON array across chunk borders, CSV quoting, line numbers),
cells typed by input types, and the rate budget's buckets, estimates and headers."""

from __future__ import annotations

import asyncio
import json

import pytest
from flowkit import write

from flowrun.dataset import rows as rows_mod
from flowrun.dataset.rows import DatasetError, read_rows, typed_cell
from flowrun.ratelimit import Bucket, RateBudget, parse_reset


def test_json_array_is_read_across_small_chunks_with_line_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(rows_mod, "CHUNK", 7)  # every object spans several reads
    items = [{"ticket": f"T{i}: {'x' * i}", "n": i} for i in range(1, 6)] + [42]
    path = write(tmp_path / "rows.json", json.dumps(items, indent=2))
    got = list(read_rows(path))
    assert [r.number for r in got] == [1, 2, 3, 4, 5, 6]
    assert [r.values for r in got[:5]] == items[:5]
    assert [r.line for r in got] == [2, 6, 10, 14, 18, 22]
    assert got[5].error == f"{path}:22: expected a JSON object of input values, got int"


def test_json_array_syntax_error_names_line_and_column(tmp_path):
    path = write(tmp_path / "rows.json", '[\n {"a": 1},\n {"a": 2,, "b": 3}\n]')
    reader = read_rows(path)
    assert next(reader).values == {"a": 1}
    with pytest.raises(DatasetError) as err:
        next(reader)
    assert str(err.value).startswith(f"{path}:3: column 10: not valid JSON")


def test_csv_quoted_newlines_keep_row_lines(tmp_path):
    path = write(tmp_path / "rows.csv", 'ticket,n\n"two\nlines",1\nplain,2\n\nthird,3,extra\n')
    got = list(read_rows(path))
    assert [(r.number, r.line) for r in got] == [(1, 2), (2, 4), (3, 6)]
    assert got[0].values == {"ticket": "two\nlines", "n": "1"}
    assert got[2].error == f"{path}:6: 3 cells, the header has 2"


@pytest.mark.parametrize("kind,text,value", [
    ("integer", " 7 ", 7), ("number", "2.5", 2.5), ("number", "3", 3), ("boolean", "Yes", True),
    ("boolean", "0", False), ("list", '["a", 1]', ["a", 1]), ("object", '{"k": 1}', {"k": 1}),
    ("string", " as is ", " as is "),
])
def test_cells_typed_by_input_type(kind, text, value):
    assert typed_cell(kind, text) == value


@pytest.mark.parametrize("kind,text,message", [
    ("integer", "7.5", "must be an integer, got '7.5'"),
    ("boolean", "maybe", "must be a boolean (true/false, yes/no, 1/0), got 'maybe'"),
    ("list", '{"k": 1}', "must be a list written as JSON"),
])
def test_bad_cells_say_what_was_expected(kind, text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        typed_cell(kind, text)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_refills_at_its_rate_and_holds_one_second():
    clock = Clock()
    bucket = Bucket(600, clock)  # 10 a second
    assert bucket.capacity == 5 and bucket.wait_for(1) == 0  # half a second of it
    bucket.take(5)
    assert bucket.wait_for(1) == pytest.approx(0.1)
    clock.now = 5.0
    assert bucket.refill() == 5  # never more than half a second of it
    bucket.take(25)  # a request larger than the bucket: taken from a full one, in debt
    assert bucket.wait_for(1) == pytest.approx(2.1)


def test_usage_corrects_the_estimate_and_headers_slow_down():
    clock = Clock()
    budget = RateBudget(tpm=12000, clock=clock)  # 200 tokens a second, 100 held
    params = {"model": "m", "input": "one two three four", "max_output_tokens": 50}
    ticket = asyncio.run(budget.acquire(params))
    assert ticket.tokens == 5 + 4 + 50  # ceil(18 / 4) + one item + max_output_tokens
    assert budget.shared.tokens.level == pytest.approx(100 - 59)
    budget.settle(ticket, {}, {"input_tokens": 5, "output_tokens": 4, "total_tokens": 9}, params)
    assert budget.shared.tokens.level == pytest.approx(100 - 9)
    # the service says a tenth of the tokens are left, and no requests until 2 s from now
    budget.settle(ticket, {"x-ratelimit-limit-tokens": "12000", "x-ratelimit-remaining-tokens": "1200",
                           "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0",
                           "x-ratelimit-reset-requests": "2s"})
    assert budget.shared.tokens.level == pytest.approx(10)
    assert budget.shared.requests is not None  # learned from the headers
    assert budget.shared.paused_until == pytest.approx(2.0)


def test_a_429_pauses_the_pool_for_its_retry_after():
    from flowrun.errors import RateLimited

    clock = Clock()
    budget = RateBudget(rpm=600, clock=clock)
    ticket = asyncio.run(budget.acquire({"model": "m", "input": "hi"}))
    budget.failed(ticket, RateLimited("rate limited", 429, 1.5))
    assert (budget.rejected, budget.shared.paused_until) == (1, 1.5)


def test_per_model_pools_are_separate():
    budget = RateBudget(rpm=60, models={"big": {"rpm": 6}})
    assert budget.pool("big") is not budget.pool("small")
    assert budget.pool("small") is budget.shared
    assert budget.pool("big").requests.per_minute == 6


@pytest.mark.parametrize("text,seconds", [("1s", 1), ("6m0s", 360), ("20ms", 0.02), ("0.5", 0.5),
                                          ("1h2m3s", 3723), ("soon", None)])
def test_reset_durations(text, seconds):
    assert parse_reset(text) == (pytest.approx(seconds) if seconds is not None else None)
