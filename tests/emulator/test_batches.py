"""The emulator's Batch API through the real openai SDK: files with purpose batch,
batches create / retrieve / list / cancel, output and error files, faults, quota."""
from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest
from flowkit import assert_conforms

from flowrun.emulator import Emulator
from flowrun.emulator.batch_settings import batch_settings

TERMINAL = ("completed", "failed", "expired", "cancelled")
TOOL = {"type": "function", "name": "lookup", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
    "additionalProperties": False}}
STRUCTURED = {"format": {"type": "json_schema", "name": "answer", "strict": True, "schema": {
    "type": "object", "properties": {"title": {"type": "string"}, "n": {"type": "integer"}},
    "required": ["title", "n"], "additionalProperties": False}}}
BODIES = {
    "echo": {"model": "gpt-4.1", "input": "hello batch", "instructions": "be brief"},
    "structured": {"model": "gpt-4.1", "input": "give json", "text": STRUCTURED},
    "tool": {"model": "gpt-4.1", "input": "weather?", "tools": [TOOL], "tool_choice": "required"},
    "scripted": {"model": "gpt-4.1", "input": "x", "metadata": {"flowrun_step": "s"}},
    "messages": {"model": "gpt-4.1", "input": [{"role": "developer", "content": "rules"},
                                                {"role": "user", "content": [{"type": "input_text",
                                                                              "text": "two parts"}]}]},
}
SCRIPT = {"steps": {"s": [{"text": "first scripted"}, {"text": "second scripted"}]}}
RANDOM_KEYS = {"id", "created_at", "completed_at", "call_id"}


def _line(custom_id: str, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/responses", "body": body, **extra}


def _jsonl(lines: list[Any]) -> bytes:
    return "".join((json.dumps(x) if not isinstance(x, str) else x) + "\n" for x in lines).encode()


def _submit(client: openai.OpenAI, lines: list[Any], **kwargs: Any) -> Any:
    upload = client.files.create(file=("requests.jsonl", _jsonl(lines)), purpose="batch")
    return client.batches.create(input_file_id=upload.id, endpoint="/v1/responses",
                                 completion_window="24h", **kwargs)


def _wait(client: openai.OpenAI, batch_id: str, until: Any = None) -> Any:
    deadline = time.monotonic() + 60
    while True:
        batch = client.batches.retrieve(batch_id)
        if (until(batch) if until else batch.status in TERMINAL):
            return batch
        assert time.monotonic() < deadline, f"batch still {batch.status}: {batch.request_counts}"
        time.sleep(0.01)


def _rows(client: openai.OpenAI, file_id: str | None) -> dict[str, dict[str, Any]]:
    if file_id is None:
        return {}
    text = client.files.content(file_id).text
    rows = [json.loads(line) for line in text.splitlines()]
    return {row["custom_id"]: row for row in rows}


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in RANDOM_KEYS}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _settings(http, **values: Any) -> dict[str, Any]:
    r = http.post("/_emulator/batches", json=values)
    assert r.status_code == 200, r.text
    return r.json()


