"""The collector: every row's requests of one round go into one batch.

Each step run (a *chain*: one step of one row, or one ``for_each`` item) is counted
*active* while it works locally (rendering, function tools, Python steps) and not while
it waits for a batch. When no chain is active and requests are waiting, the round is
complete: the waiting requests are written as JSONL (split at the file limits),
uploaded, and one batch is created per file; the batch is polled with backoff, its
output and error files are read, and each waiting chain gets its response (or the error
of its line, which its step's retries may send in the next batch). The counts move only
at hand-offs made in one go (a chain is counted before its task starts, and again before
its answer is handed over), so a round is never cut short by a chain about to ask.

A resumed run (attempt > 1) first looks each request up in the store: a request an
earlier attempt had put in a batch that still runs, or that answered it, re-attaches to
that batch instead of going into a new one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import ClientError, FlowrunError, RequestRejected, ServerError
from ..rundb import RunDB
from . import state
from .lines import Line, outcome, read_jsonl, split
from .service import BatchService
from .settings import BatchSettings
from .state import DONE, Job

QUOTA_CODES = frozenset({"token_limit_exceeded"})


def quota_refused(batch: dict[str, Any]) -> bool:
    """A batch that failed for the deployment's enqueued-token quota (Azure)."""
    return any((e or {}).get("code") in QUOTA_CODES for e in _errors(batch))


def _errors(batch: dict[str, Any]) -> list[dict[str, Any]]:
    errors = batch.get("errors") or {}
    return list(errors.get("data") or []) if isinstance(errors, dict) else []


def _counts(batch: dict[str, Any]) -> dict[str, int]:
    counts = batch.get("request_counts") or {}
    return {k: int(counts.get(k) or 0) for k in ("total", "completed", "failed")}


