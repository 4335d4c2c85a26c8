"""The connection gate: a loopback HTTP proxy that every browser context is made to use, so
that no socket reaches a host outside ``allowed_domains``, whatever opens it.

Request routing (:mod:`.guard`) sees requests, not connections: Chromium preconnects to a
navigation's host before the routed request is answered (a refused iframe or form post
still opens a TCP connection), and speculative loading (``<script type=speculationrules>``
prefetches) is fetched by the browser process without being routed at all. Behind this
proxy Chromium itself only ever connects to the proxy, which opens a connection upstream
only for an allowed host: ``CONNECT host:port`` (HTTPS, WebSockets) becomes a tunnel, and
an absolute-form request (``GET http://host/...``) is sent on with ``Connection: close``.
A refused one is answered ``403`` and reported; a bare preconnect never sends a request,
so it never leads anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Callable
from urllib.parse import urlsplit

from .domains import AllowedHost, url_allowed

HEAD_LIMIT = 64 * 1024
HEAD_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 15.0
_HOP_HEADERS = {b"connection", b"proxy-connection", b"keep-alive", b"proxy-authorization"}


class ConnectionGate:
    """The proxy of one browser context (module docstring). ``on_refuse(entry)`` hears of
    each refused connection."""

    def __init__(self, allowed: list[AllowedHost], on_refuse: Callable[[dict[str, Any]], None]):
        self.allowed = allowed
        self.on_refuse = on_refuse
        self.server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def playwright_proxy(self) -> dict[str, str]:
        """The ``proxy`` option of ``browser.new_context``: loopback hosts too go through
        the gate (Chromium bypasses a proxy for them unless told ``<-loopback>``)."""
        return {"server": self.url, "bypass": "<-loopback>"}

    async def start(self) -> "ConnectionGate":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=HEAD_LIMIT)
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    # -- one client connection -----------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._exchange(reader, writer)
        except asyncio.CancelledError:
            pass  # the gate is closing; asyncio's stream callback must not see a cancelled task
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                    ConnectionError):
                return  # a preconnect that was never used, or garbage: nothing goes anywhere
            line, _, rest = head.partition(b"\r\n")
            try:
                method, target, version = line.decode("latin-1").split(" ")
            except ValueError:
                return await self._answer(writer, 400, "Bad Request")
            url = f"https://{target}/" if method == "CONNECT" else target
            if not url_allowed(url, self.allowed) or (method != "CONNECT" and not url.startswith("http://")):
                self.on_refuse({"url": url if method != "CONNECT" else f"{target} (CONNECT)",
                                "method": method, "time": time.time()})
                return await self._answer(writer, 403, "Forbidden")
            host, port = _host_port(url)
            try:
                up_reader, upstream = await asyncio.wait_for(
                    asyncio.open_connection(host, port), CONNECT_TIMEOUT_S)
            except (OSError, asyncio.TimeoutError):
                return await self._answer(writer, 502, "Bad Gateway")
            self._writers.add(upstream)
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            else:
                upstream.write(_origin_form(method, url, version, rest))
                up_reader = await _closing_response(up_reader, writer)
                if up_reader is None:
                    return
            await _pipe_both(reader, writer, up_reader, upstream)
        finally:
            if upstream is not None:
                self._writers.discard(upstream)
                with contextlib.suppress(Exception):
                    upstream.close()

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, status: int, reason: str) -> None:
        body = f"blocked by flowrun: {reason.lower()}\n".encode()
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: "
                     f"{len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        with contextlib.suppress(Exception):
            await writer.drain()


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _origin_form(method: str, url: str, version: str, rest: bytes) -> bytes:
    """The request head for the origin server: path only, hop-by-hop headers dropped,
    ``Connection: close`` (one request per connection, so each is checked)."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = [h for h in rest.split(b"\r\n") if h and h.split(b":", 1)[0].strip().lower() not in _HOP_HEADERS]
    return (f"{method} {path} {version}\r\n".encode("latin-1") + b"\r\n".join(headers)
            + b"\r\nConnection: close\r\n\r\n")


async def _closing_response(up_reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> asyncio.StreamReader | None:
    """Relay the response head with ``Connection: close``, so the browser does not send
    its next request (perhaps for another host) down this connection."""
    try:
        head = await asyncio.wait_for(up_reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
            ConnectionError):
        return None
    lines = [h for h in head.split(b"\r\n") if h and h.split(b":", 1)[0].strip().lower() not in _HOP_HEADERS]
    writer.write(b"\r\n".join(lines) + b"\r\nConnection: close\r\n\r\n")
    return up_reader


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        if writer.can_write_eof():
            writer.write_eof()


async def _pipe_both(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter,
                     up_r: asyncio.StreamReader, up_w: asyncio.StreamWriter) -> None:
    """Relay both ways until the upstream side is done (its close ends the exchange)."""
    to_up = asyncio.ensure_future(_pipe(client_r, up_w))
    try:
        await _pipe(up_r, client_w)
    finally:
        to_up.cancel()
        with contextlib.suppress(BaseException):
            await to_up
