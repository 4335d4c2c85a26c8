"""Durable runs: what the runner writes to the run store as work completes, and what a
resumed run takes back from it.

- :class:`RunJournal` is the runner's side: a row per step and ``for_each`` item as each
  finishes, and the decision to reuse an earlier attempt's result (same key, succeeded,
  same request digest) instead of running the step again.
- :class:`StepLedger` is a step executor's side: each model turn (request digest,
  response id, response, the items sent back), each function call and each approval. A
  resumed step replays what its ledger holds - turns already answered are not requested
  again, tool calls already returned are not called again - and goes on live from there.

The request digest of a step is the hash of its YAML entry (with the flow's ``defaults``
and the definitions of the tools it names) rendered in the run's current context, plus
the ``for_each`` item and the response id it continues. A changed prompt, a changed
input (``-i``) or a changed upstream result changes it; ``for_each``, ``needs``, ``if``,
``timeout`` and other scheduling keys do not. Secrets are masked before hashing.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .results import SUCCEEDED, StepOutcome, StepResult
from .rundb import DB_NAME, RunDB, loads

# keys of a step that decide when or whether it runs, not what it sends
NOT_REQUEST = frozenset({"for_each", "needs", "if", "description", "timeout", "retries",
                         "continue_on_error", "on_skipped_needs", "max_parallel", "cache"})
RESULT_FIELDS = tuple(f.name for f in fields(StepResult))


def digest_of(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=True, default=str, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


def result_state(result: StepResult) -> dict[str, Any]:
    """Everything in a result, to restore it on resume."""
    return {name: getattr(result, name) for name in RESULT_FIELDS}


def restore_result(state: dict[str, Any]) -> StepResult:
    return StepResult(**{k: v for k, v in state.items() if k in RESULT_FIELDS})


def step_digest(sc: Any) -> str | None:
    """The digest of a step's rendered request (see the module docstring); None when it
    cannot be rendered now (then the step always runs again)."""
    from .templating import render_deep

    data = sc.run.plan.file.data
    try:
        raw = data["steps"][sc.step_id]
        tools = data.get("tools") or {}
        doc = {
            "step": {k: v for k, v in raw.items() if k not in NOT_REQUEST},
            "defaults": data.get("defaults"),
            "tools": {n: tools[n] for n in (raw.get("tools") or []) if isinstance(n, str) and n in tools},
        }
        rendered = render_deep(doc, sc.context())
    except Exception:
        return None
    if sc.loop:
        rendered["loop"] = sc.loop
    spec = getattr(sc.step, "continue_", None)
    if spec is not None:
        prior = sc.run.outcomes.get(spec.step)
        rendered["continues"] = prior.response_id if prior is not None else None
    return digest_of(sc.run.redactor.deep(rendered))


@dataclass
class PriorRun:
    """What the earlier attempts of a run left in the store, by step key."""

    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    turns: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    calls: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    approvals: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def load(cls, db: RunDB, run_id: str) -> "PriorRun":
        prior = cls()
        for row in db.steps(run_id):
            prior.steps[row["key"]] = row
        for row in db.turns(run_id):
            prior.turns.setdefault(row["key"], {})[row["turn"]] = row
        for row in db.tool_calls(run_id):
            prior.calls.setdefault(row["key"], {})[row["call_id"]] = row
        for row in db.approvals(run_id):
            prior.approvals.setdefault(row["key"], {})[row["request_id"]] = row
        return prior


@dataclass
class Resumption:
    """A resume: the attempt being made (2 for the first resume) and what the earlier
    attempts left."""

    attempt: int
    prior: PriorRun
    note: str | None = None


def save_outline(db: RunDB, run_id: str, plan: Any) -> None:
    """What the run's report needs of its plan (:mod:`flowrun.run_outline`)."""
    from .run_outline import outline_of

    db.save_outline(run_id, outline_of(plan).to_json())


