"""Dataset runs on the real SDK and the emulator: every row once in the results, rows
under the emulator's quota with no 429, malformed rows failing alone, shared inputs and
column maps, the run in the store."""

from __future__ import annotations

import json

from dataset_kit import csv_file, flow_file, lines, row_of, run, tickets
from flowkit import write

from flowrun.emulator.quota import quotas, set_quota
from flowrun.rundb import RunDB

import pytest

RPM, TPM = 12000, 480000  # 200 requests/s and 8,000 tokens/s, each held for one second


@pytest.mark.slow  # 1000 requests: a few seconds on an idle machine, more on a busy one
def test_500_rows_just_under_the_quota_no_429(tmp_path, emu):
    set_quota(emu.server.emulator, rpm=RPM, tpm=TPM)
    data = csv_file(tmp_path / "tickets.csv", tickets(500))
    result = run(tmp_path, emu, data, rpm=RPM * 0.95, tpm=TPM * 0.95, concurrency=16)

    assert result.status == "succeeded", result.error
    assert result.to_json()["rows"] == {"total": 500, "succeeded": 500, "failed": 0, "skipped": 0,
                                        "reused": 0}
    journal = [e for e in emu.journal() if e["method"] == "POST" and e["path"].endswith("/responses")]
    assert [e for e in journal if e["status"] == 429] == []
    assert len(journal) == 1000  # 2 steps x 500 rows, nothing retried
    assert quotas(emu.server.emulator).refused == 0
    out = lines(result.results)
    assert sorted(r["row"] for r in out) == list(range(1, 501))  # every row once, any order
    assert all(r["status"] == "succeeded" and r["outputs"]["reply"] for r in out)
    first = next(r for r in out if r["row"] == 7)
    assert first["inputs"] == {"ticket": "T7: printer 7 jams", "priority": 3, "team": "support"}
    assert first["usage"]["total_tokens"] > 0


def test_the_budget_holds_the_pace_of_a_binding_quota(tmp_path, emu):
    """A quota well below what the machine can do: the budget, not the 429s, sets the pace."""
    rpm, tpm = 2400, 96000  # 40 requests/s, 1,600 tokens/s
    set_quota(emu.server.emulator, rpm=rpm, tpm=tpm)
    data = csv_file(tmp_path / "tickets.csv", tickets(60))
    result = run(tmp_path, emu, data, rpm=rpm * 0.95, tpm=tpm * 0.95, concurrency=16)

    assert result.status == "succeeded", result.error
    statuses = [e["status"] for e in emu.journal() if e["method"] == "POST"]
    assert statuses.count(429) == 0 and len(statuses) == 120
    tokens = result.usage["total_tokens"]
    # the buckets start full (one second of quota); the rest comes at the quota's rate
    floor = max((120 - rpm / 60) / (rpm / 60), (tokens - tpm / 60) / (tpm / 60))
    assert result.duration_s >= floor * 0.95, (result.duration_s, floor)


def test_over_the_quota_the_emulator_answers_429(tmp_path, emu):
    """The check above can fail: a budget three times the quota meets 429s (retried)."""
    set_quota(emu.server.emulator, rpm=600)
    data = csv_file(tmp_path / "tickets.csv", tickets(15))
    result = run(tmp_path, emu, data, rpm=1800, flow=flow_file(tmp_path, TWO_STEP_RETRY), concurrency=16)
    statuses = [e["status"] for e in emu.journal() if e["method"] == "POST"]
    assert 429 in statuses
    assert quotas(emu.server.emulator).refused == statuses.count(429)
    assert result.status == "succeeded", result.error


TWO_STEP_RETRY = """\
name: triage
inputs:
  ticket: string
defaults:
  retries: {max: 20, initial_delay: 0.05, max_delay: 0.5}
steps:
  classify:
    input: "Classify ticket {{ inputs.ticket }}"
  reply:
    input: "Draft a reply for: {{ steps.classify.text }}"
outputs:
  reply: "{{ steps.reply.text }}"
"""


