"""The Batch API of the emulator, for ``/v1/responses`` requests (also under ``/openai/v1``)::

    POST /batches                  {"input_file_id", "endpoint": "/v1/responses",
                                    "completion_window": "24h", "metadata"?}
    GET  /batches                  newest first; ?after=BATCH_ID&limit=1..100 (default 20)
    GET  /batches/{id}
    POST /batches/{id}/cancel      -> cancelling -> cancelled (lines already done are kept)

Input files are uploaded with ``POST /files`` and purpose ``batch`` (checked by
:mod:`.batch_input`); output and error files get purpose ``batch_output`` and are read
with ``GET /files/{id}/content``.

A batch runs in the background on the server's loop: ``validating`` (the lines are
checked, and the enqueued-token quota) -> ``in_progress`` (each line in file order,
through :meth:`Emulator.create_response` exactly as ``POST /responses`` would answer it:
same model, script, stored responses, so ``previous_response_id`` chains across batches)
-> ``finalizing`` (the files are written) -> ``completed``. Or ``failed`` (invalid lines
or quota; ``errors.data[]``), ``expired`` (fault rule ``expire@K``), ``cancelled``.
``request_counts`` and ``usage`` grow as lines finish. Output lines are
``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error": null}``;
a line answered with an error goes to the error file with its status and error body; a
line an expired batch did not reach goes there with ``response: null`` and
``error.code`` ``batch_expired``.

**Quota** (Azure's Global Batch): with a token limit for the model
(:mod:`.batch_settings`), a batch whose lines' input tokens
(:func:`~.batch_input.estimate_tokens`) plus the tokens of the model's batches still
running exceed it fails while validating with ``errors.data[0].code`` =
``token_limit_exceeded``; wait for running batches to finish and submit again.

A cancel cuts the processing delay short: the line running finishes, the files are
written and the batch is ``cancelled`` at once.

Timing and faults: ``delay_ms`` (:mod:`.batch_settings`) and the ``line@`` / ``expire@``
fault rules (:mod:`.batch_faults`). Batch lines are not journaled (the journal holds HTTP
requests: ``POST /v1/files``, ``POST /v1/batches``, ...) and do not use the HTTP fault queue
or the per-minute quotas.
"""
from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from . import batch_faults
from .batch_input import Line, check_upload, estimate_tokens, first_model, parse_lines
from .batch_settings import batch_settings, reset_settings, settings_from_env
from .conformance import check_body, load_subset
from .errors import APIError, not_found
from .files import BATCH_FILE_SECONDS, UPLOAD_CHECKS, expiry_seconds, file_store
from .model import new_id
from .server import _int_param, register_control_routes, register_routes
from .service import FROM_ENV_HOOKS, IN_BATCH, RESET_HOOKS, JSONAnswer

ENDPOINT = "/v1/responses"
WINDOW_SECONDS = 24 * 3600
TERMINAL = ("completed", "failed", "expired", "cancelled")  # a batch in one of these is done


def _usage() -> dict[str, Any]:
    return {"input_tokens": 0, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 0,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 0}


@dataclass
class BatchJob:
    """One batch: its Batch object (``data``, None fields left out when served) and the
    lines' results."""

    data: dict[str, Any]
    tokens: int = 0  # input tokens enqueued while it runs
    enqueued: bool = False
    outputs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    task: asyncio.Task | None = None
    loop: asyncio.AbstractEventLoop | None = None
    dropped: bool = False  # the emulator was reset: write nothing more
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # set by a cancel
    file_seconds: int = BATCH_FILE_SECONDS  # output and error files expire after this

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def status(self) -> str:
        return self.data["status"]

    def set_status(self, status: str) -> None:
        self.data["status"] = status
        self.data[f"{status}_at"] = int(time.time())

    def to_json(self) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in self.data.items() if v is not None}