def test_outputs_equal_the_direct_responses_and_conform(server, http, client, load_script):
    load_script(SCRIPT)
    direct = {name: client.responses.with_raw_response.create(**body).http_response.json()
              for name, body in BODIES.items()}
    http.post("/_emulator/reset").raise_for_status()
    load_script(SCRIPT)
    upload = client.files.create(file=("requests.jsonl", _jsonl([_line(n, b) for n, b in BODIES.items()])),
                                 purpose="batch")
    raw = http.post("/v1/batches", json={"input_file_id": upload.id, "endpoint": "/v1/responses",
                                         "completion_window": "24h", "metadata": {"job": "nightly"}})
    assert raw.status_code == 200
    assert_conforms("Batch", raw.json())
    created = client.batches.retrieve(raw.json()["id"])
    assert raw.json()["status"] == "validating" and created.model == "gpt-4.1"
    done = _wait(client, created.id)
    assert done.status == "completed", done.errors
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (5, 5, 0)
    assert done.error_file_id is None and done.metadata == {"job": "nightly"}
    assert done.created_at <= done.in_progress_at <= done.finalizing_at <= done.completed_at

    raw = http.get(f"/v1/batches/{done.id}").json()
    assert_conforms("Batch", raw)
    rows = _rows(client, done.output_file_id)
    assert sorted(rows) == sorted(BODIES)
    for name, row in rows.items():
        assert row["error"] is None and row["id"].startswith("batch_req_")
        assert row["response"]["status_code"] == 200 and row["response"]["request_id"].startswith("req_")
        body = row["response"]["body"]
        assert_conforms("Response", body)
        assert _stable(body) == _stable(direct[name]), name
    usage = sum(r["response"]["body"]["usage"]["total_tokens"] for r in rows.values())
    assert done.usage.total_tokens == usage > 0
    assert rows["scripted"]["response"]["body"]["output"][0]["content"][0]["text"] == "first scripted"

    out_file = client.files.retrieve(done.output_file_id)
    assert out_file.purpose == "batch_output" and out_file.filename == f"{done.id}_output.jsonl"
    assert_conforms("OpenAIFile", http.get(f"/v1/files/{done.output_file_id}").json())
    assert_conforms("OpenAIFile", http.get(f"/v1/files/{done.input_file_id}").json())
    # the journal has the HTTP requests only: one create, no POST /responses for the lines
    journal = http.get("/_emulator/requests").json()
    assert [e["path"] for e in journal if e["method"] == "POST"].count("/v1/batches") == 1
    assert not [e for e in journal if e["path"] == "/v1/responses"]