def test_a_malformed_row_fails_alone(tmp_path, emu):
    rows = tickets(6)
    rows[1]["priority"] = "high"  # not an integer
    rows[3]["ticket"] = ""  # an empty cell: a required input missing
    data = csv_file(tmp_path / "tickets.csv", rows)
    result = run(tmp_path, emu, data)

    assert result.status == "failed" and result.exit_code == 1
    assert (result.succeeded, result.failed, result.total) == (4, 2, 6)
    by_row = {r["row"]: r for r in lines(result.results)}
    assert by_row[2]["status"] == "failed"
    assert by_row[2]["error"] == "tickets.csv:3: row 2: input 'priority' must be an integer, got 'high'"
    assert by_row[4]["status"] == "failed"
    assert "tickets.csv:5: row 4: missing input 'ticket' (string)" in by_row[4]["error"]
    sent = {row_of(b) for b in emu.bodies()}
    assert sent == {1, 3, 5, 6}  # the bad rows sent nothing


def test_jsonl_rows_bad_json_and_non_objects_fail_alone(tmp_path, emu):
    data = write(tmp_path / "rows.jsonl", "\n".join([
        json.dumps({"ticket": "T1: a", "priority": 2}),
        '{"ticket": "T2: b", ',  # broken JSON
        json.dumps(["T3"]),  # not an object
        "",
        json.dumps({"ticket": "T4: d", "priority": "2"}),  # JSON is typed: a string is not an integer
        json.dumps({"ticket": "T5: e", "extra": "ignored"}),
    ]) + "\n")
    result = run(tmp_path, emu, data)
    by_row = {r["row"]: r for r in lines(result.results)}
    assert sorted(by_row) == [1, 2, 3, 4, 5]
    assert [by_row[n]["status"] for n in (1, 5)] == ["succeeded", "succeeded"]
    assert by_row[2]["error"].startswith(f"{data}:2:")
    assert "not valid JSON" in by_row[2]["error"]
    assert by_row[3]["error"] == f"{data}:3: expected a JSON object of input values, got list"
    assert "input 'priority' must be an integer, got '2'" in by_row[4]["error"]
    assert by_row[4]["error"].startswith("rows.jsonl:5: row 4:")
    assert by_row[5]["inputs"] == {"ticket": "T5: e", "priority": 3, "team": "support"}


def test_json_array_map_and_shared_inputs(tmp_path, emu):
    data = write(tmp_path / "rows.json", json.dumps([{"body": f"T{i}: x{i}"} for i in range(1, 4)], indent=1))
    result = run(tmp_path, emu, data, maps=("ticket=body",), assignments=("team=billing", "priority=1"))
    assert result.status == "succeeded", result.error
    out = lines(result.results)
    assert {r["inputs"]["team"] for r in out} == {"billing"}
    assert all("team billing" in b["input"] for b in emu.bodies("classify"))
    assert sorted(row_of(b) for b in emu.bodies("classify")) == [1, 2, 3]


def test_the_run_is_one_run_in_the_store(tmp_path, emu):
    data = csv_file(tmp_path / "tickets.csv", tickets(5))
    result = run(tmp_path, emu, data)
    db = RunDB.at(tmp_path / "runs", create=False)
    try:
        runs = db.list_runs()
        assert [r["id"] for r in runs] == [result.run_id]
        assert (runs[0]["status"], runs[0]["steps_ok"], runs[0]["steps_failed"]) == ("succeeded", 5, 0)
        assert runs[0]["tokens"] == result.usage["total_tokens"]
    finally:
        db.close()
    assert json.loads((result.run_dir / "record.json").read_text())["rows"]["succeeded"] == 5


def test_a_csv_without_a_column_for_a_required_input_is_refused_up_front(tmp_path, emu):
    import pytest

    from flowrun.errors import UsageError

    data = csv_file(tmp_path / "tickets.csv", [{"id": 1, "message": "T1: a"}])
    with pytest.raises(UsageError) as err:
        run(tmp_path, emu, data)
    assert str(err.value) == f"{data}:1: no column for the input 'ticket' (string)"
    assert "--map ticket=COLUMN" in err.value.hint and "id, message" in err.value.hint
    with pytest.raises(UsageError, match="has no column 'body'"):
        run(tmp_path, emu, data, maps=("ticket=body",))
    with pytest.raises(UsageError, match="the flow has no input 'tiket'"):
        run(tmp_path, emu, data, maps=("tiket=message",))
    assert emu.journal() == []  # nothing was sent