class BatchStore:
    """The emulator's batches, oldest first (reads may come from other threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, BatchJob] = {}

    def add(self, job: BatchJob) -> None:
        with self._lock:
            self._jobs[job.id] = job

    def get(self, batch_id: str) -> BatchJob:
        with self._lock:
            job = self._jobs.get(batch_id)
        if job is None:
            raise not_found("Batch", batch_id, "batch_id")
        return job

    def all(self) -> list[BatchJob]:
        with self._lock:
            return list(self._jobs.values())

    def enqueued_tokens(self, model: str) -> int:
        return sum(j.tokens for j in self.all() if j.enqueued and j.data.get("model") == model)

    def clear(self) -> None:
        with self._lock:
            jobs, self._jobs = list(self._jobs.values()), {}
        for job in jobs:
            job.dropped = True
            task, loop = job.task, job.loop
            if task is None or task.done() or loop is None or loop.is_closed():
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                task.cancel()
            else:
                loop.call_soon_threadsafe(task.cancel)


def batch_store(emulator: Any) -> BatchStore:
    """The emulator's batches (created on first use)."""
    store = getattr(emulator, "_batch_store", None)
    if store is None:
        store = emulator._batch_store = BatchStore()
    return store


# ------------------------------------------------------------------ processing


async def _wait(emulator: Any, job: BatchJob) -> None:
    """The processing delay (at least one turn of the loop); a cancel cuts it short."""
    delay = batch_settings(emulator).delay_ms
    if not delay or job.status == "cancelling":
        await asyncio.sleep(0)
        return
    try:
        await asyncio.wait_for(job.wake.wait(), delay / 1000)
    except asyncio.TimeoutError:
        pass


async def _run_line(emulator: Any, job: BatchJob, line: Line) -> None:
    """Answer one line as ``POST /responses`` would and file the result."""
    request_id = new_id("req")
    fault = batch_faults.line_fault(emulator.faults, line.number, line.custom_id)
    token = IN_BATCH.set(True)
    try:
        if fault is not None:
            raise fault
        answer = await emulator.create_response(copy.deepcopy(line.body), batch=True)
        status, body = 200, answer.body
    except APIError as exc:
        status, body = exc.status, exc.body()
    except Exception as exc:  # a broken reply handler fails its line, not the batch
        status, body = 500, APIError(500, f"emulator error: {exc!r}").body()
    finally:
        IN_BATCH.reset(token)
    out = json.dumps({"id": new_id("batch_req"), "custom_id": line.custom_id,
                      "response": {"status_code": status, "request_id": request_id, "body": body},
                      "error": None}, ensure_ascii=False)
    counts = job.data["request_counts"]
    if status == 200:
        job.outputs.append(out)
        counts["completed"] += 1
        _add_usage(job.data["usage"], body.get("usage") or {})
    else:
        job.errors.append(out)
        counts["failed"] += 1


def _add_usage(total: dict[str, Any], usage: dict[str, Any]) -> None:
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        total[key] += int(usage.get(key) or 0)
    total["input_tokens_details"]["cached_tokens"] += int(
        (usage.get("input_tokens_details") or {}).get("cached_tokens") or 0)
    total["output_tokens_details"]["reasoning_tokens"] += int(
        (usage.get("output_tokens_details") or {}).get("reasoning_tokens") or 0)


def _fail(job: BatchJob, errors: list[dict[str, Any]]) -> None:
    job.data["errors"] = {"object": "list", "data": errors}
    job.set_status("failed")