def test_responses_chain_across_batches_and_tool_loops(client):
    first = _wait(client, _submit(client, [_line("a", {"model": "gpt-4.1", "input": "one"}),
                                           _line("t", BODIES["tool"])]).id)
    rows = _rows(client, first.output_file_id)
    prev = rows["a"]["response"]["body"]
    call = rows["t"]["response"]["body"]["output"][0]
    assert call["type"] == "function_call" and json.loads(call["arguments"]) == {"city": "city"}
    second = _wait(client, _submit(client, [
        _line("a2", {"model": "gpt-4.1", "input": "two", "previous_response_id": prev["id"]}),
        _line("t2", {"model": "gpt-4.1", "tools": [TOOL], "previous_response_id": rows["t"]["response"]["body"]["id"],
                     "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]}),
    ]).id)
    rows2 = _rows(client, second.output_file_id)
    assert rows2["a2"]["response"]["body"]["output"][0]["content"][0]["text"] == "[emulator] turn 2: two"
    assert rows2["t2"]["response"]["body"]["output"][0]["content"][0]["text"] == "[emulator] tool results: sunny"
    # stored like any response: retrievable, and chainable from a plain request
    assert client.responses.retrieve(prev["id"]).id == prev["id"]
    follow = client.responses.create(model="m", input="three", previous_response_id=prev["id"])
    assert follow.output_text == "[emulator] turn 2: three"


def test_line_faults_fail_chosen_lines_and_bad_bodies_fail_alone(http, client):
    spec = "line@every=3:status=500,line@id=keep-*x1:status=429"
    http.post("/_emulator/faults", json={"spec": spec}).raise_for_status()
    lines = [_line("keep-1", {"model": "m", "input": "k"}),
             _line("bad", {"model": "m", "input": "x", "temprature": 1})]
    lines += [_line(f"row-{i}", {"model": "m", "input": f"q{i}"}) for i in range(1, 8)]  # lines 3..9
    done = _wait(client, _submit(client, lines).id)
    assert done.status == "completed"
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (9, 4, 5)
    errors, outputs = _rows(client, done.error_file_id), _rows(client, done.output_file_id)
    assert sorted(errors) == ["bad", "keep-1", "row-1", "row-4", "row-7"]
    assert sorted(outputs) == ["row-2", "row-3", "row-5", "row-6"]
    assert errors["row-1"]["response"]["status_code"] == 500
    assert errors["keep-1"]["response"]["status_code"] == 429
    assert errors["keep-1"]["response"]["body"]["error"]["code"] == "rate_limit_exceeded"
    assert errors["bad"]["response"]["status_code"] == 400
    assert errors["bad"]["response"]["body"]["error"]["param"] == "temprature"
    for row in errors.values():
        assert_conforms("ErrorResponse", row["response"]["body"])
    # keep-* was capped at one line: its retry goes through; line 3 fails again (every 3rd)
    retry = _wait(client, _submit(client, [_line("keep-1", {"model": "m", "input": "k"}),
                                           _line("row-2", {"model": "m", "input": "q2"}),
                                           _line("row-1", {"model": "m", "input": "q1"})]).id)
    assert sorted(_rows(client, retry.output_file_id)) == ["keep-1", "row-2"]
    assert sorted(_rows(client, retry.error_file_id)) == ["row-1"]
    assert http.get("/_emulator/faults").json()["line"][1]["count"] == 0


def test_rate_faults_are_deterministic_and_redrawn_on_retry(http, client):
    def failed(spec: str, ids: list[str]) -> set[str]:
        http.post("/_emulator/faults", json={"spec": spec}).raise_for_status()
        done = _wait(client, _submit(client, [_line(i, {"model": "m", "input": i}) for i in ids]).id)
        return set(_rows(client, done.error_file_id))

    ids = [f"r{i}" for i in range(60)]
    first = failed("line@rate=0.3:seed=s", ids)
    assert 5 <= len(first) <= 35
    assert failed("line@rate=0.3:seed=s", ids) == first  # same rule, same lines
    assert failed("line@rate=0", ids) == set() and failed("line@rate=1", ids[:5]) == set(ids[:5])
    http.post("/_emulator/faults", json={"spec": "line@rate=0.5:seed=s"}).raise_for_status()
    again = []
    for _ in range(2):  # one rule seeing the same ids twice draws again for each
        done = _wait(client, _submit(client, [_line(i, {"model": "m", "input": i}) for i in ids]).id)
        again.append(set(_rows(client, done.error_file_id)))
    assert again[0] != again[1]


def test_bad_fault_rules_are_refused(http):
    for spec in ("line@every=0", "line@rate=2", "line@id=", "line@every=2:status=200", "line@nth=3",
                 "line@every=2:colour=red"):
        r = http.post("/_emulator/faults", json={"spec": spec})
        assert r.status_code == 400 and "line@" in r.json()["error"]["message"], spec


def test_cancel_keeps_the_lines_already_done(http, client):
    _settings(http, pause_after=2)
    created = _submit(client, [_line(f"c{i}", {"model": "m", "input": f"n{i}"}) for i in range(5)])
    assert_conforms("Batch", http.get(f"/v1/batches/{created.id}").json())  # validating or in progress
    paused = _wait(client, created.id, lambda b: b.request_counts.completed == 2)
    assert paused.status == "in_progress"
    assert_conforms("Batch", http.get(f"/v1/batches/{created.id}").json())
    raw = http.post(f"/v1/batches/{created.id}/cancel")
    assert raw.status_code == 200
    assert_conforms("Batch", raw.json())
    assert raw.json()["status"] == "cancelling" and raw.json()["cancelling_at"] >= raw.json()["in_progress_at"]
    done = _wait(client, created.id)
    assert done.status == "cancelled" and done.cancelled_at >= done.cancelling_at
    assert_conforms("Batch", http.get(f"/v1/batches/{created.id}").json())
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (5, 2, 0)
    assert sorted(_rows(client, done.output_file_id)) == ["c0", "c1"]
    assert client.batches.cancel(created.id).status == "cancelled"  # cancelling again changes nothing
    _settings(http, pause_after=None)
    finished = _wait(client, _submit(client, [_line("x", {"model": "m", "input": "x"})]).id)
    with pytest.raises(openai.ConflictError, match="completed"):
        client.batches.cancel(finished.id)
    journal = http.get("/_emulator/requests").json()
    assert sum(e["path"].endswith("/cancel") for e in journal) == 3


def test_cancel_while_validating(http, client):
    _settings(http, delay_ms=600_000)  # validating for ten minutes, unless cancelled
    created = _submit(client, [_line("v", {"model": "m", "input": "v"})])
    assert client.batches.retrieve(created.id).status == "validating"
    assert client.batches.cancel(created.id).status == "cancelling"
    done = _wait(client, created.id)
    assert done.status == "cancelled" and done.in_progress_at is None and done.output_file_id is None
    assert done.request_counts.completed == 0


def test_expired_batch_writes_unreached_lines_to_the_error_file(http, client):
    http.post("/_emulator/faults", json={"spec": "expire@2"}).raise_for_status()
    done = _wait(client, _submit(client, [_line(f"e{i}", {"model": "m", "input": "e"}) for i in range(4)]).id)
    assert done.status == "expired" and done.expired_at is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 2)
    assert sorted(_rows(client, done.output_file_id)) == ["e0", "e1"]
    errors = _rows(client, done.error_file_id)
    assert sorted(errors) == ["e2", "e3"]
    assert errors["e2"]["response"] is None and errors["e2"]["error"]["code"] == "batch_expired"
    assert_conforms("Batch", http.get(f"/v1/batches/{done.id}").json())
    again = _wait(client, _submit(client, [_line("z", {"model": "m", "input": "z"})]).id)
    assert again.status == "completed"  # the rule expired one batch


def test_token_quota_fails_the_batch_until_running_ones_finish(http, client):
    body = {"model": "gpt-4.1", "input": "one two three four five six seven eight nine ten"}  # 13 tokens
    _settings(http, token_limit={"gpt-4.1": 30}, pause_after=0)
    running = _submit(client, [_line("a", body), _line("b", body)])  # 26 tokens
    _wait(client, running.id, lambda b: b.status == "in_progress")
    assert http.get("/_emulator/batches").json()["enqueued_tokens"] == {"gpt-4.1": 26}
    over = _wait(client, _submit(client, [_line("c", body)]).id)
    assert over.status == "failed" and over.failed_at is not None
    assert [e.code for e in over.errors.data] == ["token_limit_exceeded"]
    assert "gpt-4.1" in over.errors.data[0].message
    assert_conforms("Batch", http.get(f"/v1/batches/{over.id}").json())
    other_model = _wait(client, _submit(client, [_line("d", {**body, "model": "gpt-4.1-mini"})]).id,
                        lambda b: b.status != "validating")
    assert other_model.status == "in_progress"  # no limit for that model
    _settings(http, pause_after=None)
    assert _wait(client, running.id).status == "completed"
    retry = _wait(client, _submit(client, [_line("c", body)]).id)
    assert retry.status == "completed" and retry.request_counts.completed == 1


def test_invalid_lines_fail_the_batch_with_errors(http, client):
    good = {"model": "m", "input": "x"}
    lines = [
        _line("a", good),
        "{not json",
        _line("a", good),                                   # duplicate custom_id
        {**_line("b", good), "method": "GET"},
        {**_line("c", good), "url": "/v1/chat/completions"},
        _line("d", {"input": "no model"}),
        _line("e", {**good, "model": "other"}),
        {"method": "POST", "url": "/v1/responses", "body": good},
        "",
        _line("f", "not an object"),
    ]
    done = _wait(client, _submit(client, lines).id)
    assert done.status == "failed" and done.request_counts.total == 0 and done.output_file_id is None
    found = [(e.line, e.code, e.param) for e in done.errors.data]
    assert found == [(2, "invalid_json_line", None), (3, "duplicate_custom_id", "custom_id"),
                     (4, "invalid_method", "method"), (5, "invalid_url", "url"),
                     (6, "missing_required_parameter", "body.model"), (7, "mismatched_model", "body.model"),
                     (8, "missing_required_parameter", "custom_id"), (10, "invalid_request", "body")]
    assert_conforms("Batch", http.get(f"/v1/batches/{done.id}").json())


def test_upload_checks_and_limits(http, client):
    with pytest.raises(openai.BadRequestError, match="jsonl"):
        client.files.create(file=("requests.txt", _jsonl([_line("a", {"model": "m"})])), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="empty"):
        client.files.create(file=("requests.jsonl", b"\n\n"), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="UTF-8"):
        client.files.create(file=("requests.jsonl", b"\xff\xfe{}\n"), purpose="batch")
    _settings(http, max_lines=3, max_bytes=400)
    three = [_line(f"l{i}", {"model": "m", "input": "x"}) for i in range(3)]
    assert client.files.create(file=("ok.jsonl", _jsonl(three)), purpose="batch").purpose == "batch"
    with pytest.raises(openai.BadRequestError, match="at most 3"):
        client.files.create(file=("many.jsonl", _jsonl(three + three[:1])), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="at most 400 bytes"):
        client.files.create(file=("big.jsonl", _jsonl([_line("a", {"model": "m", "input": "x" * 400})])),
                            purpose="batch")
    # other purposes are not checked as batch input
    assert client.files.create(file=("notes.txt", b"anything"), purpose="user_data").bytes == 8


def test_create_is_checked_against_the_spec(client):
    upload = client.files.create(file=("r.jsonl", _jsonl([_line("a", {"model": "m", "input": "x"})])),
                                 purpose="batch")
    other = client.files.create(file=("r.txt", b"x"), purpose="user_data")
    with pytest.raises(openai.BadRequestError, match="completion_window"):
        client.batches.create(input_file_id=upload.id, endpoint="/v1/responses",
                              completion_window="1h")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="/v1/responses"):
        client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.batches.create(input_file_id=other.id, endpoint="/v1/responses", completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-nope", endpoint="/v1/responses", completion_window="24h")
    with pytest.raises(openai.BadRequestError, match="Unknown parameter"):
        client.batches.create(input_file_id=upload.id, endpoint="/v1/responses", completion_window="24h",
                              extra_body={"priority": "high"})
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")


def test_list_pages_newest_first(http, client):
    ids = [_submit(client, [_line("a", {"model": "m", "input": str(i)})]).id for i in range(5)]
    page = client.batches.list(limit=2)
    assert [b.id for b in page.data] == ids[::-1][:2] and page.has_more
    assert_conforms("ListBatchesResponse", http.get("/v1/batches", params={"limit": 2}).json())
    assert [b.id for b in client.batches.list(limit=2)] == ids[::-1]  # the SDK follows `after`
    last = http.get("/v1/batches", params={"after": ids[1]}).json()
    assert [b["id"] for b in last["data"]] == [ids[0]] and last["has_more"] is False
    empty = http.get("/v1/batches", params={"after": ids[0]}).json()
    assert empty["data"] == [] and not empty["has_more"]
    assert_conforms("ListBatchesResponse", empty)
    assert http.get("/v1/batches", params={"limit": 0}).status_code == 400
    assert http.get("/v1/batches", params={"after": "batch_unknown"}).status_code == 400
    http.post("/_emulator/reset").raise_for_status()
    assert client.batches.list().data == []


def test_azure_paths(server, http):
    with openai.OpenAI(base_url=server.azure_base_url, api_key="k", max_retries=0) as azure:
        done = _wait(azure, _submit(azure, [_line("a", {"model": "my-global-batch", "input": "hi"})]).id)
        assert done.status == "completed" and done.model == "my-global-batch"
        row = _rows(azure, done.output_file_id)["a"]
        assert row["response"]["body"]["model"] == "my-global-batch"
    paths = [e["path"] for e in http.get("/_emulator/requests").json() if e["method"] == "POST"]
    assert paths == ["/openai/v1/files", "/openai/v1/batches"]


def test_batch_lines_leave_the_http_quota_and_faults_alone(http, client):
    http.post("/_emulator/faults", json={"spec": "500x1"}).raise_for_status()
    done = _wait(client, _submit(client, [_line("a", {"model": "m", "input": "x"})]).id)
    assert done.request_counts.completed == 1
    assert http.get("/_emulator/faults").json()["status"][0]["count"] == 1  # still queued
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model="m", input="x")
    stream = _wait(client, _submit(client, [_line("s", {"model": "m", "input": "x", "stream": True})]).id)
    assert _rows(client, stream.error_file_id)["s"]["response"]["status_code"] == 400


