"""Batch mode on the real SDK and the emulator's Batch API: the same results as the local
engine with one batch per round, failed lines retried alone (or failing their row alone),
file splitting, Azure deployments and the quota backoff."""

from __future__ import annotations

import json

import pytest
from batch_kit import ROUNDS, dataset, flow_file, lines, posts, run
from flowkit import write

from flowrun.batch.state import jobs, lines_of
from flowrun.emulator.batch_input import estimate_tokens
from flowrun.emulator.batch_settings import set_batch_settings
from flowrun.rundb import RunDB

ONE_STEP = """\
name: one
inputs:
  ticket: string
defaults:
  retries: {max: 2, initial_delay: 0.01, max_delay: 0.05}
steps:
  answer:
    input: "Answer ticket {{ inputs.ticket }}"
outputs:
  answer: "{{ steps.answer.text }}"
"""


def _store(tmp_path, run_id, runs="runs"):
    db = RunDB.at(tmp_path / runs, create=False)
    try:
        return jobs(db, run_id), lines_of(db, run_id)
    finally:
        db.close()


def _batch_bodies(emu):
    return [e["body"] for e in posts(emu, "/v1/batches")]


@pytest.mark.slow  # 1000 requests twice: local, then batched
def test_200_rows_three_steps_same_outputs_as_the_local_engine_one_batch_per_round(tmp_path, emu):
    data = dataset(tmp_path / "tickets.jsonl", 200)
    flow = flow_file(tmp_path)
    local = run(tmp_path, emu, data, flow=flow, batch=False, results=tmp_path / "local.jsonl")
    assert local.status == "succeeded", local.error
    local_requests = len(posts(emu, "/v1/responses"))
    emu.reset()

    result = run(tmp_path, emu, data, flow=flow, results=tmp_path / "batch.jsonl")

    assert result.status == "succeeded", result.error
    summary = result.to_json()
    assert summary["rows"] == {"total": 200, "succeeded": 200, "failed": 0, "skipped": 0, "reused": 0}
    assert summary["usage"] == local.usage and summary["usage"]["total_tokens"] > 0
    assert summary["batches"]["created"] == ROUNDS
    assert len(posts(emu, "/v1/batches")) == ROUNDS  # one batch per round, nothing retried
    assert posts(emu, "/v1/responses") == []  # every model request went through a batch
    assert len(posts(emu, "/v1/files")) == ROUNDS
    assert {b["endpoint"] for b in _batch_bodies(emu)} == {"/v1/responses"}
    assert {b["completion_window"] for b in _batch_bodies(emu)} == {"24h"}
    batched, alone = lines(tmp_path / "batch.jsonl"), lines(tmp_path / "local.jsonl")
    assert sorted(batched) == list(range(1, 201))
    for n in batched:
        assert batched[n]["status"] == "succeeded"
        assert batched[n]["outputs"] == alone[n]["outputs"], n
        assert batched[n]["inputs"] == alone[n]["inputs"]
        assert batched[n]["usage"] == alone[n]["usage"]
        assert set(batched[n]["steps"]) == {"classify", "explain", "reply"}
    assert "tool results" in batched[7]["outputs"]["category"]  # the tool loop ran
    # the store: a job per batch with its ids, every line answered
    stored_jobs, stored_lines = _store(tmp_path, result.run_id)
    assert [(j["layer"], j["round"]) for j in stored_jobs] == [(1, 1), (1, 2), (2, 1), (3, 1)]
    assert all(j["batch_id"] and j["status"] == "completed" and j["output_file_id"] for j in stored_jobs)
    assert [j["lines"] for j in stored_jobs] == [200, 200, 400, 200]
    assert local_requests == len(stored_lines) == 200 * 5  # the same requests, as batch lines
    assert {line["status"] for line in stored_lines} == {"succeeded"}
    ids = {line["custom_id"] for line in stored_lines}
    assert {"row-7:classify:0", "row-7:classify:1", "row-7:explain:0:0", "row-7:explain:1:0",
            "row-7:reply:0"} <= ids


