"""HTTP for the emulator: a Starlette app over :class:`~.service.Emulator`.

API routes are mounted under both ``/v1`` (OpenAI-style base URL) and ``/openai/v1``
(Azure v1-style); query parameters such as Azure's ``api-version`` are ignored::

    POST   /responses                      JSON Response, or SSE with "stream": true
    GET    /responses/{id}                 ?stream=true&starting_after=N resumes a background stream
    DELETE /responses/{id}
    POST   /responses/{id}/cancel
    GET    /responses/{id}/input_items     ?order=asc|desc&limit=1..100&after=ITEM_ID

Every API request is journaled on arrival, then waits the configured latency
(``asyncio.sleep``), then is answered; errors use the OpenAI envelope. Control routes
(not journaled) live under ``/_emulator``::

    GET    /_emulator/requests    the journal, oldest first     DELETE clears it
    POST   /_emulator/script      load a script (JSON body, same format as a script file)
    POST   /_emulator/faults      {"spec": "429x2:retry_after=1", "latency_ms": 0, "append": false}
    GET    /_emulator/faults      remaining faults
    POST   /_emulator/reset       back to the startup state (responses, journal, script, faults)
    GET    /_emulator/health

Other modules add API routes with :func:`register_routes` (and control routes with
:func:`register_control_routes`, e.g. ``/_emulator/batches``); their API handlers get the same
journaling, latency and error handling through the ``api`` wrapper they are given.
:data:`ADMISSION` hooks may refuse an API request on arrival (the quotas of :mod:`.quota`)
and :data:`HEADER_HOOKS` add headers to every API response; each journal entry gets the
``status`` it was answered with.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from typing import Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from .auth import check_credentials
from .bodies import read_body
from .errors import APIError
from .faults import FaultSpecError
from .model import new_id
from .script import ScriptError
from .service import Emulator, JSONAnswer, StreamAnswer

Handler = Callable[[Request, Any], "JSONAnswer | StreamAnswer | Awaitable[JSONAnswer | StreamAnswer]"]
ApiWrapper = Callable[[Handler], Callable[[Request], Awaitable[Any]]]
RouteProvider = Callable[[Emulator, ApiWrapper], list[BaseRoute]]
ROUTE_PROVIDERS: list[RouteProvider] = []
ControlWrapper = Callable[[Callable[[Request, Any], Any]], Callable[[Request], Awaitable[Any]]]
CONTROL_PROVIDERS: list[Callable[[Emulator, ControlWrapper], list[BaseRoute]]] = []
ADMISSION: list[Callable[[Emulator, Request, Any], None]] = []
"""Called with (emulator, request, body) on arrival, after journaling; raise APIError to refuse."""
HEADER_HOOKS: list[Callable[[Emulator, Request], dict[str, str]]] = []
"""Called with (emulator, request) as each API response goes out; extra headers for it."""
_DROP_MESSAGE = "ASGI callable returned without completing response."


def register_routes(provider: RouteProvider) -> RouteProvider:
    """Add API routes (mounted under both prefixes) to every app created afterwards."""
    ROUTE_PROVIDERS.append(provider)
    return provider


def register_control_routes(provider: Callable[[Emulator, ControlWrapper], list[BaseRoute]]) -> Any:
    """Add control routes (under ``/_emulator``, not journaled) to every app created
    afterwards; handlers wrapped by the given ``control`` return JSON data."""
    CONTROL_PROVIDERS.append(provider)
    return provider


def _dumps(data: Any) -> bytes:
    # a lone surrogate (a script's "\udc80") goes out as its JSON escape, as the service sends it
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "backslashreplace")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(data), status_code=status, media_type="application/json",
                    headers={"x-request-id": new_id("req"), **(headers or {})})


def error_response(exc: APIError) -> Response:
    return json_response(exc.body(), exc.status, exc.headers())


class SSEResponse:
    """Streams events as ``event: TYPE`` / ``data: JSON`` frames. With ``drop_after`` the
    connection is cut after that many events (no terminating chunk: the client sees a
    broken transfer, as with a real network drop)."""

    def __init__(self, answer: StreamAnswer) -> None:
        self.answer = answer
        self.headers: dict[str, str] = {}
        self.status_code = 200

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        extra = [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream; charset=utf-8"),
                                (b"cache-control", b"no-cache"),
                                (b"x-request-id", new_id("req").encode()), *extra]})
        events, drop, slow = self.answer.events, self.answer.drop_after, self.answer.slow_ms
        sent = 0
        try:
            async for event in events:
                if drop is not None and sent >= drop:
                    return  # uvicorn closes the connection mid-body
                if slow:
                    await asyncio.sleep(slow / 1000)
                frame = b"event: " + event["type"].encode() + b"\ndata: " + _dumps(event) + b"\n\n"
                await send({"type": "http.response.body", "body": frame, "more_body": True})
                sent += 1
        finally:
            if hasattr(events, "aclose"):
                await events.aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def render(answer: JSONAnswer | StreamAnswer) -> Any:
    if hasattr(answer, "response"):  # a ready Starlette response (binary content)
        return answer.response
    if isinstance(answer, StreamAnswer):
        return SSEResponse(answer)
    return json_response(answer.body, answer.status)


class _QuietDrops(logging.Filter):
    """Hide uvicorn's error lines for the deliberate mid-stream connection cut and for
    requests still in flight when the server shuts down (their tasks are cancelled)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() == _DROP_MESSAGE:
            return False
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, asyncio.CancelledError)