class Collector:
    """Gathers the rows' requests round by round and answers them from batches."""

    def __init__(self, service: BatchService, db: RunDB, run_id: str, attempt: int,
                 settings: BatchSettings, hooks: Any):
        self.service, self.db, self.run_id, self.attempt = service, db, run_id, attempt
        self.settings, self.hooks = settings, hooks
        self.active = 0
        self.queue: list[Line] = []
        self.flushing: asyncio.Task[None] | None = None
        self.wave = 0  # rows go through the layers a wave at a time
        self.layer = 0
        self.round = 0
        self.open: dict[str, Job] = {}  # file id -> job whose batch may still run
        self.created = 0  # batches this attempt created
        self.attached = 0  # batches of earlier attempts this one re-attached to

    # -- chains --------------------------------------------------------------------------
    def enter(self, n: int = 1) -> None:
        self.active += n

    def leave(self, n: int = 1) -> None:
        self.active -= n
        self._check()

    async def request(self, line: Line) -> dict[str, Any]:
        """Wait for ``line``'s answer: its response body, or its error raised."""
        line.future = asyncio.get_running_loop().create_future()
        self.queue.append(line)
        self.leave()
        try:
            return await line.future
        except asyncio.CancelledError:
            if line in self.queue:
                self.queue.remove(line)
            raise

    def _check(self) -> None:
        if self.active <= 0 and self.queue and self.flushing is None:
            self.flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        lines, self.queue = self.queue, []
        self.round += 1
        failure: ClientError | None = None
        try:
            answers = await self._answer(lines)
        except asyncio.CancelledError:
            self.flushing = None
            raise
        except Exception as exc:  # the lines fail (a bug too), the run goes on
            answers, failure = {}, _as_client_error(exc)
        self.flushing = None
        for line in lines:
            if line.future.done():
                continue  # its chain was cancelled
            answer = answers.get(line.custom_id, failure)
            if answer is None:
                answer = ServerError("the batch gave no answer for this request", retry_after=0.0)
            self.active += 1  # counted before its chain runs again
            if isinstance(answer, BaseException):
                line.future.set_exception(answer)
            else:
                line.future.set_result(answer)
        self._check()

    # -- batches -------------------------------------------------------------------------
    async def _answer(self, lines: list[Line]) -> dict[str, Any]:
        """Answers by custom id: from batches of earlier attempts where they hold the very
        request, else from new batches."""
        earlier: dict[str, tuple[Job, list[Line]]] = {}
        fresh: list[Line] = []
        for line in lines:
            job = state.open_job_for(self.db, self.run_id, line) if self.attempt > 1 else None
            if job is None:
                fresh.append(line)
            else:
                earlier.setdefault(job.file_id, (job, []))[1].append(line)
        follow: list[tuple[Job, list[Line], dict[str, Any]]] = []
        for job, part in earlier.values():
            batch = await self._reattach(job)
            if batch is None:
                fresh.extend(part)  # the service no longer has it: sent again
            else:
                follow.append((job, part, batch))
        answers: dict[str, Any] = {}
        too_big = [line for line in fresh if len(line.data) > self.settings.max_bytes]
        for line in too_big:  # fails alone, before any file of the round is uploaded
            answers[line.custom_id] = RequestRejected(
                f"batch line {line.custom_id} is {len(line.data):,} bytes, more than a batch file may "
                f"hold ({self.settings.max_bytes:,})")
        fresh = [line for line in fresh if len(line.data) <= self.settings.max_bytes]
        for n, part in enumerate(split(fresh, self.settings.max_lines, self.settings.max_bytes)):
            job = await self._upload(part, n)
            follow.append((job, part, await self._create(job)))
        found_all = await asyncio.gather(*(self._follow(*entry) for entry in follow), return_exceptions=True)
        for (job, part, _), found in zip(follow, found_all):
            if isinstance(found, asyncio.CancelledError):
                raise found
            if isinstance(found, BaseException):  # that batch's lines fail; the others keep their answers
                answers.update((line.custom_id, _as_client_error(found)) for line in part)
            else:
                answers.update(found)
        return answers

    async def _reattach(self, job: Job) -> dict[str, Any] | None:
        """The batch of an earlier attempt's job: retrieved; looked up by its input file
        when the attempt was killed before it recorded the batch id (and created from that
        file when there is none); None when the service no longer has it."""
        try:
            if job.batch_id is not None:
                batch = await self.service.retrieve(job.batch_id)
            else:
                batch = await self.service.find_by_file(job.file_id)  # created just before a kill?
                if batch is None:
                    return await self._create(job)
                job.batch_id = batch["id"]
        except RequestRejected as exc:
            if exc.status not in (400, 404):
                raise
            job.status = "gone"
            state.update_job(self.db, self.run_id, job, error=str(exc))
            self.hooks.on_notice("batch", f"batch {job.batch_id or job.file_id} of an earlier attempt is gone "
                                          f"({exc}); its lines go in a new batch")
            return None
        self.open[job.file_id] = job
        self.attached += 1
        self._event(job, batch, "re-attached")
        return batch

    async def _upload(self, part: list[Line], n: int) -> Job:
        name = f"flowrun-{self.run_id}-wave{self.wave}-layer{self.layer}-round{self.round}-part{n}.jsonl"
        file_id = await self.service.upload(name, b"".join(line.data for line in part))
        job = Job(file_id, self.wave, self.layer, self.round, n, len(part))
        state.save_job(self.db, self.run_id, job, self.attempt, part)  # before the batch exists
        return job

    async def _create(self, job: Job) -> dict[str, Any]:
        batch = await self.service.create(job.file_id, {
            "flowrun_run": self.run_id, "flowrun_wave": str(job.wave), "flowrun_layer": str(job.layer),
            "flowrun_round": str(job.round)})
        job.batch_id, job.status = batch["id"], batch.get("status") or "validating"
        self.open[job.file_id] = job
        state.update_job(self.db, self.run_id, job)
        self.created += 1
        self._event(job, batch, "submitted")
        return batch

    async def _follow(self, job: Job, lines: list[Line], batch: dict[str, Any]) -> dict[str, Any]:
        """Wait for a job's batch (as created or re-attached) and read its answers."""
        wait, quota_wait, quota_tries = self.settings.poll_initial, self.settings.quota_initial, 0
        while True:
            self._note(job, batch)
            status = batch.get("status")
            if status in DONE:
                break
            if status == "failed":
                if not quota_refused(batch) or quota_tries >= self.settings.quota_tries:
                    break
                quota_tries += 1
                self.hooks.on_notice("batch", f"batch {job.batch_id} refused for quota (token_limit_exceeded); "
                                              f"resubmitting in {quota_wait:g}s (try {quota_tries})")
                await asyncio.sleep(quota_wait)
                quota_wait = min(quota_wait * 2, self.settings.quota_max)
                batch = await self._create(job)
                wait = self.settings.poll_initial
                continue
            await asyncio.sleep(wait)
            wait = min(wait * 1.5, self.settings.poll_max)
            batch = await self.service.retrieve(job.batch_id)
        answers = await self._collect(job, batch, lines)
        self.open.pop(job.file_id, None)
        return answers

    def _note(self, job: Job, batch: dict[str, Any]) -> None:
        counts = _counts(batch)
        status = batch.get("status") or job.status
        if status != job.status or counts != job.counts:
            job.status, job.counts = status, counts
            job.output_file_id = batch.get("output_file_id") or job.output_file_id
            job.error_file_id = batch.get("error_file_id") or job.error_file_id
            state.update_job(self.db, self.run_id, job)
            self._event(job, batch, status)

    def _event(self, job: Job, batch: dict[str, Any], status: str) -> None:
        counts = _counts(batch)
        self.hooks.on_batch({"batch_id": job.batch_id, "wave": job.wave, "layer": job.layer, "round": job.round,
                             "part": job.part, "status": status, "lines": job.lines,
                             "completed": counts["completed"], "failed": counts["failed"]})

    async def _collect(self, job: Job, batch: dict[str, Any], lines: list[Line]) -> dict[str, Any]:
        """Each line's answer from the batch's output and error files."""
        status = batch.get("status")
        records: dict[str, dict[str, Any]] = {}
        for key in ("error_file_id", "output_file_id"):  # an answer in the output file wins
            if batch.get(key):
                records.update(read_jsonl(await self.service.content(batch[key])))
        answers: dict[str, Any] = {}
        if status == "failed":
            reasons = "; ".join(str(e.get("message") or e.get("code")) for e in _errors(batch)) or "no reason given"
            if quota_refused(batch):
                error: ClientError = ServerError(f"batch {job.batch_id} was refused for quota "
                                                 f"{self.settings.quota_tries + 1} times: {reasons}", retry_after=0.0)
            else:
                error = RequestRejected(f"batch {job.batch_id} failed: {reasons}")
            answers = {line.custom_id: error for line in lines}
        else:
            missing = {"expired": "the batch expired before it ran it",
                       "cancelled": "the batch was cancelled"}.get(status or "", "the batch completed without it")
            for line in lines:
                record = records.get(line.custom_id)
                if record is None and status == "cancelled":
                    answers[line.custom_id] = RequestRejected(f"batch {job.batch_id} was cancelled before "
                                                              "it ran this request")
                else:
                    answers[line.custom_id] = outcome(record, missing)
        state.settle_lines(self.db, self.run_id, job.file_id, [
            (cid, "failed" if isinstance(a, BaseException) else "succeeded",
             str(a) if isinstance(a, BaseException) else None) for cid, a in answers.items()])
        if status == "failed":
            state.update_job(self.db, self.run_id, job, error=str(next(iter(answers.values()), "")) or None)
        return answers

    # -- the end -------------------------------------------------------------------------
    async def stop(self, cancel: bool) -> list[Job]:
        """Stop waiting (Ctrl-C); ``cancel``: also cancel the batches still running.
        Returns the jobs whose batches were left running or cancelled."""
        if self.flushing is not None:
            self.flushing.cancel()
            await asyncio.gather(self.flushing, return_exceptions=True)
            self.flushing = None
        left = [job for job in self.open.values() if job.batch_id and job.status not in (*DONE, "failed")]
        if cancel:
            for job in left:
                try:
                    batch = await self.service.cancel(job.batch_id)
                except FlowrunError as exc:
                    self.hooks.on_notice("batch", f"could not cancel batch {job.batch_id}: {exc}")
                    continue
                # cancelled by this run: a resume sends its unanswered lines in a new batch
                job.status = "cancelled" if batch.get("status") in ("cancelling", "cancelled", None) \
                    else batch["status"]
                state.update_job(self.db, self.run_id, job)
        return left


def _as_client_error(exc: BaseException) -> BaseException:
    """What a line learns of its batch's failure (as :meth:`Collector._flush` words it)."""
    if isinstance(exc, ClientError):
        return exc
    if isinstance(exc, FlowrunError):
        return RequestRejected(str(exc))
    return RequestRejected(f"internal error in batch mode: {type(exc).__name__}: {exc}")