def test_the_second_round_chains_by_previous_response_id(tmp_path, emu):
    data = dataset(tmp_path / "tickets.jsonl", 3)
    result = run(tmp_path, emu, data)
    assert result.status == "succeeded", result.error
    round_two = [f for f in posts(emu, "/v1/files")]
    assert len(round_two) == ROUNDS
    with emu.sdk() as sdk:
        stored = _store(tmp_path, result.run_id)[0]
        second = [json.loads(x) for x in sdk.files.content(stored[1]["file_id"]).text.splitlines()]
    assert [line["custom_id"] for line in second] == [f"row-{n}:classify:1" for n in (1, 2, 3)]
    for line in second:
        assert line["method"] == "POST" and line["url"] == "/v1/responses"
        body = line["body"]
        assert body["previous_response_id"].startswith("resp")
        assert body["input"][0]["type"] == "function_call_output"
        assert body["tool_choice"] == "auto"


def test_failed_lines_are_retried_alone_in_the_next_batch(tmp_path, emu):
    emu.faults("line@every=5x4:status=500")  # lines 5, 10, 15, 20 of the first batch, once each
    data = dataset(tmp_path / "tickets.jsonl", 20)
    result = run(tmp_path, emu, data, flow=write(tmp_path / "one.yaml", ONE_STEP))

    assert result.status == "succeeded", result.error
    assert result.succeeded == 20
    assert len(posts(emu, "/v1/batches")) == 2
    first, second = _store(tmp_path, result.run_id)[0]
    assert (first["lines"], second["lines"]) == (20, 4)
    assert first["counts"] == {"total": 20, "completed": 16, "failed": 4}
    by_file = {}
    for line in _store(tmp_path, result.run_id)[1]:
        by_file.setdefault(line["file_id"], {})[line["custom_id"]] = line
    retried = by_file[second["file_id"]]
    assert sorted(retried) == sorted(f"row-{n}:answer:0" for n in (5, 10, 15, 20))
    assert {by_file[first["file_id"]][cid]["status"] for cid in retried} == {"failed"}
    assert "500" in by_file[first["file_id"]]["row-5:answer:0"]["error"]
    assert {line["status"] for line in retried.values()} == {"succeeded"}


def test_a_line_that_keeps_failing_fails_its_row_alone_after_the_steps_retries(tmp_path, emu):
    emu.faults("line@id=row-3*:status=500,line@id=row-6*:status=400")
    data = dataset(tmp_path / "tickets.jsonl", 8)
    result = run(tmp_path, emu, data, flow=write(tmp_path / "one.yaml", ONE_STEP))

    assert result.status == "failed" and result.exit_code == 1
    assert (result.succeeded, result.failed) == (6, 2)
    out = lines(result.results)
    assert out[3]["status"] == "failed" and "500" in out[3]["error"]
    assert out[6]["status"] == "failed" and "400" in out[6]["error"]  # not retried: a 4xx
    assert out[6]["error"].startswith("tickets.jsonl:6: row 6:")
    assert out[2]["status"] == "succeeded" and out[2]["outputs"]["answer"]
    stored = _store(tmp_path, result.run_id)[0]
    assert [j["lines"] for j in stored] == [8, 1, 1]  # row 3 twice more (retries: 2), alone
    assert len(posts(emu, "/v1/batches")) == 3


def test_requests_past_the_file_limit_go_in_several_batches_and_quota_refusals_are_resubmitted(
        tmp_path, emu, monkeypatch):
    monkeypatch.setenv("FLOWRUN_BATCH_MAX_LINES", "10")
    data = dataset(tmp_path / "tickets.jsonl", 20)
    flow = write(tmp_path / "one.yaml", ONE_STEP)
    probe = run(tmp_path, emu, data, flow=flow, runs="probe")
    assert probe.status == "succeeded" and len(posts(emu, "/v1/batches")) == 2  # 2 files of 10 lines
    with emu.sdk() as sdk:  # one file's tokens fit the quota, two do not
        tokens = [sum(estimate_tokens(json.loads(x)["body"]) for x in sdk.files.content(j["file_id"]).text.splitlines())
                  for j in _store(tmp_path, probe.run_id, "probe")[0]]
    emu.reset()
    set_batch_settings(emu.server.emulator, delay_ms=50, token_limit=max(tokens) + 1)
    assert sum(tokens) > max(tokens) + 1

    result = run(tmp_path, emu, data, flow=flow)

    assert result.status == "succeeded", result.error
    assert result.succeeded == 20
    created = posts(emu, "/v1/batches")
    # the second file was refused for quota while the first ran, then resubmitted (as often
    # as it takes: the waits double)
    assert len(created) >= 3
    files = [c["body"]["input_file_id"] for c in created]
    assert files[0] != files[1] and set(files[1:]) == {files[1]}
    assert len(posts(emu, "/v1/files")) == 2  # the file was not uploaded again
    stored = _store(tmp_path, result.run_id)[0]
    assert [(j["part"], j["lines"], j["status"]) for j in stored] == [(0, 10, "completed"), (1, 10, "completed")]