class _QuietMultipart(logging.Filter):
    """Drop python-multipart's warnings about a malformed form: the client gets a 400."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.WARNING


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())
    multipart = logging.getLogger("python_multipart.multipart")
    if not any(isinstance(f, _QuietMultipart) for f in multipart.filters):
        multipart.addFilter(_QuietMultipart())


def _int_param(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise APIError(400, f"Invalid value for '{name}': expected an integer, got {raw!r}.", param=name) from None


def create_app(emulator: Emulator) -> Starlette:
    """The ASGI app serving ``emulator``."""
    _install_log_filter()

    def api(handler: Handler) -> Callable[[Request], Awaitable[Any]]:
        async def endpoint(request: Request) -> Any:
            arrived = time.time()
            body, bad_body = None, None
            try:
                body = await read_body(request)
            except APIError as exc:
                bad_body = exc
            entry = emulator.journal.record(request.method, request.url.path,
                                            None if isinstance(body, FormData) else body,
                                            request.headers.items(), arrived, request.url.query)
            try:
                for admit in ADMISSION:
                    admit(emulator, request, None if isinstance(body, FormData) else body)
            except APIError as exc:
                return _answered(entry, _with_headers(error_response(exc), request))
            if emulator.faults.latency_ms:
                await asyncio.sleep(emulator.faults.latency_ms / 1000)
            try:
                check_credentials(emulator.api_key, request.url.path, request.headers)
                if bad_body is not None:
                    raise bad_body
                answer = handler(request, body)
                if inspect.isawaitable(answer):
                    answer = await answer
            except APIError as exc:
                return _answered(entry, _with_headers(error_response(exc), request))
            return _answered(entry, _with_headers(render(answer), request))

        def _with_headers(response: Any, request: Request) -> Any:
            for hook in HEADER_HOOKS:
                extra = hook(emulator, request)
                if extra:
                    response.headers.update(extra)
            return response

        def _answered(entry: Any, response: Any) -> Any:
            if isinstance(entry, dict):
                entry["status"] = getattr(response, "status_code", None)
            return response
        return endpoint

    def rid(request: Request) -> str:
        return request.path_params["response_id"]

    async def create(request: Request, body: Any) -> Any:
        return await emulator.create_response(body)

    def retrieve(request: Request, body: Any) -> Any:
        stream = request.query_params.get("stream", "").lower() in ("true", "1")
        return emulator.retrieve(rid(request), stream, _int_param(request, "starting_after", None))

    def input_items(request: Request, body: Any) -> Any:
        return emulator.input_items(rid(request), request.query_params.get("order", "desc"),
                                    _int_param(request, "limit", 20), request.query_params.get("after"))

    def unknown(request: Request, body: Any) -> Any:
        raise APIError(404, f"Invalid URL ({request.method} {request.url.path})", type="invalid_request_error")

    api_routes: list[BaseRoute] = [
        Route("/responses", api(create), methods=["POST"]),
        Route("/responses/{response_id}", api(retrieve), methods=["GET"]),
        Route("/responses/{response_id}", api(lambda r, b: emulator.delete(rid(r))), methods=["DELETE"]),
        Route("/responses/{response_id}/cancel", api(lambda r, b: emulator.cancel(rid(r))), methods=["POST"]),
        Route("/responses/{response_id}/input_items", api(input_items), methods=["GET"]),
    ]
    for provider in ROUTE_PROVIDERS:
        api_routes.extend(provider(emulator, api))
    api_routes.append(Route("/{path:path}", api(unknown), methods=["GET", "POST", "DELETE", "PUT", "PATCH"]))

    def control(handler: Callable[[Request, Any], Any]) -> Callable[[Request], Awaitable[Any]]:
        async def endpoint(request: Request) -> Any:
            try:
                return json_response(handler(request, await read_body(request)))
            except APIError as exc:  # a bad body
                return error_response(exc)
            except (ValueError, ScriptError, FaultSpecError) as exc:  # bad settings
                return error_response(APIError(400, str(exc)))
        return endpoint

    def load_script(request: Request, body: Any) -> Any:
        emulator.load_script(body if body is not None else {})
        script = emulator.player.script
        return {"loaded": True, "steps": sorted(script.steps), "default": len(script.default)}

    def set_faults(request: Request, body: Any) -> Any:
        if not isinstance(body, dict):
            raise FaultSpecError("expected a JSON object like {\"spec\": \"429x2:retry_after=1\"}")
        emulator.faults.configure(body)
        return emulator.faults.snapshot()

    def clear_requests(request: Request, body: Any) -> Any:
        count = len(emulator.journal)
        emulator.journal.clear()
        return {"deleted": count}

    def reset(request: Request, body: Any) -> Any:
        emulator.reset()
        return {"reset": True}

    def health(request: Request, body: Any) -> Any:
        return {"status": "ok", "responses": len(emulator.store), "requests": len(emulator.journal),
                "journal_dropped": emulator.journal.dropped}

    control_routes = [
        Route("/requests", control(lambda r, b: emulator.journal.entries()), methods=["GET"]),
        Route("/requests", control(clear_requests), methods=["DELETE"]),
        Route("/script", control(load_script), methods=["POST"]),
        Route("/faults", control(set_faults), methods=["POST"]),
        Route("/faults", control(lambda r, b: emulator.faults.snapshot()), methods=["GET"]),
        Route("/reset", control(reset), methods=["POST"]),
        Route("/health", control(health), methods=["GET"]),
    ]
    for control_provider in CONTROL_PROVIDERS:
        control_routes.extend(control_provider(emulator, control))
    return Starlette(routes=[Mount("/v1", routes=api_routes), Mount("/openai/v1", routes=api_routes),
                             Mount("/_emulator", routes=control_routes)])
