"""The run store: the state of every run under a run root, in one SQLite file.

Design
------
Where: ``<run root>/flowrun.db`` (by default ``.flowrun/runs/flowrun.db``), stdlib ``sqlite3``
in WAL mode, shared by all runs under that root; readers never block the writer, and
concurrent runs wait on each other's short transactions (``busy_timeout``).

Tables (JSON columns hold masked values: the run's :class:`~flowrun.secrets.Redactor`
is applied to everything written; secrets are never stored, credentials never recorded):

- ``runs``: id, flow name / path / hash / text, inputs, status, attempt, the pid, host and
  start token of the process running it, started / ended, provider (kind, endpoint),
  outputs, error, and the totals ``flowrun runs`` lists (steps ok / failed, tokens).
- ``attempts``: one row per attempt of a run (the first run, then each ``resume``).
- ``steps``: one row per step and per ``for_each`` item (key ``ID`` or ``ID.N``): status,
  the attempt that produced it, the digest of its rendered request, ``cached``, text,
  output, response id, usage, error, and the whole result (to reuse it on resume).
- ``turns``: one row per model turn of a step: the request and its digest, the response
  id (as soon as a background response exists), the response, the items sent back
  (tool outputs, approval answers) and the result's state after the turn.
- ``tool_calls``: one row per function call (``started``, then ``done`` with its output).
- ``approvals``: one row per MCP approval decision.
- ``artifacts``: one row per file a step saved.
- ``events``: what a step waited for, by time: each retry of a model call (the error and
  the backoff) and each wait on the rate budget (:mod:`flowrun.ratelimit`); the report's
  timeline draws them.
- ``outlines``: a run's flow as its report draws it (step order, needs, kinds, models;
  :mod:`flowrun.run_outline`), written when the run starts.
- ``datasets``: a dataset run's source file (path, format, digest), column mapping,
  shared inputs, results path and settings (:mod:`flowrun.dataset.state`).
- ``dataset_rows``: one row per finished dataset row: status, attempt, its results line.
- ``batch_jobs``: one row per batch input file of a ``--batch`` run (its batch id once
  created, layer, round, status, request counts, output / error file ids), and
  ``batch_lines``: one row per request line in it (custom id, request digest, status)
  (:mod:`flowrun.batch.state`).

Write rules
-----------
- Every event is one small ``INSERT OR REPLACE`` / ``UPDATE`` in its own transaction;
  nothing is ever rewritten whole. Files (responses, artifacts) are written before the
  row that names them.
- A row is ``succeeded`` / ``done`` only when everything needed to reuse it is in it.
- ``synchronous=NORMAL`` in WAL mode: a committed transaction survives ``kill -9`` (a
  power cut may lose the last ones, never consistency).

Crash semantics
---------------
``kill -9`` at any moment loses at most the work in flight: a request whose response was
not recorded, a tool call started and not done. Each transaction is all or nothing, so
there is never a torn row. A run still marked ``running`` whose process is gone (same
host; pid dead, reused by another process, or the run's owner lock free) reads as
``interrupted`` (:func:`effective_status`), and readers record it so
(:mod:`flowrun.dead_runs`).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from .crash_points import Point, armed
from .errors import StoreError
from .run_owner import held as owner_held
from .secrets import Redactor

DB_NAME = "flowrun.db"
INTERRUPTED = "interrupted"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, flow_name TEXT NOT NULL, flow_path TEXT, flow_hash TEXT,
    flow_text TEXT, inputs TEXT, status TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 1,
    pid INTEGER, host TEXT, start_token TEXT, started REAL, ended REAL, provider TEXT,
    run_dir TEXT, outputs TEXT, error TEXT, duration REAL,
    steps_ok INTEGER NOT NULL DEFAULT 0, steps_failed INTEGER NOT NULL DEFAULT 0,
    tokens INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS runs_by_started ON runs(started);
CREATE INDEX IF NOT EXISTS runs_by_flow ON runs(flow_name, started);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs(status, started);
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL, n INTEGER NOT NULL, status TEXT NOT NULL, pid INTEGER, host TEXT,
    started REAL, ended REAL, note TEXT, PRIMARY KEY (run_id, n)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, key TEXT NOT NULL, step_id TEXT NOT NULL, idx INTEGER,
    status TEXT NOT NULL, attempt INTEGER NOT NULL, digest TEXT,
    cached INTEGER NOT NULL DEFAULT 0, text TEXT, output TEXT, response_id TEXT,
    usage TEXT, error TEXT, result TEXT, started REAL, ended REAL,
    PRIMARY KEY (run_id, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS turns (
    run_id TEXT NOT NULL, key TEXT NOT NULL, turn INTEGER NOT NULL, attempt INTEGER NOT NULL,
    status TEXT NOT NULL, request_digest TEXT, request TEXT, response_id TEXT,
    response TEXT, follow_up TEXT, state TEXT, time REAL,
    PRIMARY KEY (run_id, key, turn)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tool_calls (
    run_id TEXT NOT NULL, key TEXT NOT NULL, call_id TEXT NOT NULL, turn INTEGER,
    attempt INTEGER NOT NULL, name TEXT, status TEXT NOT NULL, output TEXT, record TEXT,
    time REAL, PRIMARY KEY (run_id, key, call_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS approvals (
    run_id TEXT NOT NULL, key TEXT NOT NULL, request_id TEXT NOT NULL, turn INTEGER,
    attempt INTEGER NOT NULL, answer TEXT, entry TEXT, time REAL,
    PRIMARY KEY (run_id, key, request_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL, key TEXT NOT NULL, path TEXT NOT NULL, attempt INTEGER NOT NULL,
    PRIMARY KEY (run_id, key, path)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER PRIMARY KEY AUTOINCREMENT,
    turn INTEGER, attempt INTEGER NOT NULL, kind TEXT NOT NULL, time REAL NOT NULL,
    seconds REAL, detail TEXT);
CREATE INDEX IF NOT EXISTS events_by_run ON events(run_id, key);
CREATE TABLE IF NOT EXISTS outlines (run_id TEXT PRIMARY KEY, outline TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS datasets (
    run_id TEXT PRIMARY KEY, source TEXT NOT NULL, format TEXT NOT NULL, digest TEXT,
    mapping TEXT, shared TEXT, results TEXT, settings TEXT, total INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dataset_rows (
    run_id TEXT NOT NULL, row INTEGER NOT NULL, status TEXT NOT NULL, attempt INTEGER NOT NULL,
    line TEXT, tokens INTEGER NOT NULL DEFAULT 0, ended REAL,
    PRIMARY KEY (run_id, row)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batch_jobs (
    run_id TEXT NOT NULL, file_id TEXT NOT NULL, batch_id TEXT, wave INTEGER, layer INTEGER,
    round INTEGER, part INTEGER, attempt INTEGER, status TEXT NOT NULL, lines INTEGER, counts TEXT,
    output_file_id TEXT, error_file_id TEXT, error TEXT, created REAL, updated REAL,
    PRIMARY KEY (run_id, file_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batch_lines (
    run_id TEXT NOT NULL, file_id TEXT NOT NULL, custom_id TEXT NOT NULL, digest TEXT NOT NULL,
    row INTEGER, status TEXT NOT NULL, error TEXT, time REAL,
    PRIMARY KEY (run_id, file_id, custom_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS batch_lines_by_id ON batch_lines(run_id, custom_id);
"""