AZURE = """\
name: az
inputs:
  ticket: string
defaults:
  model: gpt-4.1
  batch_model: {gpt-4.1: gpt-4.1-batch, gpt-4.1-mini: mini-batch}
steps:
  first:
    input: "First {{ inputs.ticket }}"
  second:
    model: gpt-4.1-mini
    input: "Second {{ steps.first.text }}"
  third:
    batch_model: "{{ 'special' }}-batch"
    input: "Third {{ steps.second.text }}"
outputs:
  out: "{{ steps.third.text }}"
"""


def _line_models(emu, tmp_path, run_id):
    with emu.sdk() as sdk:
        out = []
        for job in _store(tmp_path, run_id)[0]:
            text = sdk.files.content(job["file_id"]).text
            out.append({json.loads(x)["body"]["model"] for x in text.splitlines()})
    return out


def test_each_line_names_the_batch_deployment(tmp_path, emu):
    data = dataset(tmp_path / "tickets.jsonl", 2)
    flow = write(tmp_path / "az.yaml", AZURE)
    result = run(tmp_path, emu, data, flow=flow)
    assert result.status == "succeeded", result.error
    assert _line_models(emu, tmp_path, result.run_id) == [{"gpt-4.1-batch"}, {"mini-batch"}, {"special-batch"}]

    again = run(tmp_path, emu, data, flow=flow, batch_deployment="global-batch")
    assert again.status == "succeeded", again.error
    assert _line_models(emu, tmp_path, again.run_id) == [{"global-batch"}] * 3


def test_the_provider_config_can_name_the_batch_deployment(tmp_path, emu, monkeypatch):
    config = write(tmp_path / "config.yaml", "provider:\n  batch_model: {gpt-4.1: gpt-4.1-global-batch}\n")
    monkeypatch.setenv("FLOWRUN_CONFIG", str(config))
    flow = write(tmp_path / "one.yaml", ONE_STEP.replace("defaults:\n", "defaults:\n  model: gpt-4.1\n"))
    result = run(tmp_path, emu, dataset(tmp_path / "tickets.jsonl", 2), flow=flow)
    assert result.status == "succeeded", result.error
    assert _line_models(emu, tmp_path, result.run_id) == [{"gpt-4.1-global-batch"}]


CHAINED = """\
name: chained
inputs:
  ticket: string
steps:
  a:
    input: "Summarize {{ inputs.ticket }}"
  b:
    continue: a
    input: "Shorter, please"
  c:
    store: false
    input: "Classify {{ inputs.ticket }}"
  d:
    continue: {step: c, mode: manual}
    store: false
    input: "Why?"
outputs:
  b: "{{ steps.b.text }}"
  d: "{{ steps.d.text }}"
"""


