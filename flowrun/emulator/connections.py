"""Connection limits for the emulator's HTTP server (uvicorn over h11).

uvicorn bounds the idle time between requests on a keep-alive connection
(``timeout_keep_alive``) but not the time a client takes to send a request head: a
socket that connects and sends nothing, or sends a header a byte at a time (slowloris),
stays open for ever. :class:`GuardedH11` adds that deadline: from the moment a connection
opens, or the first byte of a later request arrives, the client has
``header_timeout`` seconds to complete the request line and headers, or the server
closes the connection. Once the head is in, the body must arrive within ``body_timeout``
seconds (a client dripping a body a byte at a time would otherwise hold the connection
and a request slot): past that the answer is 408 (OpenAI error envelope) and the
connection is closed. It also sets TCP_NODELAY.

Beyond ``max_concurrency`` open connections or running requests, a request is answered
503 with the OpenAI error envelope (``{"error": {"message", "type", "param", "code"}}``)
and ``Retry-After``, as the service does when overloaded; the SDK retries that. (uvicorn's
own ``limit_concurrency`` answers plain text, so it is left off.)
"""
from __future__ import annotations

import asyncio
import functools
import json
import socket
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import APIError

OVERLOAD_RETRY_AFTER = 1.0  # seconds a client is asked to wait past the concurrency limit


@dataclass(frozen=True)
class ConnectionLimits:
    """What one client connection may take."""

    header_timeout: float = 10.0      # seconds to send a complete request head
    body_timeout: float = 60.0        # seconds to send a request's whole body, once its head is in
    keep_alive: float = 5.0           # idle seconds between requests on one connection
    max_header_bytes: int = 16 * 1024  # request line plus headers (larger: 400)
    max_concurrency: int = 512        # open connections or running requests; beyond: 503

    def uvicorn_settings(self) -> dict[str, Any]:
        """The matching ``uvicorn.Config`` keyword arguments (with the protocol class)."""
        return {"http": guarded_protocol(self), "timeout_keep_alive": self.keep_alive,
                "h11_max_incomplete_event_size": self.max_header_bytes}


@functools.lru_cache(maxsize=8)
def overloaded_app(limit: int) -> Any:
    """The ASGI app answering a request past the concurrency limit: 503, JSON, Retry-After."""
    error = APIError(503, f"The emulator is at its limit of {limit} concurrent connections or requests; "
                          "retry after a moment.", code="service_unavailable",
                     retry_after=OVERLOAD_RETRY_AFTER)
    body = json.dumps(error.body(), separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close"),
               *((k.encode(), v.encode()) for k, v in error.headers().items())]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
    return app


class GuardedH11(H11Protocol):
    """h11 with request-head and request-body deadlines, the concurrency limit (see the
    module docstring) and TCP_NODELAY:
    uvicorn writes headers and body separately, and Nagle plus delayed ACKs would
    otherwise add ~40 ms to every response."""

    header_timeout: float = ConnectionLimits.header_timeout
    body_timeout: float = ConnectionLimits.body_timeout
    max_concurrency: int | None = ConnectionLimits.max_concurrency
    _timer: asyncio.TimerHandle | None = None
    _phase: str | None = None
    _app: Any = None

    @property  # type: ignore[override]
    def app(self) -> Any:
        """The app for the request being read: uvicorn picks it up as each request's head
        arrives, so this is where the concurrency limit is checked (as uvicorn checks it)."""
        limit = self.max_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            return overloaded_app(limit)
        return self._app

    @app.setter
    def app(self, value: Any) -> None:
        self._app = value

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        super().connection_made(transport)
        self._arm("head")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        phase = self._phase_now()
        if phase != self._phase:  # each deadline runs from the first byte of its phase
            self._disarm()
            if phase is not None:
                self._arm(phase)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _phase_now(self) -> str | None:
        """``head`` while a request head is awaited, ``body`` while its body is, else None."""
        if self.transport.is_closing():
            return None
        state = self.conn.their_state
        return "head" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None

    def _arm(self, phase: str) -> None:
        self._disarm()
        self._phase = phase
        delay = self.header_timeout if phase == "head" else self.body_timeout
        self._timer = self.loop.call_later(delay, self._timed_out)

    def _disarm(self) -> None:
        self._phase = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        phase, self._phase, self._timer = self._phase, None, None
        if phase is None or self._phase_now() != phase:
            return
        if phase == "head":
            try:
                self.conn.send(h11.ConnectionClosed())
            except h11.LocalProtocolError:
                pass
        else:
            self._answer_slow_body()
        self.transport.close()

    def _answer_slow_body(self) -> None:
        """408 (OpenAI error envelope) for a body that did not arrive in time; the app,
        still waiting for that body, is told the client is gone and its answer dropped."""
        cycle = getattr(self, "cycle", None)
        if cycle is None or cycle.response_started:
            return
        cycle.disconnected = True
        cycle.message_event.set()
        error = APIError(408, f"The request body did not arrive within {self.body_timeout:g} s; "
                              "send the whole body promptly.", type="invalid_request_error",
                         code="request_timeout")
        body = json.dumps(error.body(), separators=(",", ":")).encode()
        try:
            self.transport.write(self.conn.send(h11.Response(status_code=408, headers=[
                ("content-type", "application/json"), ("content-length", str(len(body))),
                ("connection", "close")])) or b"")
            self.transport.write(self.conn.send(h11.Data(data=body)) or b"")
            self.transport.write(self.conn.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:
            pass


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11]:
    """A :class:`GuardedH11` subclass with ``limits``' timeouts and concurrency limit."""
    return type("GuardedH11", (GuardedH11,), {"header_timeout": limits.header_timeout,
                                              "body_timeout": limits.body_timeout,
                                              "max_concurrency": limits.max_concurrency})