def open_journal(run_root: Path, run_id: str, redactor: Any, resume: Resumption | None) -> "RunJournal":
    """The journal of a run under ``run_root`` (its store file is created on first use)."""
    from .errors import UsageError

    try:
        db = RunDB.at(run_root, redactor)
    except (OSError, sqlite3.Error) as exc:
        raise UsageError(f"cannot open the run store {Path(run_root) / DB_NAME}: {exc}",
                         hint="choose another --run-dir, or check its permissions") from None
    if resume is None:
        return RunJournal(db, run_id)
    return RunJournal(db, run_id, resume.attempt, resume.prior, resume.note)


class RunJournal:
    """Writes one run's progress to the store; decides what a resumed run reuses."""

    def __init__(self, db: RunDB, run_id: str, attempt: int = 1, prior: PriorRun | None = None,
                 note: str | None = None):
        self.db = db
        self.run_id = run_id
        self.attempt = attempt
        self.prior = prior or PriorRun()
        self.note = note
        self.digests: dict[str, str | None] = {}
        self.reused: set[str] = set()

    # -- the run -------------------------------------------------------------------------
    def begin(self, runner: Any) -> None:
        plan, ctx = runner.plan, runner.ctx
        from .store import flow_hash

        provider = getattr(ctx.client, "provider", None)
        self.db.start_run(
            self.run_id, flow_name=plan.flow.name,
            flow_path=str(plan.file.path.resolve()) if plan.file.path else None,
            flow_hash=flow_hash(plan.file.text), flow_text=plan.file.text, inputs=ctx.inputs,
            provider=provider.describe() if provider is not None else None,
            run_dir=str(ctx.store.dir), attempt=self.attempt, note=self.note,
        )
        save_outline(self.db, self.run_id, plan)

    def end(self, runner: Any) -> None:
        note = None
        if self.attempt > 1:
            note = "; ".join(filter(None, [self.note, f"reused {len(self.reused)} completed "
                                                      "step(s) or item(s)"]))
        self.db.end_run(self.run_id, self.attempt, runner.status, runner.error, runner.outputs, note)

    def checkpoint(self) -> None:
        self.db.checkpoint(self.run_id)

    # -- steps ---------------------------------------------------------------------------
    def reuse(self, sc: Any) -> bool:
        """Fill ``sc.result`` from an earlier attempt when the step (or item) succeeded
        there with the same request digest; True if it did."""
        digest = step_digest(sc)
        self.digests[sc.key] = digest
        row = self.prior.steps.get(sc.key)
        if (row is None or row["status"] != SUCCEEDED or digest is None
                or row["digest"] != digest or not row["result"]):
            return False
        restored = restore_result(loads(row["result"]))
        for name in RESULT_FIELDS:
            setattr(sc.result, name, getattr(restored, name))
        self.reused.add(sc.key)
        return True

    def started(self, sc: Any) -> None:
        sc.result.extra["run_attempt"] = self.attempt

    def item_done(self, sc: Any) -> None:
        """A ``for_each`` item finished (or was reused)."""
        if sc.key in self.reused:
            return
        r = sc.result
        self._save(sc.key, sc.step_id, r.index, r.status, r, self.digests.get(sc.key))

    def step_done(self, outcome: StepOutcome, n_items: int | None = None) -> None:
        """A step finished, was settled without running (skipped, cancelled), or was reused."""
        if outcome.step_id in self.reused:
            return
        if outcome.items is None and outcome.result is not None:
            self._save(outcome.step_id, outcome.step_id, None, outcome.status, outcome.result,
                       self.digests.get(outcome.step_id), error=outcome.error)
            return
        self.db.save_step(
            self.run_id, outcome.step_id, outcome.step_id, None, outcome.status, self.attempt,
            usage=outcome.usage, error=outcome.error, started=outcome.started_at,
            ended=outcome.finished_at,
        )
        if outcome.items is not None:
            self.db.drop_items_from(self.run_id, outcome.step_id, len(outcome.items))

    def _save(self, key: str, step_id: str, idx: int | None, status: str, r: StepResult,
              digest: str | None, error: str | None = None) -> None:
        self.db.save_step(
            self.run_id, key, step_id, idx, status, r.extra.get("run_attempt", self.attempt),
            digest=digest, cached=r.cached, text=r.text, output=r.output,
            response_id=r.response_id, usage=r.usage, error=error or r.error,
            result=result_state(r) if status == SUCCEEDED else None,
            started=r.started_at, ended=r.finished_at, artifacts=[*r.images, *r.files],
        )

    def ledger(self, sc: Any) -> "StepLedger":
        """The ledger of a step run. A step that failed before keeps only its finished
        turns: the turn that failed is asked again."""
        turns = self.prior.turns.get(sc.key, {})
        row = self.prior.steps.get(sc.key)
        if row is not None and row["status"] == "failed" and turns:
            kept = {t: r for t, r in turns.items() if r["status"] == "done"}
            first_gone = next((t for t in sorted(turns) if t not in kept), None)
            if first_gone is not None:
                self.db.drop_turns(self.run_id, sc.key, first_gone)
                kept = {t: r for t, r in kept.items() if t < first_gone}
            turns = kept
        return StepLedger(self, sc.key, turns, self.prior.calls.get(sc.key, {}),
                          self.prior.approvals.get(sc.key, {}))