def test_settings_from_env_and_control_route(http, emu):
    emulator = Emulator.from_env(environ={"FLOWRUN_EMULATOR_BATCH_DELAY_MS": "5",
                                          "FLOWRUN_EMULATOR_BATCH_TOKEN_LIMIT": "gpt-4.1=100,*=50",
                                          "FLOWRUN_EMULATOR_BATCH_MAX_LINES": "10"})
    settings = batch_settings(emulator)
    assert (settings.delay_ms, settings.max_lines) == (5, 10)
    assert (settings.limit_for("gpt-4.1"), settings.limit_for("other")) == (100, 50)
    settings.configure({"delay_ms": 9})
    emulator.reset()
    assert batch_settings(emulator).delay_ms == 5  # back to the startup settings
    with pytest.raises(ValueError, match="FLOWRUN_EMULATOR_BATCH_DELAY_MS"):
        Emulator.from_env(environ={"FLOWRUN_EMULATOR_BATCH_DELAY_MS": "soon"})
    with pytest.raises(ValueError, match="MODEL=N"):
        Emulator.from_env(environ={"FLOWRUN_EMULATOR_BATCH_TOKEN_LIMIT": "=5"})
    shown = emu.batch_settings(token_limit="7", delay_ms=1)
    assert shown["token_limit"] == {"*": 7} and shown["delay_ms"] == 1 and shown["batches"] == 0
    bad = http.post("/_emulator/batches", json={"speed": 1})
    assert bad.status_code == 400 and "unknown batch settings" in bad.json()["error"]["message"]
    assert http.post("/_emulator/batches", json={"max_lines": 0}).status_code == 400