async def _process(emulator: Any, job: BatchJob, data: bytes) -> None:
    store = batch_store(emulator)
    await _wait(emulator, job)
    if job.status == "cancelling":
        return await _finish(emulator, job)
    lines, errors = await asyncio.to_thread(parse_lines, data, job.data["endpoint"])  # up to 200 MB
    if job.status == "cancelling" or job.dropped:
        return await _finish(emulator, job)
    if errors:
        return _fail(job, errors)
    model = lines[0].body["model"]
    job.data["model"] = model
    job.tokens = sum(estimate_tokens(line.body) for line in lines)
    limit = batch_settings(emulator).limit_for(model)
    enqueued = store.enqueued_tokens(model)
    if limit is not None and enqueued + job.tokens > limit:
        return _fail(job, [{
            "code": "token_limit_exceeded", "param": None, "line": None,
            "message": f"Enqueued token limit reached for {model}. Limit: {limit:,} enqueued tokens; "
                       f"{enqueued:,} are enqueued and this batch has {job.tokens:,}. Please try again once "
                       "some in_progress batches have been completed."}])
    job.enqueued = True
    job.data["request_counts"]["total"] = len(lines)
    job.set_status("in_progress")
    expire_after = batch_faults.take_expiry(emulator.faults)
    try:
        for index, line in enumerate(lines):
            while _paused(emulator, index) and job.status != "cancelling":
                await asyncio.sleep(0.01)
            if job.status == "cancelling" or job.dropped:
                break
            if expire_after is not None and index >= expire_after:
                return await _expire(emulator, job, lines[index:])
            await _wait(emulator, job)
            if job.status == "cancelling" or job.dropped:
                break
            await _run_line(emulator, job, line)
        if job.status != "cancelling":
            job.set_status("finalizing")
        await _finish(emulator, job)
    finally:
        job.enqueued = False


def _paused(emulator: Any, done: int) -> bool:
    pause = batch_settings(emulator).pause_after
    return pause is not None and done >= pause


async def _expire(emulator: Any, job: BatchJob, left: list[Line]) -> None:
    for line in left:
        job.errors.append(json.dumps({"id": new_id("batch_req"), "custom_id": line.custom_id, "response": None,
                                      "error": {"code": "batch_expired", "message": "This request could not be "
                                                "executed before the completion window expired."}},
                                     ensure_ascii=False))
        job.data["request_counts"]["failed"] += 1
    await _finish(emulator, job, "expired")


async def _finish(emulator: Any, job: BatchJob, status: str | None = None) -> None:
    """Write the output and error files, then the terminal status."""
    await _wait(emulator, job)
    if job.dropped:
        return
    files = file_store(emulator)
    for key, rows, name in (("output_file_id", job.outputs, "output"), ("error_file_id", job.errors, "error")):
        if rows:
            # a lone surrogate (a script's "\udc80") goes out as its JSON escape, as the server sends it
            text = ("\n".join(rows) + "\n").encode("utf-8", "backslashreplace")
            job.data[key] = files.add(text, f"{job.id}_{name}.jsonl", "batch_output", job.file_seconds).id
    job.set_status(status or ("cancelled" if job.status == "cancelling" else "completed"))


async def _guarded(emulator: Any, job: BatchJob, data: bytes) -> None:
    try:
        await _process(emulator, job, data)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # an emulator bug must not leave the batch running forever
        job.enqueued = False
        _fail(job, [{"code": "server_error", "message": f"emulator error: {exc!r}", "param": None, "line": None}])


# ------------------------------------------------------------------ HTTP


_CREATE_PARAMS = frozenset(load_subset()["components"]["schemas"]["CreateBatchRequest"]["properties"])


def _new_job(body: dict[str, Any], data: bytes) -> BatchJob:
    now = int(time.time())
    return BatchJob({
        "id": new_id("batch"), "object": "batch", "endpoint": body["endpoint"], "model": first_model(data),
        "errors": None, "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
        "status": "validating", "output_file_id": None, "error_file_id": None, "created_at": now,
        "in_progress_at": None, "expires_at": now + WINDOW_SECONDS, "finalizing_at": None, "completed_at": None,
        "failed_at": None, "expired_at": None, "cancelling_at": None, "cancelled_at": None,
        "request_counts": {"total": 0, "completed": 0, "failed": 0}, "usage": _usage(),
        "metadata": copy.deepcopy(body.get("metadata")),
    })