class NullLedger:
    """The ledger of a step that keeps nothing (sub-flows, runs without a store)."""

    def replay(self, turn: int, params: dict[str, Any]) -> dict[str, Any] | None:
        return None

    def pending(self, turn: int, params: dict[str, Any], response_id: str) -> None: ...
    def responded(self, turn: int, params: dict[str, Any], response: dict[str, Any]) -> None: ...
    def turn_done(self, turn: int, follow_up: list[dict[str, Any]], result: StepResult) -> None: ...

    def call(self, call_id: str) -> tuple[str, dict[str, Any]] | None:
        return None

    def call_started(self, call_id: str, turn: int, name: str) -> None: ...
    def call_done(self, call_id: str, turn: int, name: str, output: str, record: dict[str, Any]) -> None: ...

    def approval(self, request_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        return None

    def approved(self, request_id: str, turn: int, answer: dict[str, Any], entry: dict[str, Any]) -> None: ...

    def event(self, turn: int | None, kind: str, at: float, seconds: float | None,
              detail: str | None = None) -> None:
        """The step waited: ``retry`` (an error, then ``seconds`` of backoff) or ``budget``
        (``seconds`` on the rate budget from ``at``, a wall-clock time)."""


NULL_LEDGER = NullLedger()


def ledger_of(sc: Any) -> Any:
    """The step's ledger (a :class:`NullLedger` when the run keeps none)."""
    return sc.state.get("ledger") or NULL_LEDGER


def request_digest(params: dict[str, Any], redactor: Any) -> str:
    return digest_of(redactor.deep(params))


# output items whose handling has no effect outside the result
PLAIN_ITEMS = frozenset({"message", "reasoning"})
_STATE_FIELDS = ("images", "files", "tool_calls", "approvals", "container", "extra")


class StepLedger(NullLedger):
    """One step run's turns, calls and approvals: recorded as they happen, replayed on
    resume while the requests match."""

    def __init__(self, journal: RunJournal, key: str, turns: dict[int, dict[str, Any]],
                 calls: dict[str, dict[str, Any]], approvals: dict[str, dict[str, Any]]):
        self.journal = journal
        self.db = journal.db
        self.key = key
        self.turns = dict(turns)
        self.calls = {k: v for k, v in calls.items() if v["status"] == "done"}
        self.approvals = dict(approvals)
        self.redactor = journal.db.redactor
        self.replayed = 0
        self._held: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}

    def _digest(self, params: dict[str, Any]) -> str:
        return request_digest(params, self.redactor)

    # -- turns ---------------------------------------------------------------------------
    def replay(self, turn: int, params: dict[str, Any]) -> dict[str, Any] | None:
        """The recorded row of this turn if its request was the same; otherwise the
        turn and every later one are forgotten and None is returned."""
        row = self.turns.get(turn)
        if row is None:
            return None
        if row["request_digest"] != self._digest(params):
            self.db.drop_turns(self.journal.run_id, self.key, turn)
            self.turns = {t: r for t, r in self.turns.items() if t < turn}
            self.calls = {c: r for c, r in self.calls.items() if (r["turn"] or 0) < turn}
            self.approvals = {a: r for a, r in self.approvals.items() if (r["turn"] or 0) < turn}
            return None
        out = dict(row)
        out["response"] = loads(row["response"])
        out["follow_up"] = loads(row["follow_up"])
        out["state"] = loads(row["state"])
        if out["response"] is not None:
            self.replayed += 1
        return out

    def pending(self, turn: int, params: dict[str, Any], response_id: str) -> None:
        """A background response exists: a resumed run polls it instead of creating it."""
        self.db.save_turn(self.journal.run_id, self.key, turn, self.journal.attempt, "pending",
                          request_digest=self._digest(params), request=params,
                          response_id=response_id)

    def responded(self, turn: int, params: dict[str, Any], response: dict[str, Any]) -> None:
        """The model answered. Recorded now if handling the answer does work (tool calls,
        approvals, artifacts); a plain answer is recorded with :meth:`turn_done`, in one
        write."""
        if all(i.get("type") in PLAIN_ITEMS for i in response.get("output") or []):
            self._held[turn] = (params, response)
            return
        self.db.save_turn(self.journal.run_id, self.key, turn, self.journal.attempt, "responded",
                          request_digest=self._digest(params), request=params,
                          response_id=response.get("id"), response=response)

    def turn_done(self, turn: int, follow_up: list[dict[str, Any]], result: StepResult) -> None:
        """The turn's output items were handled; ``follow_up`` goes to the next turn."""
        state = {k: getattr(result, k) for k in _STATE_FIELDS}
        held = self._held.pop(turn, None)
        if held is None:
            self.db.finish_turn(self.journal.run_id, self.key, turn, follow_up, state)
            return
        params, response = held
        self.db.save_turn(self.journal.run_id, self.key, turn, self.journal.attempt, "done",
                          request_digest=self._digest(params), request=params,
                          response_id=response.get("id"), response=response,
                          follow_up=follow_up, state=state)

    @staticmethod
    def restore_state(result: StepResult, state: dict[str, Any] | None) -> None:
        """Put back what the handlers of replayed turns had added to the result."""
        for name in _STATE_FIELDS:
            if state and name in state:
                value = state[name]
                if name == "extra":
                    result.extra.update(value or {})
                else:
                    setattr(result, name, value)

    # -- function calls ------------------------------------------------------------------
    def call(self, call_id: str) -> tuple[str, dict[str, Any]] | None:
        row = self.calls.get(call_id)
        if row is None:
            return None
        return row["output"], loads(row["record"])

    def call_started(self, call_id: str, turn: int, name: str) -> None:
        self.db.call_started(self.journal.run_id, self.key, call_id, turn, self.journal.attempt, name)

    def call_done(self, call_id: str, turn: int, name: str, output: str, record: dict[str, Any]) -> None:
        self.db.call_done(self.journal.run_id, self.key, call_id, turn, self.journal.attempt, name,
                          output, record)

    # -- approvals -----------------------------------------------------------------------
    def approval(self, request_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        row = self.approvals.get(request_id)
        if row is None:
            return None
        return loads(row["answer"]), loads(row["entry"])

    def approved(self, request_id: str, turn: int, answer: dict[str, Any], entry: dict[str, Any]) -> None:
        self.db.save_approval(self.journal.run_id, self.key, request_id, turn, self.journal.attempt,
                              answer, entry)

    # -- waits ---------------------------------------------------------------------------
    def event(self, turn: int | None, kind: str, at: float, seconds: float | None,
              detail: str | None = None) -> None:
        self.db.save_event(self.journal.run_id, self.key, turn, self.journal.attempt, kind, at,
                           seconds, detail)
