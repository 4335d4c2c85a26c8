"""A batch run in the run store: one ``batch_jobs`` row per uploaded input file (its
batch id once created, status, request counts, output and error file ids) and one
``batch_lines`` row per request line in it (custom id, request digest, status).

Write order, so that a run killed at any moment never creates a batch twice: the file is
uploaded, then its job and lines are written (status ``uploaded``); then the batch is
created and its id written. A resumed run that finds a job without a batch id looks for
a batch of that input file on the service before it creates one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable

from ..rundb import RunDB, loads
from .lines import Line

UPLOADED = "uploaded"
OPEN = ("uploaded", "validating", "in_progress", "finalizing", "cancelling")
"""Job statuses a resumed run re-attaches to."""
DONE = ("completed", "expired", "cancelled")
"""Batch statuses whose output and error files say what became of each line."""


@dataclass
class Job:
    """One batch input file and the batch made from it."""

    file_id: str
    wave: int
    layer: int
    round: int
    part: int
    lines: int
    batch_id: str | None = None
    status: str = UPLOADED
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: dict[str, int] | None = None


def save_job(db: RunDB, run_id: str, job: Job, attempt: int, lines: Iterable[Line]) -> None:
    """An uploaded file and its lines, in one transaction (before the batch is created)."""
    now = time.time()
    stmts: list[tuple[str, tuple[Any, ...]]] = [(
        "INSERT OR REPLACE INTO batch_jobs (run_id, file_id, batch_id, wave, layer, round, part, attempt,"
        " status, lines, created, updated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (run_id, job.file_id, job.batch_id, job.wave, job.layer, job.round, job.part, attempt, job.status,
         job.lines, now, now))]
    for line in lines:
        stmts.append(("INSERT OR REPLACE INTO batch_lines (run_id, file_id, custom_id, digest, row, status,"
                      " time) VALUES (?,?,?,?,?,'pending',?)",
                      (run_id, job.file_id, line.custom_id, line.digest, line.row, now)))
    db._many(stmts)


def update_job(db: RunDB, run_id: str, job: Job, error: str | None = None) -> None:
    db._exec("UPDATE batch_jobs SET batch_id=?, status=?, counts=?, output_file_id=?, error_file_id=?,"
             " error=coalesce(?, error), updated=? WHERE run_id=? AND file_id=?",
             (job.batch_id, job.status, db.dump(job.counts), job.output_file_id, job.error_file_id,
              db.redactor.text(error) if error else None, time.time(), run_id, job.file_id))


def settle_lines(db: RunDB, run_id: str, file_id: str, outcomes: Iterable[tuple[str, str, str | None]]) -> None:
    """``(custom_id, status, error)`` of lines whose answer came, in one transaction."""
    now = time.time()
    db._many([("UPDATE batch_lines SET status=?, error=?, time=? WHERE run_id=? AND file_id=? AND custom_id=?",
               (status, db.redactor.text(error) if error else None, now, run_id, file_id, cid))
              for cid, status, error in outcomes])


def job_of(row: dict[str, Any]) -> Job:
    return Job(row["file_id"], row["wave"], row["layer"], row["round"], row["part"], row["lines"], row["batch_id"],
               row["status"], row["output_file_id"], row["error_file_id"], loads(row["counts"]))


def open_job_for(db: RunDB, run_id: str, line: Line) -> Job | None:
    """The job of an earlier attempt that holds this very request and may still answer it:
    its batch still runs, or ended with the line answered."""
    rows = db._rows(
        "SELECT j.* FROM batch_lines l JOIN batch_jobs j ON j.run_id=l.run_id AND j.file_id=l.file_id"
        " WHERE l.run_id=? AND l.custom_id=? AND l.digest=? AND (j.status IN ({}) OR"
        " (j.status IN ({}) AND l.status='succeeded')) ORDER BY j.created DESC LIMIT 1".format(
            ",".join("?" * len(OPEN)), ",".join("?" * len(DONE))),
        (run_id, line.custom_id, line.digest, *OPEN, *DONE))
    return job_of(rows[0]) if rows else None


def jobs(db: RunDB, run_id: str) -> list[dict[str, Any]]:
    """Every batch job of a run, oldest first."""
    rows = db._rows("SELECT * FROM batch_jobs WHERE run_id=? ORDER BY created, wave, layer, round, part", (run_id,))
    for row in rows:
        row["counts"] = loads(row["counts"])
    return rows


def lines_of(db: RunDB, run_id: str, file_id: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM batch_lines WHERE run_id=?"
    args: list[Any] = [run_id]
    if file_id is not None:
        sql += " AND file_id=?"
        args.append(file_id)
    return db._rows(sql + " ORDER BY time, custom_id", args)