@register_routes
def _routes(emulator: Any, api: Any) -> list[BaseRoute]:
    store = batch_store(emulator)

    def create(request: Request, body: Any) -> JSONAnswer:
        if not isinstance(body, dict):
            raise APIError(400, "The request body must be a JSON object.")
        unknown = sorted(set(body) - _CREATE_PARAMS)
        if unknown:
            raise APIError(400, f"Unknown parameter: '{unknown[0]}'.", param=unknown[0], code="unknown_parameter")
        check_body("CreateBatchRequest", body)
        if body["endpoint"] != ENDPOINT:
            raise APIError(400, f"The flowrun emulator batches {ENDPOINT} requests only, not {body['endpoint']}.",
                           param="endpoint", code="invalid_value")
        source = file_store(emulator).require(body["input_file_id"])
        if source.purpose != "batch":
            raise APIError(400, f"The input file {source.id} has purpose {source.purpose!r}; upload it with "
                           "purpose 'batch'.", param="input_file_id", code="invalid_value")
        job = _new_job(body, source.data)
        if body.get("output_expires_after") is not None:
            job.file_seconds = expiry_seconds(body["output_expires_after"], "output_expires_after")
        store.add(job)
        job.loop = asyncio.get_running_loop()
        job.task = job.loop.create_task(_guarded(emulator, job, source.data))
        return JSONAnswer(job.to_json())

    def listing(request: Request, body: Any) -> JSONAnswer:
        limit = _int_param(request, "limit", 20)
        if not 1 <= limit <= 100:
            raise APIError(400, "Invalid value for 'limit': must be between 1 and 100.", param="limit")
        jobs = store.all()[::-1]
        after = request.query_params.get("after")
        start = 0
        if after:
            ids = [j.id for j in jobs]
            if after not in ids:
                raise APIError(400, f"Invalid value for 'after': no batch with id '{after}'.", param="after")
            start = ids.index(after) + 1
        page = [j.to_json() for j in jobs[start:start + limit]]
        answer: dict[str, Any] = {"object": "list", "data": page, "has_more": start + limit < len(jobs)}
        if page:
            answer.update(first_id=page[0]["id"], last_id=page[-1]["id"])
        return JSONAnswer(answer)

    def retrieve(request: Request, body: Any) -> JSONAnswer:
        return JSONAnswer(store.get(request.path_params["batch_id"]).to_json())

    def cancel(request: Request, body: Any) -> JSONAnswer:
        job = store.get(request.path_params["batch_id"])
        if job.status in ("validating", "in_progress", "finalizing"):
            job.set_status("cancelling")
            job.wake.set()
        elif job.status not in ("cancelling", "cancelled"):
            raise APIError(409, f"Cannot cancel a batch with status '{job.status}'.", param="batch_id",
                           code="invalid_state")
        return JSONAnswer(job.to_json())

    return [
        Route("/batches", api(create), methods=["POST"]),
        Route("/batches", api(listing), methods=["GET"]),
        Route("/batches/{batch_id}", api(retrieve), methods=["GET"]),
        Route("/batches/{batch_id}/cancel", api(cancel), methods=["POST"]),
    ]


@register_control_routes
def _control(emulator: Any, control: Any) -> list[BaseRoute]:
    def show(request: Request, body: Any) -> dict[str, Any]:
        store = batch_store(emulator)
        models = sorted({j.data.get("model") for j in store.all() if j.enqueued})
        return {**batch_settings(emulator).snapshot(), "batches": len(store.all()),
                "enqueued_tokens": {m: store.enqueued_tokens(m) for m in models}}

    def configure(request: Request, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ValueError('expected a JSON object like {"delay_ms": 50, "token_limit": 10000}')
        batch_settings(emulator).configure(body)
        return show(request, None)

    return [Route("/batches", control(show), methods=["GET"]),
            Route("/batches", control(configure), methods=["POST"])]


def _check_upload(emulator: Any, data: bytes, filename: str) -> None:
    check_upload(batch_settings(emulator), data, filename)


def _reset(emulator: Any) -> None:
    batch_store(emulator).clear()
    reset_settings(emulator)


UPLOAD_CHECKS["batch"] = _check_upload
RESET_HOOKS.append(_reset)
FROM_ENV_HOOKS.append(settings_from_env)
