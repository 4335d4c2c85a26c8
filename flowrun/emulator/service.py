"""The emulator's service layer: the Responses API operations, independent of HTTP.

:class:`Emulator` owns the state (stored responses), the script player, the faults and
the journal. Its methods return :class:`JSONAnswer` / :class:`StreamAnswer` or raise
:class:`~.errors.APIError`; :mod:`.server` turns those into HTTP.

Order of checks for ``POST /responses``: spec conformance (400) → semantic checks
(``model``; ``background`` needs ``store``; ``previous_response_id`` must be stored,
else 404) → the next queued status fault (e.g. 429) → the next script entry (its
``delay_ms``, then its reply or scripted error) → the default rule. Background
responses are ``queued`` for ``background_delay_ms``, then ``in_progress`` for as long
again (plus any ``delay_ms``), then ``completed`` (``failed`` on a scripted error,
``cancelled`` by ``POST /responses/{id}/cancel``).
"""
from __future__ import annotations

import asyncio
import contextvars
import copy
import os
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable, Mapping

from .conformance import check_request
from .errors import APIError
from .events import lifecycle, output_events
from .faults import Faults, StreamFault
from .journal import Journal
from .model import Turn, default_reply, new_id, run_kind, usage
from .script import Reply, ScriptPlayer, coerce_script
from .state import ResponseStore, StoredResponse, normalize_input


@dataclass
class JSONAnswer:
    body: Any
    status: int = 200


@dataclass
class StreamAnswer:
    events: AsyncIterator[dict[str, Any]]
    drop_after: int | None = None  # cut the connection after this many events
    slow_ms: int = 0  # wait before each event


