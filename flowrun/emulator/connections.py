"""Connection limits for the emulator's HTTP server (uvicorn over h11).

uvicorn bounds the idle time between requests on a keep-alive connection
(``timeout_keep_alive``) but not the time a client takes to send a request head: a
socket that connects and sends nothing, or sends a header a byte at a time (slowloris),
stays open for ever. :class:`GuardedH11` adds that deadline: from the moment a connection
opens, or the first byte of a later request arrives, the client has
``header_timeout`` seconds to complete the request line and headers, or the server
closes the connection. It also sets TCP_NODELAY.
"""
from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


@dataclass(frozen=True)
class ConnectionLimits:
    """What one client connection may take."""

    header_timeout: float = 10.0      # seconds to send a complete request head
    keep_alive: float = 5.0           # idle seconds between requests on one connection
    max_header_bytes: int = 16 * 1024  # request line plus headers (larger: 400)
    max_concurrency: int = 512        # open connections or running requests; beyond: 503

    def uvicorn_settings(self) -> dict[str, Any]:
        """The matching ``uvicorn.Config`` keyword arguments (with the protocol class)."""
        return {"http": guarded_protocol(self), "timeout_keep_alive": self.keep_alive,
                "h11_max_incomplete_event_size": self.max_header_bytes,
                "limit_concurrency": self.max_concurrency}


class GuardedH11(H11Protocol):
    """h11 with a request-head deadline (see the module docstring) and TCP_NODELAY:
    uvicorn writes headers and body separately, and Nagle plus delayed ACKs would
    otherwise add ~40 ms to every response."""

    header_timeout: float = ConnectionLimits.header_timeout
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._waiting_for_head():
            if self._head_timer is None:  # the deadline runs from the request's first byte
                self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _waiting_for_head(self) -> bool:
        return self.conn.their_state is h11.IDLE and not self.transport.is_closing()

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timeout)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self._waiting_for_head():
            try:
                self.conn.send(h11.ConnectionClosed())
            except h11.LocalProtocolError:
                pass
            self.transport.close()


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11]:
    """A :class:`GuardedH11` subclass with ``limits.header_timeout``."""
    return type("GuardedH11", (GuardedH11,), {"header_timeout": limits.header_timeout})
