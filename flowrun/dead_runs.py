"""Runs whose process died (``kill -9``, a crash, a power cut) while they ran.

The dead process cannot say so itself: its store row and its ``record.json`` still read
``running``. Readers tell (:func:`flowrun.rundb.effective_status`: the pid is gone, or
now belongs to a later process) and :func:`settle` records it - ``interrupted`` in the
store (the run, its last attempt) and in the run's ``record.json`` export (the run and
the steps and items it was running). ``flowrun runs``, ``flowrun show`` and
``flowrun resume`` settle the runs they look at; ``flowrun resume`` finishes them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import StoreError
from .rundb import INTERRUPTED, RunDB
from .run_owner import OwnerLock

DIED = "the process running it died (`flowrun resume` finishes the run)"


def settle(db: RunDB, run_id: str | None = None) -> list[str]:
    """Record dead runs (all of them, or ``run_id``) as interrupted; their ids. A store
    this process cannot write is left as it is (readers still show the runs interrupted)."""
    settled = []
    for row in db.dead_runs(run_id):
        lock = _take(row["run_dir"])  # a resume starting now waits until this is done
        if lock is False:
            continue  # a resume took the run over meanwhile
        try:
            if not db.mark_interrupted(row):
                continue  # the same
            settled.append(row["id"])
            _export(db, row)
        except StoreError:
            return settled
        finally:
            if lock:
                lock.release()
    return settled


def _take(run_dir: str | None) -> OwnerLock | bool | None:
    """The run's owner lock, taken at once; False if a live process holds it; None when
    there is none to take (no run directory, one this process cannot write)."""
    if not run_dir or not Path(run_dir).is_dir():
        return None
    lock = OwnerLock(Path(run_dir))
    try:
        return lock if lock.acquire(wait=0) else False
    except OSError:
        return None


def _export(db: RunDB, row: dict[str, Any]) -> None:
    """Mark the run's ``record.json`` interrupted (left alone if missing or not its own)."""
    if not row["run_dir"]:
        return
    path = Path(row["run_dir"]) / "record.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(record, dict) or record.get("run_id") != row["id"]:
        return
    record["status"] = INTERRUPTED
    record.setdefault("error", DIED)
    for step in (record.get("steps") or {}).values():
        for entry in [step, *(step.get("items") or [])]:
            if isinstance(entry, dict) and entry.get("status") == "running":
                entry["status"] = INTERRUPTED
    record["attempts"] = db.attempts(row["id"])
    from .store import RunStore

    try:
        RunStore(path.parent.parent, path.parent.name).write_record(record)
    except OSError:
        pass  # a directory this process cannot write: the store says interrupted
