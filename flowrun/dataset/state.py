"""A dataset run in the run store: its settings (``datasets``) and one row per finished
dataset row (``dataset_rows``, holding the row's results line), in the run's
``flowrun.db`` beside the other tables (:mod:`flowrun.rundb`).

Every finished row is one ``INSERT OR REPLACE`` in its own transaction, written before
its line goes to the results file. Reads go in chunks of :data:`CHUNK` rows by primary
key, so resuming a run of any size holds only one chunk in memory.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Iterator

from ..rundb import RunDB, loads

CHUNK = 1000


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def save_dataset(db: RunDB, run_id: str, *, source: str, fmt: str, digest: str,
                 mapping: dict[str, str], shared: dict[str, str], results: str,
                 settings: dict[str, Any], total: int) -> None:
    """A fresh dataset run: its settings, and no rows yet."""
    db._many([
        ("DELETE FROM dataset_rows WHERE run_id=?", (run_id,)),
        ("INSERT OR REPLACE INTO datasets (run_id, source, format, digest, mapping, shared, results,"
         " settings, total) VALUES (?,?,?,?,?,?,?,?,?)",
         (run_id, source, fmt, digest, db.dump(mapping), db.dump(shared), results, db.dump(settings), total)),
    ])


def dataset_of(db: RunDB, run_id: str) -> dict[str, Any] | None:
    """The dataset settings of a run (None: not a dataset run)."""
    rows = db._rows("SELECT * FROM datasets WHERE run_id=?", (run_id,))
    if not rows:
        return None
    row = rows[0]
    for key in ("mapping", "shared", "settings"):
        row[key] = loads(row[key]) or {}
    return row


def save_row(db: RunDB, run_id: str, number: int, status: str, attempt: int, line: str,
             tokens: int) -> None:
    db._exec("INSERT OR REPLACE INTO dataset_rows (run_id, row, status, attempt, line, tokens, ended)"
             " VALUES (?,?,?,?,?,?,?)", (run_id, number, status, attempt, line, tokens, time.time()))


def drop_rows_after(db: RunDB, run_id: str, total: int) -> None:
    """Forget rows past the end of the dataset (it got shorter)."""
    db._exec("DELETE FROM dataset_rows WHERE run_id=? AND row>?", (run_id, total))


def row_lines(db: RunDB, run_id: str, statuses: tuple[str, ...]) -> Iterator[tuple[int, str]]:
    """``(row, results line)`` of the finished rows with these statuses, by row, in chunks."""
    marks = ",".join("?" * len(statuses))
    after = 0
    while True:
        rows = db._rows(f"SELECT row, line FROM dataset_rows WHERE run_id=? AND row>? AND status IN ({marks})"
                        " ORDER BY row LIMIT ?", (run_id, after, *statuses, CHUNK))
        for r in rows:
            yield r["row"], r["line"]
        if len(rows) < CHUNK:
            return
        after = rows[-1]["row"]


def row_ends(db: RunDB, run_id: str) -> list[tuple[float, str]]:
    """``(ended, status)`` of every finished row (for the report's timeline)."""
    return [(r["ended"], r["status"]) for r in db._rows(
        "SELECT ended, status FROM dataset_rows WHERE run_id=? AND ended IS NOT NULL", (run_id,))]


def counts(db: RunDB, run_id: str) -> dict[str, int]:
    """Finished rows by status, and their tokens (``input`` / ``output`` from their lines)."""
    out = {"succeeded": 0, "failed": 0, "tokens": 0, "input": 0, "output": 0}
    for r in db._rows("SELECT status, count(*) AS n, sum(tokens) AS t,"
                      " sum(json_extract(line, '$.usage.input_tokens')) AS i,"
                      " sum(json_extract(line, '$.usage.output_tokens')) AS o"
                      " FROM dataset_rows WHERE run_id=? GROUP BY status", (run_id,)):
        out[r["status"]] = r["n"]
        out["tokens"] += r["t"] or 0
        out["input"] += r["i"] or 0
        out["output"] += r["o"] or 0
    return out


def usage_of(done: dict[str, int]) -> dict[str, int]:
    """The run's usage (every finished row, earlier attempts included)."""
    if not done["tokens"]:
        return {}
    return {"input_tokens": done["input"], "output_tokens": done["output"], "total_tokens": done["tokens"]}


def set_totals(db: RunDB, run_id: str, succeeded: int, failed: int, tokens: int) -> None:
    """What ``flowrun runs`` shows for a dataset run: rows (not steps) ok / failed, tokens."""
    db._exec("UPDATE runs SET steps_ok=?, steps_failed=?, tokens=? WHERE id=?",
             (succeeded, failed, tokens, run_id))


class RowStates:
    """The stored status of rows asked for in ascending order, one chunk at a time."""

    def __init__(self, db: RunDB, run_id: str):
        self.db, self.run_id = db, run_id
        self.lo, self.hi = 1, 0
        self.chunk: dict[int, str] = {}

    def status(self, number: int) -> str | None:
        if not self.lo <= number <= self.hi:
            self.lo, self.hi = number, number + CHUNK - 1
            self.chunk = {r["row"]: r["status"] for r in self.db._rows(
                "SELECT row, status FROM dataset_rows WHERE run_id=? AND row BETWEEN ? AND ?",
                (self.run_id, self.lo, self.hi))}
        return self.chunk.get(number)


def results_line(number: int, inputs: dict[str, Any], status: str, outputs: Any,
                 usage: dict[str, Any], error: str | None, steps: dict[str, Any]) -> str:
    """One line of the results file (JSON, no newline)."""
    line: dict[str, Any] = {"row": number, "inputs": inputs, "status": status, "outputs": outputs,
                            "usage": usage}
    if error:
        line["error"] = error
    if steps:
        line["steps"] = steps
    return json.dumps(line, ensure_ascii=False, default=str, separators=(",", ":"))