async def _aiter(events: Iterable[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for event in events:
        yield event


def _echo_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = copy.deepcopy(tools or [])
    for tool in out:
        if tool.get("type") == "function":
            tool.setdefault("strict", True)
            tool.setdefault("parameters", None)
    return out


def new_response(body: dict[str, Any], *, status: str, store: bool, background: bool) -> dict[str, Any]:
    """A Response object echoing the request's settings, with empty output."""
    text = copy.deepcopy(body.get("text") or {})
    text.setdefault("format", {"type": "text"})
    response = {
        "id": new_id("resp"), "object": "response", "created_at": int(time.time()),
        "status": status, "background": background, "completed_at": None, "error": None,
        "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "max_tool_calls": body.get("max_tool_calls"),
        "model": body["model"], "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id"), "reasoning": body.get("reasoning"),
        "service_tier": body.get("service_tier") or "default", "store": store,
        "temperature": 1.0 if body.get("temperature") is None else body["temperature"],
        "text": text, "tool_choice": body.get("tool_choice") or "auto",
        "tools": _echo_tools(body.get("tools")),
        "top_logprobs": body.get("top_logprobs") or 0,
        "top_p": 1.0 if body.get("top_p") is None else body["top_p"],
        "truncation": body.get("truncation") or "disabled", "metadata": copy.deepcopy(body.get("metadata") or {}),
    }
    for key in ("prompt", "prompt_cache_key", "safety_identifier", "user"):
        if body.get(key) is not None:
            response[key] = copy.deepcopy(body[key])
    return response


def _snapshot(response: dict[str, Any], status: str) -> dict[str, Any]:
    snap = {**response, "status": status, "output": [], "completed_at": None}
    snap.pop("usage", None)
    return snap


RESET_HOOKS: list[Any] = []
"""Callables ``(emulator) -> None`` run by :meth:`Emulator.reset` (extension state)."""
BEFORE_REPLY: list[Any] = []
"""Async callables ``(turn) -> list[item] | None`` run before the model replies to a
request; the items they return come first in the output. This is the service acting on
the request's input before the model continues, e.g. running the MCP calls that the
client approved with ``mcp_approval_response`` items (:mod:`.hosted_mcp`)."""
AFTER_USAGE: list[Any] = []
"""Callables ``(emulator, response) -> None`` run when a response's ``usage`` is known
(the token quota of :mod:`.quota` charges it)."""
AFTER_REPLY: list[Any] = []
"""Callables ``(turn, response) -> None`` run when a response is finished (its output and
usage set), in order: the service's own items around the model's (reasoning, compaction)
and its bookkeeping (a Conversation's items, cached tokens)."""
FROM_ENV_HOOKS: list[Any] = []
"""Callables ``(emulator, environ) -> None`` run by :meth:`Emulator.from_env` (extension
settings from ``FLOWRUN_EMULATOR_*`` variables; raise ValueError for a bad value)."""
IN_BATCH: contextvars.ContextVar[bool] = contextvars.ContextVar("flowrun_emulator_in_batch", default=False)
"""True while a Batch API line is being answered (:mod:`.batches`): the per-minute quotas
of :mod:`.quota` do not charge it (batches have their own, enqueued-token, quota)."""


class Emulator:
    """A Responses API emulator: state, script, faults and journal.

    ``script``: a :class:`~.script.Script`, a mapping, a file path or ``None``.
    ``faults``: a fault spec string (see :mod:`.faults`), a :class:`~.faults.Faults` or ``None``.
    """

    def __init__(self, script: Any = None, faults: str | Faults | None = None, latency_ms: int = 0,
                 *, background_delay_ms: int = 50, check_requests: bool = True,
                 api_key: str | None = None) -> None:
        """``api_key``: when set, API requests must carry it (401 otherwise; :mod:`.auth`)."""
        self.journal = Journal()
        self.store = ResponseStore()
        self.faults = faults if isinstance(faults, Faults) else Faults(faults or None)
        if latency_ms:
            self.faults.latency_ms = latency_ms
        self.player = ScriptPlayer(coerce_script(script))
        self.background_delay = background_delay_ms / 1000
        self.check_requests = check_requests
        self.api_key = api_key
        self._initial = (self.player.script, copy.deepcopy(self.faults))

    @classmethod
    def from_env(cls, script: Any = None, faults: str | None = None, latency_ms: int | None = None,
                 environ: Mapping[str, str] | None = None, **kwargs: Any) -> "Emulator":
        """Like the constructor, but unset arguments come from ``FLOWRUN_EMULATOR_SCRIPT``
        (a file), ``FLOWRUN_EMULATOR_FAULTS`` and ``FLOWRUN_EMULATOR_LATENCY_MS``."""
        env = os.environ if environ is None else environ
        if latency_ms is None and env.get("FLOWRUN_EMULATOR_LATENCY_MS"):
            try:
                latency_ms = int(env["FLOWRUN_EMULATOR_LATENCY_MS"])
            except ValueError:
                raise ValueError("FLOWRUN_EMULATOR_LATENCY_MS must be an integer number of milliseconds") from None
        emulator = cls(script if script is not None else env.get("FLOWRUN_EMULATOR_SCRIPT") or None,
                       faults if faults is not None else env.get("FLOWRUN_EMULATOR_FAULTS") or None,
                       **kwargs)
        if latency_ms is not None:
            emulator.faults.latency_ms = latency_ms
            emulator._initial = (emulator._initial[0], copy.deepcopy(emulator.faults))
        for hook in FROM_ENV_HOOKS:
            hook(emulator, env)
        return emulator

    def load_script(self, script: Any) -> None:
        """Replace the script (and forget which entries were used)."""
        self.player.load(coerce_script(script))

    def reset(self) -> None:
        """Back to the state right after construction: no stored responses, an empty
        journal, and the initial script (unused), faults and latency."""
        self.store.clear()
        script, faults = self._initial
        self.player.load(script)
        self.faults = copy.deepcopy(faults)
        self.journal.clear()
        for hook in RESET_HOOKS:
            hook(self)

    # ------------------------------------------------------------ POST /responses

    async def create_response(self, body: Any, *, batch: bool = False) -> JSONAnswer | StreamAnswer:
        """``batch``: a Batch API line (:mod:`.batches`): no streaming or background, and
        the HTTP fault queues are left alone (batch lines have their own fault rules)."""
        if self.check_requests:
            check_request(body)
        elif not isinstance(body, dict):
            raise APIError(400, "The request body must be a JSON object.")
        if not body.get("model"):
            raise APIError(400, "Missing required parameter: 'model'.", param="model",
                           code="missing_required_parameter")
        store = body.get("store") is not False
        background, stream = bool(body.get("background")), bool(body.get("stream"))
        if background and not store:
            raise APIError(400, "Background mode requires store=true.", param="background")
        if batch and (background or stream):
            which = "background" if background else "stream"
            raise APIError(400, f"'{which}' is not supported in a batch request.", param=which)
        history = self.store.history(body.get("previous_response_id"))
        inputs = normalize_input(body.get("input"), self.store)
        fault = None if batch else self.faults.next_status()
        if fault is not None:
            raise APIError(fault.status, fault.message or f"Injected fault: HTTP {fault.status} from the flowrun emulator.",
                           type=fault.type, code=fault.code, retry_after=fault.retry_after)
        turn = Turn(body, history + inputs, self)
        reply = self.player.next_reply(turn.step, turn.item, turn.last_user_text)
        stream_fault = self.faults.next_stream() if stream else None
        drop, slow = self._stream_shape(reply, stream_fault)
        response = new_response(body, status="queued" if background else "in_progress",
                                store=store, background=background)
        record = StoredResponse(response, history + inputs, stream=stream, background=background)

        if background:
            self.store.put(record)
            record.append_events([lifecycle("created", response), lifecycle("queued", response)])
            record.task = asyncio.get_running_loop().create_task(self._run_background(record, turn, reply))
            if stream:
                return StreamAnswer(record.follow(-1), drop, slow)
            return JSONAnswer(copy.deepcopy(response))

        if reply is not None and reply.delay_ms:
            await asyncio.sleep(reply.delay_ms / 1000)
        self._finish(response, await self._generate(turn, reply), turn)
        if store:
            self.store.put(record)
        if not stream:
            return JSONAnswer(response)
        events = [lifecycle("created", _snapshot(response, "in_progress")),
                  lifecycle("in_progress", _snapshot(response, "in_progress")), *output_events(response)]
        for number, event in enumerate(events):
            event["sequence_number"] = number
        return StreamAnswer(_aiter(events), drop, slow)

    @staticmethod
    def _stream_shape(reply: Reply | None, fault: StreamFault | None) -> tuple[int | None, int]:
        drop = reply.drop_stream_after if reply is not None else None
        if drop is None and fault is not None and fault.kind == "drop":
            drop = fault.value
        return drop, fault.value if fault is not None and fault.kind == "slow" else 0

    async def _generate(self, turn: Turn, reply: Reply | None) -> list[dict[str, Any]]:
        first: list[dict[str, Any]] = []
        for hook in BEFORE_REPLY:
            first.extend(await hook(turn) or [])
        if reply is None:
            return first + default_reply(turn)
        return first + await run_kind(reply.kind, reply.value, turn)

    @staticmethod
    def _finish(response: dict[str, Any], output: list[dict[str, Any]], turn: Turn) -> None:
        response["output"] = output
        response["usage"] = usage(turn, output)
        response["status"] = "completed"
        response["completed_at"] = int(time.time())
        for hook in AFTER_USAGE:
            hook(turn.emulator, response)
        for hook in AFTER_REPLY:
            hook(turn, response)

    async def _run_background(self, record: StoredResponse, turn: Turn, reply: Reply | None) -> None:
        response = record.response
        try:
            await asyncio.sleep(self.background_delay)
            response["status"] = "in_progress"
            record.append_events([lifecycle("in_progress", response)])
            await asyncio.sleep(self.background_delay + (reply.delay_ms / 1000 if reply else 0))
            self._finish(response, await self._generate(turn, reply), turn)
        except APIError as exc:
            response["status"] = "failed"
            response["error"] = {"code": "rate_limit_exceeded" if exc.status == 429 else "server_error",
                                 "message": exc.message}
        except Exception as exc:  # a broken reply handler must not leave the response hanging
            response["status"] = "failed"
            response["error"] = {"code": "server_error", "message": f"emulator error: {exc!r}"}
        record.append_events(output_events(response))

    # ------------------------------------------------------------ other routes

    def retrieve(self, response_id: str, stream: bool = False, starting_after: int | None = None) -> JSONAnswer | StreamAnswer:
        record = self.store.get(response_id)
        if not stream:
            return JSONAnswer(copy.deepcopy(record.response))
        if not (record.background and record.stream):
            raise APIError(400, "Only responses created with background=true and stream=true can be streamed "
                           "again.", param="stream")
        return StreamAnswer(record.follow(-1 if starting_after is None else starting_after))

    def delete(self, response_id: str) -> JSONAnswer:
        self.store.delete(response_id)
        return JSONAnswer({"id": response_id, "object": "response.deleted", "deleted": True})

    def cancel(self, response_id: str) -> JSONAnswer:
        record = self.store.get(response_id)
        if not record.background:
            raise APIError(400, "Only responses created with background=true can be cancelled.",
                           param="response_id")
        if not record.finished:
            if record.task is not None:
                record.task.cancel()
            record.response["status"] = "cancelled"
            record.notify()
        return JSONAnswer(copy.deepcopy(record.response))

    def input_items(self, response_id: str, order: str = "desc", limit: int = 20,
                    after: str | None = None) -> JSONAnswer:
        record = self.store.get(response_id)
        if order not in ("asc", "desc"):
            raise APIError(400, f"Invalid value for 'order': {order!r}; expected 'asc' or 'desc'.", param="order")
        if not 1 <= limit <= 100:
            raise APIError(400, "Invalid value for 'limit': must be between 1 and 100.", param="limit")
        items = record.context if order == "asc" else record.context[::-1]
        start = 0
        if after:
            ids = [item.get("id") for item in items]
            if after not in ids:
                raise APIError(400, f"Invalid value for 'after': no input item with id '{after}'.", param="after")
            start = ids.index(after) + 1
        page = copy.deepcopy(items[start:start + limit])
        return JSONAnswer({"object": "list", "data": page,
                           "first_id": page[0]["id"] if page else "", "last_id": page[-1]["id"] if page else "",
                           "has_more": start + limit < len(items)})

    async def aclose(self) -> None:
        await self.store.aclose()
