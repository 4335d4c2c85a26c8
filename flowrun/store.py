"""Run records and artifacts on disk.

Each run gets ``<root>/<run_id>/`` holding ``record.json`` (rewritten atomically as steps
finish, so a crash keeps what completed), ``responses/<step>[.<n>].json`` (every full
response), and ``artifacts/<step>/`` (images and files). Everything written passes
through the run's :class:`~flowrun.secrets.Redactor`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets as _random
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .crash_points import Point, armed
from .errors import ExecutionError
from .jsontext import dumps
from .secrets import Redactor

INLINE_BYTES = 64 * 1024
"""Responses up to about this size are saved on the event loop, larger ones in a thread."""

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_TEMP = re.compile(r".+\.json\.(\d+)\.\d+\.tmp")  # a JSON file being written (see _write_json)
# an artifact being written (see write_atomic); artifact names never start with a dot
_ARTIFACT_TEMP = re.compile(r"\..+\.(\d+)\.\d+\.tmp")


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + _random.token_hex(3)


def safe_name(name: str, default: str = "file") -> str:
    """A file name that is only a name: no directories, no dots at the start, no oddities."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = _SAFE.sub("_", base).strip("._") or default
    return base[:120]


def unique_name(key: str, default: str = "run") -> str:
    """A safe name for ``key`` that no other key shares: the key itself when it is already
    safe, else its safe form plus a short hash of the raw key (``call/1``, ``call_1`` and
    ``call 1`` get three names)."""
    name = _SAFE.sub("_", key).strip("._")[:100] or default
    if name == key:
        return name
    return f"{name}-{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"


def contained(root: Path, candidate: Path) -> Path:
    """``candidate`` resolved, if it lies inside ``root``; otherwise an error."""
    root_r = root.resolve()
    cand = candidate.resolve()
    if cand != root_r and root_r not in cand.parents:
        raise ExecutionError(f"refusing to write outside the run directory: {candidate}")
    return cand


class RunStore:
    """The directory of one run."""

    def __init__(self, root: Path, run_id: str, redactor: Redactor | None = None):
        self.run_id = run_id
        self.dir = (Path(root) / run_id).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        # not `redactor or ...`: an empty Redactor is falsy, and values added to the run's
        # redactor later (rendered MCP headers) must still be masked here
        self.redactor = redactor if redactor is not None else Redactor()
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}
        # the run's side of the run store (flowrun.durable.RunJournal); None for sub-flows
        self.journal: Any = None

    def clear_stale_files(self) -> None:
        """Remove the half-done files a killed process left (``*.tmp``: exports, responses
        and artifacts written, never renamed into place). Only for a run no other process
        is writing (a resume)."""
        stale = [(tmp, _TEMP) for folder in (self.dir, self.dir / "responses")
                 for tmp in folder.glob("*.json.*.tmp")]
        stale += [(tmp, _ARTIFACT_TEMP) for where in ("artifacts/*", "rows/*/artifacts/*")  # a dataset's rows
                  for tmp in self.dir.glob(f"{where}/.*.tmp")]
        for tmp, pattern in stale:
            pid = pattern.fullmatch(tmp.name)
            if pid and int(pid.group(1)) != os.getpid():
                tmp.unlink(missing_ok=True)

    # -- record --------------------------------------------------------------------------
    def write_record(self, record: dict[str, Any]) -> None:
        pauser = armed()  # a test's crash points (flowrun.crash_points); None otherwise
        if pauser is None:
            self._write_json(self.dir / "record.json", record)
            return
        with Point(pauser, "export", self.run_id) as point:
            self._write_json(self.dir / "record.json", record, point.inside)

    def read_record(self) -> dict[str, Any]:
        return json.loads((self.dir / "record.json").read_text())

    # -- responses -----------------------------------------------------------------------
    def save_response(self, step_key: str, response: dict[str, Any], index: int | None = None) -> Path:
        """Save one full response of a step; a tool loop saves several in order
        (``index``: the turn, when the caller knows it - a resumed step does)."""
        with self._lock:
            n = self._counters.get(step_key, 0) if index is None else index
            self._counters[step_key] = n + 1
        path = self.dir / "responses" / response_name(step_key, n)
        self._write_json(path, response)
        return path

    async def keep_response(self, step_key: str, response: dict[str, Any], index: int | None = None) -> None:
        """:meth:`save_response` from the event loop: a small response is written at once
        (a hop to a worker thread costs more than the write: ~0.1 ms against several ms
        on a busy machine, on the critical path of every step of a chain), a large one
        (images, long outputs) in a worker thread."""
        if smaller_than(response, INLINE_BYTES):
            self.save_response(step_key, response, index)
        else:
            await asyncio.to_thread(self.save_response, step_key, response, index)

    # -- artifacts -----------------------------------------------------------------------
    def artifact_path(self, step_key: str, name: str, default: str = "file") -> Path:
        """A fresh, safe path for an artifact of a step; never outside the run directory."""
        folder = self.dir / "artifacts" / safe_name(step_key, "step")
        folder.mkdir(parents=True, exist_ok=True)
        base = safe_name(name, default)
        stem, dot, ext = base.rpartition(".")
        if not dot:
            stem, ext = base, ""
        path = folder / base
        i = 1
        while path.exists():
            path = folder / (f"{stem}-{i}.{ext}" if ext else f"{stem}-{i}")
            i += 1
        return contained(self.dir, path)

    def save_artifact(self, step_key: str, name: str, data: bytes) -> Path:
        path = self.artifact_path(step_key, name)
        self.write_file(path, data)
        return path

    def write_file(self, path: Path, data: bytes | str) -> None:
        """Write an artifact at ``path`` (from :meth:`artifact_path`) atomically: a kill
        mid-write never leaves a torn file under its name."""
        pauser = armed()
        if pauser is None:
            write_atomic(path, data)
            return
        with Point(pauser, "artifact", path.name) as point:
            write_atomic(path, data, point.inside)

    # -- io ------------------------------------------------------------------------------
    def _write_json(self, path: Path, value: Any, written: Callable[[], None] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = self.redactor.dumps(value, _pretty_json)
        write_atomic(path, text + "\n", written,
                     tmp=path.with_name(path.name + f".{os.getpid()}.{threading.get_ident()}.tmp"))


def write_atomic(path: Path, data: bytes | str, written: Callable[[], None] | None = None,
                 tmp: Path | None = None) -> None:
    """Write ``data`` (text as UTF-8) to a temp file beside ``path`` - by default
    ``.<name>.<pid>.<thread>.tmp``, which :meth:`RunStore.clear_stale_files` removes if the
    process dies - then rename it into place; ``written``: called between the two. A
    failed write leaves no temp file behind."""
    tmp = tmp or path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        if written is not None:
            written()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave a half-written file behind
        raise


def _pretty_json(value: Any) -> str:
    return dumps(value, indent=2, default=str)


def smaller_than(value: Any, limit: int) -> bool:
    """Whether the text inside ``value`` (strings, keys and containers, roughly) is under
    ``limit`` characters; stops walking as soon as it is not."""
    left = limit
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            left -= len(item)
        elif isinstance(item, dict):
            left -= 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            left -= len(item)
            stack.extend(item)
        else:
            left -= 8
        if left < 0:
            return False
    return True


def response_name(step_key: str, n: int) -> str:
    """The file name of a step's response number ``n`` (0 for the first) in ``responses/``."""
    return safe_name(step_key) + (f".{n}" if n else "") + ".json"


def flow_hash(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