def test_file_expiry(http, client):
    lines = _jsonl([_line("a", {"model": "m", "input": "x"})])
    default = client.files.create(file=("a.jsonl", lines), purpose="batch")
    assert default.expires_at == default.created_at + 30 * 24 * 3600
    short = client.files.create(file=("b.jsonl", lines), purpose="batch",
                                expires_after={"anchor": "created_at", "seconds": 7200})
    assert short.expires_at == short.created_at + 7200
    assert_conforms("OpenAIFile", http.get(f"/v1/files/{short.id}").json())
    with pytest.raises(openai.BadRequestError, match="3600"):
        client.files.create(file=("c.jsonl", lines), purpose="batch",
                            expires_after={"anchor": "created_at", "seconds": 60})
    assert client.files.create(file=("n.txt", b"x"), purpose="user_data").expires_at is None
    batch = client.batches.create(input_file_id=short.id, endpoint="/v1/responses", completion_window="24h",
                                  output_expires_after={"anchor": "created_at", "seconds": 3600})
    out = client.files.retrieve(_wait(client, batch.id).output_file_id)
    assert out.expires_at == out.created_at + 3600


def test_reset_drops_running_batches(http, client):
    _settings(http, pause_after=1)
    running = _submit(client, [_line(f"p{i}", {"model": "m", "input": "p"}) for i in range(3)])
    _wait(client, running.id, lambda b: b.request_counts.completed == 1)
    http.post("/_emulator/reset").raise_for_status()  # settings back to the defaults, too
    assert client.batches.list().data == [] and client.files.list().data == []
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve(running.id)
    fresh = _wait(client, _submit(client, [_line("n", {"model": "m", "input": "n"})]).id)
    assert fresh.status == "completed"
    assert [f.purpose for f in client.files.list().data] == ["batch", "batch_output"]  # nothing from the old one