# what each kind of write saves, for the error when it fails
WRITES = {"run": "starting the run", "end": "finishing the run", "checkpoint": "updating the run's totals",
          "step": "saving step", "item": "saving item", "turn": "saving a model turn of",
          "turn_done": "saving a model turn of", "call_start": "saving a tool call of",
          "call": "saving a tool call of", "approval": "saving an approval of",
          "drop": "forgetting the changed turns of", "settle": "settling the dead run"}

RUN_COLUMNS = ("id", "flow_name", "flow_path", "flow_hash", "status", "attempt", "pid", "host",
               "start_token", "started", "ended", "duration", "steps_ok", "steps_failed", "tokens", "run_dir")


# --------------------------------------------------------------------------- processes


def process_token(pid: int) -> str | None:
    """Something that tells this process apart from a later one with the same pid: its
    start time in clock ticks since boot (Linux), else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def process_alive(pid: int | None, host: str | None, token: str | None) -> bool | None:
    """Whether the process that ran a run still runs: True / False, or None when it
    cannot be told (another host)."""
    if not pid:
        return False
    if host and host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if token is not None:
        now = process_token(pid)
        if now is not None and now != token:
            return False  # the pid was reused
    return True


def effective_status(row: dict[str, Any]) -> str:
    """A run's status as readers should show it: ``running`` only while its process lives
    (its pid is there and was not reused, and the run's owner lock, when there is one, is
    held - :mod:`flowrun.run_owner`)."""
    status = row.get("status")
    if status != "running":
        return status or "unknown"
    alive = process_alive(row.get("pid"), row.get("host"), row.get("start_token"))
    if alive is False or (alive and owner_held(row.get("run_dir")) is False):
        return INTERRUPTED
    return status


# --------------------------------------------------------------------------- the store


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, default=str, separators=(",", ":"))


class RunDB:
    """One connection to ``<root>/flowrun.db``; safe to share between threads."""

    def __init__(self, path: Path, redactor: Redactor | None = None, *, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise FileNotFoundError(str(self.path))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.redactor = redactor if redactor is not None else Redactor()
        self._lock = threading.RLock()
        self._pauser = armed()  # a test's crash points (flowrun.crash_points); None otherwise
        self.conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None,
                                    check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=30000")
        if create:
            with self._lock:
                self.conn.executescript(_SCHEMA)
                self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @classmethod
    def at(cls, root: Path, redactor: Redactor | None = None, *, create: bool = True) -> "RunDB":
        return cls(Path(root) / DB_NAME, redactor, create=create)

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    # -- helpers -------------------------------------------------------------------------
    def dump(self, value: Any) -> str | None:
        """JSON text of a value, masked. ASCII-escaped, so lone surrogates survive."""
        if value is None:
            return None
        return self.redactor.dumps(value, _compact_json)

    def _exec(self, sql: str, args: Iterable[Any] = (), event: str = "write",
              detail: str | None = None) -> None:
        """One statement, one transaction (autocommit)."""
        if self._pauser is not None:  # a test's crash point: as one explicit transaction
            self._many([(sql, tuple(args))], event, detail)
            return
        try:
            with self._lock:
                self.conn.execute(sql, _encodable(args))
        except sqlite3.Error as exc:
            raise self._failed(exc, event, detail) from None

    def _many(self, statements: list[tuple[str, tuple[Any, ...]]], event: str = "write",
              detail: str | None = None) -> None:
        """Several statements in one transaction."""
        point = Point(self._pauser, event, detail) if self._pauser is not None else None
        with point or contextlib.nullcontext():
            try:
                with self._lock:
                    self.conn.execute("BEGIN IMMEDIATE")
                    try:
                        for sql, args in statements:
                            self.conn.execute(sql, _encodable(args))
                        if point is not None:
                            point.inside()
                    except BaseException:
                        self.conn.execute("ROLLBACK")
                        raise
                    self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._failed(exc, event, detail) from None

    def _failed(self, exc: sqlite3.Error, event: str, detail: str | None) -> StoreError:
        """A write that failed, as the error the run reports."""
        what = WRITES.get(event, "saving the run")
        if detail:
            what += f" {detail}"
        return StoreError(f"cannot write to the run store {self.path} ({what}): {exc}; the "
                          "work since the last successful write is not saved (free disk space "
                          "or make the file writable, then `flowrun resume`)")

    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self.conn.execute(sql, tuple(args)).fetchall()]

    # -- runs ----------------------------------------------------------------------------
    def start_run(self, run_id: str, *, flow_name: str, flow_path: str | None, flow_hash: str,
                  flow_text: str, inputs: dict[str, Any], provider: dict[str, Any] | None,
                  run_dir: str, attempt: int = 1, note: str | None = None) -> None:
        """A run starts (attempt 1) or resumes (attempt > 1) in this process."""
        pid, host, now = os.getpid(), socket.gethostname(), time.time()
        token = process_token(pid)
        stmts: list[tuple[str, tuple[Any, ...]]] = []
        if attempt == 1:  # a fresh run (a reused id starts from nothing)
            for table in ("steps", "turns", "tool_calls", "approvals", "artifacts", "attempts",
                          "batch_jobs", "batch_lines", "events"):
                stmts.append((f"DELETE FROM {table} WHERE run_id=?", (run_id,)))
            stmts.append((
                "INSERT OR REPLACE INTO runs (id, flow_name, flow_path, flow_hash, flow_text, inputs, status,"
                " attempt, pid, host, start_token, started, provider, run_dir)"
                " VALUES (?,?,?,?,?,?,'running',1,?,?,?,?,?,?)",
                (run_id, flow_name, flow_path, flow_hash, flow_text, self.dump(inputs), pid, host,
                 token, now, self.dump(provider), run_dir)))
        else:
            stmts.append((
                "UPDATE runs SET flow_path=?, flow_hash=?, flow_text=?, inputs=?, status='running',"
                " attempt=?, pid=?, host=?, start_token=?, ended=NULL, provider=?, error=NULL,"
                " outputs=NULL WHERE id=?",
                (flow_path, flow_hash, flow_text, self.dump(inputs), attempt, pid, host, token,
                 self.dump(provider), run_id)))
            stmts.append(("UPDATE attempts SET status=? WHERE run_id=? AND status='running'",
                          (INTERRUPTED, run_id)))
        stmts.append(("INSERT OR REPLACE INTO attempts (run_id, n, status, pid, host, started, note)"
                      " VALUES (?,?,'running',?,?,?,?)", (run_id, attempt, pid, host, now, note)))
        self._many(stmts, "run", run_id)

    def end_run(self, run_id: str, attempt: int, status: str, error: str | None,
                outputs: dict[str, Any], note: str | None = None) -> None:
        now = time.time()
        totals = self._totals(run_id)
        self._many([
            ("UPDATE attempts SET status=?, ended=?, note=coalesce(?, note) WHERE run_id=? AND n=?",
             (status, now, note, run_id, attempt)),
            ("UPDATE runs SET status=?, ended=?, error=?, outputs=?, steps_ok=?, steps_failed=?,"
             " tokens=?, duration=(SELECT sum(ended - started) FROM attempts WHERE run_id=?"
             " AND ended IS NOT NULL) WHERE id=?",
             (status, now, self.redactor.text(error) if error else None, self.dump(outputs),
              *totals, run_id, run_id)),
        ], "end", run_id)

    def checkpoint(self, run_id: str) -> None:
        """Refresh the totals ``flowrun runs`` shows for a run in progress."""
        self._exec("UPDATE runs SET steps_ok=?, steps_failed=?, tokens=? WHERE id=?",
                   (*self._totals(run_id), run_id), "checkpoint", run_id)

    def _totals(self, run_id: str) -> tuple[int, int, int]:
        rows = self._rows("SELECT status, usage FROM steps WHERE run_id=? AND idx IS NULL",
                          (run_id,))
        ok = sum(1 for r in rows if r["status"] == "succeeded")
        failed = sum(1 for r in rows if r["status"] == "failed")
        tokens = sum(int(json.loads(r["usage"]).get("total_tokens") or 0)
                     for r in rows if r["usage"])
        return ok, failed, tokens

    def run(self, run_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM runs WHERE id=?", (run_id,))
        return rows[0] if rows else None

    def last_run(self) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM runs ORDER BY started DESC LIMIT 1")
        return rows[0] if rows else None

    def ids_with_prefix(self, prefix: str, limit: int = 6) -> list[str]:
        """Run ids that start with ``prefix`` (a range scan of the primary key)."""
        rows = self._rows("SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
                          (prefix, prefix + "\U0010ffff", limit))
        return [r["id"] for r in rows]

    def list_runs(self, flow: str | None = None, status: str | None = None,
                  limit: int = 20) -> list[dict[str, Any]]:
        """Recent runs, newest first: one indexed query. ``status`` ``interrupted`` matches
        runs marked running whose process is gone."""
        sql, args = self.list_query(flow, status, limit)
        rows = self._rows(sql, args)
        for row in rows:
            row["status"] = effective_status(row)
        if status in ("running", INTERRUPTED):
            rows = [r for r in rows if r["status"] == status][:limit]
        return rows

    @staticmethod
    def list_query(flow: str | None, status: str | None, limit: int) -> tuple[str, list[Any]]:
        """The query :meth:`list_runs` makes (running and interrupted runs are few: those
        are all read, then told apart by their process)."""
        where: list[str] = []
        args: list[Any] = []
        if flow:
            where.append("flow_name=?")
            args.append(flow)
        if status in ("running", INTERRUPTED):
            where.append("status IN ('running', ?)")
            args.append(INTERRUPTED)
        elif status:
            where.append("status=?")
            args.append(status)
        sql = ("SELECT " + ", ".join(RUN_COLUMNS) + " FROM runs"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY started DESC")
        if status not in ("running", INTERRUPTED):
            sql += " LIMIT ?"
            args.append(limit)
        return sql, args

    def dead_runs(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Runs marked ``running`` whose process is gone (one indexed query)."""
        sql = "SELECT " + ", ".join(RUN_COLUMNS) + " FROM runs WHERE status='running'"
        rows = self._rows(sql + (" AND id=?" if run_id else ""), (run_id,) if run_id else ())
        return [r for r in rows if effective_status(r) == INTERRUPTED]

    def mark_interrupted(self, row: dict[str, Any]) -> bool:
        """Record a dead run (a row from :meth:`dead_runs`) as ``interrupted``, unless another
        process took it over meanwhile; True if it did."""
        with self._lock:
            before = self.conn.total_changes
            self._many([
                ("UPDATE runs SET status=? WHERE id=? AND status='running'"
                 " AND pid IS ? AND host IS ? AND start_token IS ?",
                 (INTERRUPTED, row["id"], row["pid"], row["host"], row["start_token"])),
                ("UPDATE attempts SET status=? WHERE run_id=? AND status='running'"
                 " AND (SELECT status FROM runs WHERE id=?)=?",
                 (INTERRUPTED, row["id"], row["id"], INTERRUPTED)),
            ], "settle", row["id"])
            return self.conn.total_changes > before

    def attempts(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT n, status, pid, host, started, ended, note FROM attempts"
                          " WHERE run_id=? ORDER BY n", (run_id,))

    # -- steps and items -----------------------------------------------------------------
    def save_step(self, run_id: str, key: str, step_id: str, idx: int | None, status: str,
                  attempt: int, *, digest: str | None = None, cached: bool = False,
                  text: str | None = None, output: Any = None, response_id: str | None = None,
                  usage: dict[str, Any] | None = None, error: str | None = None,
                  result: dict[str, Any] | None = None, started: float | None = None,
                  ended: float | None = None, artifacts: Iterable[str] = ()) -> None:
        """Write a step's (or item's) row, and the artifacts it names, in one transaction."""
        stmts: list[tuple[str, tuple[Any, ...]]] = [(
            "INSERT OR REPLACE INTO steps (run_id, key, step_id, idx, status, attempt, digest,"
            " cached, text, output, response_id, usage, error, result, started, ended)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, key, step_id, idx, status, attempt, digest, int(bool(cached)),
             self.redactor.text(text) if text is not None else None, self.dump(output),
             response_id, self.dump(usage or None),
             self.redactor.text(error) if error else None, self.dump(result), started, ended))]
        for path in artifacts:
            stmts.append(("INSERT OR IGNORE INTO artifacts (run_id, key, path, attempt)"
                          " VALUES (?,?,?,?)", (run_id, key, str(path), attempt)))
        self._many(stmts, "step" if idx is None else "item", key)

    def drop_items_from(self, run_id: str, step_id: str, n: int) -> None:
        """Forget items ``n`` and later of a ``for_each`` step (its list got shorter)."""
        self._exec("DELETE FROM steps WHERE run_id=? AND step_id=? AND idx>=?", (run_id, step_id, n),
                   "drop", step_id)

    def steps(self, run_id: str, step_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM steps WHERE run_id=?"
        args: list[Any] = [run_id]
        if step_id is not None:
            sql += " AND step_id=?"
            args.append(step_id)
        return self._rows(sql, args)

    # -- turns, tool calls, approvals ----------------------------------------------------
    def save_turn(self, run_id: str, key: str, turn: int, attempt: int, status: str, *,
                  request_digest: str | None = None, request: Any = None,
                  response_id: str | None = None, response: Any = None,
                  follow_up: Any = None, state: Any = None) -> None:
        self._exec(
            "INSERT OR REPLACE INTO turns (run_id, key, turn, attempt, status, request_digest,"
            " request, response_id, response, follow_up, state, time)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, key, turn, attempt, status, request_digest, self.dump(request), response_id,
             self.dump(response), self.dump(follow_up), self.dump(state), time.time()),
            "turn_done" if status == "done" else "turn", key)

    def finish_turn(self, run_id: str, key: str, turn: int, follow_up: Any, state: Any) -> None:
        """The turn's output items were handled; ``follow_up`` is what goes back."""
        self._exec("UPDATE turns SET status='done', follow_up=?, state=? WHERE run_id=? AND key=?"
                   " AND turn=?", (self.dump(follow_up), self.dump(state), run_id, key, turn),
                   "turn_done", key)

    def drop_turns(self, run_id: str, key: str, from_turn: int = 0) -> None:
        """Forget a step's turns from ``from_turn`` on (its request changed)."""
        self._many([
            ("DELETE FROM turns WHERE run_id=? AND key=? AND turn>=?", (run_id, key, from_turn)),
            ("DELETE FROM tool_calls WHERE run_id=? AND key=? AND turn>=?", (run_id, key, from_turn)),
            ("DELETE FROM approvals WHERE run_id=? AND key=? AND turn>=?", (run_id, key, from_turn)),
        ], "drop", key)

    def turns(self, run_id: str, key: str | None = None) -> list[dict[str, Any]]:
        if key is None:
            return self._rows("SELECT * FROM turns WHERE run_id=? ORDER BY key, turn", (run_id,))
        return self._rows("SELECT * FROM turns WHERE run_id=? AND key=? ORDER BY turn", (run_id, key))

    def call_started(self, run_id: str, key: str, call_id: str, turn: int, attempt: int,
                     name: str) -> None:
        self._exec("INSERT OR REPLACE INTO tool_calls (run_id, key, call_id, turn, attempt, name,"
                   " status, time) VALUES (?,?,?,?,?,?,'started',?)",
                   (run_id, key, call_id, turn, attempt, name, time.time()), "call_start", key)

    def call_done(self, run_id: str, key: str, call_id: str, turn: int, attempt: int, name: str,
                  output: str, record: dict[str, Any]) -> None:
        self._exec("INSERT OR REPLACE INTO tool_calls (run_id, key, call_id, turn, attempt, name,"
                   " status, output, record, time) VALUES (?,?,?,?,?,?,'done',?,?,?)",
                   (run_id, key, call_id, turn, attempt, name, self.redactor.text(output),
                    self.dump(record), time.time()), "call", key)

    def tool_calls(self, run_id: str, key: str | None = None) -> list[dict[str, Any]]:
        if key is None:
            return self._rows("SELECT * FROM tool_calls WHERE run_id=? ORDER BY time", (run_id,))
        return self._rows("SELECT * FROM tool_calls WHERE run_id=? AND key=? ORDER BY time",
                          (run_id, key))

    def save_approval(self, run_id: str, key: str, request_id: str, turn: int, attempt: int,
                      answer: dict[str, Any], entry: dict[str, Any]) -> None:
        self._exec("INSERT OR REPLACE INTO approvals (run_id, key, request_id, turn, attempt,"
                   " answer, entry, time) VALUES (?,?,?,?,?,?,?,?)",
                   (run_id, key, request_id, turn, attempt, self.dump(answer), self.dump(entry),
                    time.time()), "approval", key)

    def approvals(self, run_id: str, key: str | None = None) -> list[dict[str, Any]]:
        if key is None:
            return self._rows("SELECT * FROM approvals WHERE run_id=?", (run_id,))
        return self._rows("SELECT * FROM approvals WHERE run_id=? AND key=?", (run_id, key))

    def save_event(self, run_id: str, key: str, turn: int | None, attempt: int, kind: str,
                   at: float, seconds: float | None, detail: str | None = None) -> None:
        """Something a step waited for (``retry``, ``budget``): when, how long, why."""
        self._exec("INSERT INTO events (run_id, key, turn, attempt, kind, time, seconds, detail)"
                   " VALUES (?,?,?,?,?,?,?,?)",
                   (run_id, key, turn, attempt, kind, at, seconds,
                    self.redactor.text(detail) if detail else None))

    def save_outline(self, run_id: str, outline: dict[str, Any]) -> None:
        self._exec("INSERT OR REPLACE INTO outlines (run_id, outline) VALUES (?,?)",
                   (run_id, self.dump(outline)))

    def outline(self, run_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT outline FROM outlines WHERE run_id=?", (run_id,))
        return loads(rows[0]["outline"]) if rows else None

    def events(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT key, turn, attempt, kind, time, seconds, detail FROM events"
                          " WHERE run_id=? ORDER BY seq", (run_id,))

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT key, path, attempt FROM artifacts WHERE run_id=?", (run_id,))

    # -- checks --------------------------------------------------------------------------
    def integrity(self) -> str:
        with self._lock:
            return self.conn.execute("PRAGMA integrity_check").fetchone()[0]


def _encodable(args: Iterable[Any]) -> tuple[Any, ...]:
    """Statement arguments SQLite can store: text holding a lone surrogate (a service reply
    that is not valid Unicode) is kept as its ``\\uXXXX`` escape instead of failing."""
    out = []
    for a in args:
        if isinstance(a, str):
            try:
                a.encode("utf-8")
            except UnicodeEncodeError:
                a = a.encode("utf-8", "backslashreplace").decode("utf-8")
        out.append(a)
    return tuple(out)


def loads(text: str | None) -> Any:
    """A JSON column's value (None stays None)."""
    return None if text is None else json.loads(text)