def test_continued_steps_chain_across_batches_as_they_do_without_batch(tmp_path, emu):
    flow = write(tmp_path / "chained.yaml", CHAINED)
    data = dataset(tmp_path / "tickets.jsonl", 4)
    local = run(tmp_path, emu, data, flow=flow, batch=False, results=tmp_path / "local.jsonl")
    assert local.status == "succeeded", local.error
    emu.reset()
    result = run(tmp_path, emu, data, flow=flow, results=tmp_path / "batch.jsonl")
    assert result.status == "succeeded", result.error
    batched, alone = lines(tmp_path / "batch.jsonl"), lines(tmp_path / "local.jsonl")
    assert {n: r["outputs"] for n, r in batched.items()} == {n: r["outputs"] for n, r in alone.items()}
    assert len(posts(emu, "/v1/batches")) == 2  # two layers, one round each
    with emu.sdk() as sdk:
        second = _store(tmp_path, result.run_id)[0][1]
        sent = {json.loads(x)["custom_id"]: json.loads(x)["body"]
                for x in sdk.files.content(second["file_id"]).text.splitlines()}
    b, d = sent["row-2:b:0"], sent["row-2:d:0"]
    assert b["previous_response_id"] == batched[2]["steps"]["a"]["response_id"]
    assert "previous_response_id" not in d and d["store"] is False
    assert "reasoning.encrypted_content" in d["include"]
    texts = json.dumps(d["input"])
    assert "Classify T2: printer 2 jams" in texts and "Why?" in texts  # the whole conversation again


def test_lines_an_expired_batch_did_not_reach_go_in_the_next_batch(tmp_path, emu):
    emu.faults("expire@3")  # the first batch expires after 3 lines
    data = dataset(tmp_path / "tickets.jsonl", 8)
    result = run(tmp_path, emu, data, flow=write(tmp_path / "one.yaml", ONE_STEP))
    assert result.status == "succeeded", result.error
    first, second = _store(tmp_path, result.run_id)[0]
    assert (first["status"], first["lines"], second["status"], second["lines"]) == ("expired", 8, "completed", 5)
    assert first["counts"]["completed"] == 3
    assert sorted(lines(result.results)) == list(range(1, 9))


def test_rows_go_through_the_layers_a_wave_at_a_time(tmp_path, emu, monkeypatch):
    data = dataset(tmp_path / "tickets.jsonl", 10)
    flow = flow_file(tmp_path)
    local = run(tmp_path, emu, data, flow=flow, batch=False, results=tmp_path / "local.jsonl")
    assert local.status == "succeeded", local.error
    emu.reset()
    monkeypatch.setenv("FLOWRUN_BATCH_WAVE_ROWS", "4")
    result = run(tmp_path, emu, data, flow=flow, results=tmp_path / "batch.jsonl")
    assert result.status == "succeeded", result.error
    stored = _store(tmp_path, result.run_id)[0]
    assert [(j["wave"], j["layer"], j["round"]) for j in stored][:5] == [(1, 1, 1), (1, 1, 2), (1, 2, 1), (1, 3, 1),
                                                                         (2, 1, 1)]
    assert len(stored) == len(posts(emu, "/v1/batches")) == 3 * ROUNDS  # waves of 4, 4 and 2 rows
    assert [j["lines"] for j in stored if j["layer"] == 3] == [4, 4, 2]
    out = [json.loads(x)["row"] for x in result.results.read_text().splitlines()]
    assert out == list(range(1, 11))  # a wave's lines are written when it ends, in row order
    assert {n: r["outputs"] for n, r in lines(result.results).items()} == \
        {n: r["outputs"] for n, r in lines(tmp_path / "local.jsonl").items()}


def test_a_line_too_big_for_a_batch_file_fails_its_row_alone(tmp_path, emu, monkeypatch):
    """A request larger than a batch file may hold fails before any file of its round is
    uploaded; the other rows' lines go in a batch as usual and no batch is left behind."""
    monkeypatch.setenv("FLOWRUN_BATCH_MAX_BYTES", "2000")
    data = write(tmp_path / "tickets.jsonl", "".join(
        json.dumps({"ticket": "x" * 3000 if n == 3 else f"T{n}"}) + "\n" for n in range(1, 6)))
    result = run(tmp_path, emu, data, flow=write(tmp_path / "one.yaml", ONE_STEP))
    assert (result.succeeded, result.failed) == (4, 1)
    by_row = lines(result.results)
    assert by_row[3]["status"] == "failed" and "more than a batch file may hold" in by_row[3]["error"]
    assert all(by_row[n]["status"] == "succeeded" for n in (1, 2, 4, 5))
    created = posts(emu, "/v1/batches")
    assert len(created) == 1  # one round, one file: the big line never went in one
    with emu.sdk() as sdk:
        batches = list(sdk.batches.list())
    assert [(b.status, b.request_counts.total) for b in batches] == [("completed", 4)]
