"""Connection limits: idle and slowloris sockets are closed after the header timeout,
and requests beyond the concurrency limit get a 503, while normal requests work."""
from __future__ import annotations

import select
import socket
import time

import httpx2
import openai
import pytest

from flowrun.emulator import ConnectionLimits, EmulatorServer


@pytest.fixture(scope="module")
def strict_server():
    with EmulatorServer(limits=ConnectionLimits(header_timeout=0.6, keep_alive=0.6)) as server:
        yield server


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096) == b""
    except (ConnectionResetError, BlockingIOError):
        return True


def test_idle_and_slowloris_sockets_are_closed(strict_server):
    idle = [socket.create_connection(("127.0.0.1", strict_server.port)) for _ in range(60)]
    slow = socket.create_connection(("127.0.0.1", strict_server.port))
    slow.sendall(b"POST /v1/responses HTTP/1.1\r\nHost: x\r\n")
    opened = time.monotonic()
    try:
        with openai.OpenAI(base_url=strict_server.base_url, api_key="test", max_retries=0) as c:
            assert c.responses.create(model="gpt-4.1", input="hi").output_text == "[emulator] turn 1: hi"
        open_ = set(idle)
        slow_closed = None
        while (open_ or slow_closed is None) and time.monotonic() - opened < 4:
            if slow_closed is None:
                try:
                    slow.sendall(b"X-Slow: 1\r\n")  # a header line at a time, never finishing
                except OSError:
                    slow_closed = time.monotonic() - opened
            ready, _, _ = select.select(list(open_) + [slow], [], [], 0.1)
            for sock in ready:
                if sock is slow:
                    if slow_closed is None and _closed_by_peer(slow):
                        slow_closed = time.monotonic() - opened
                elif _closed_by_peer(sock):
                    open_.discard(sock)
        assert not open_, f"{len(open_)} idle sockets still open after 4 s"
        assert slow_closed is not None and 0.5 <= slow_closed < 3, slow_closed
    finally:
        for sock in idle + [slow]:
            sock.close()
    # a normal request on a fresh connection still works afterwards
    assert httpx2.post(strict_server.url + "/v1/responses", json={"model": "m", "input": "x"}).status_code == 200


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_keep_alive_connection_is_reused_then_closed_when_idle(strict_server):
    sock = socket.create_connection(("127.0.0.1", strict_server.port))
    try:
        request = b"GET /_emulator/health HTTP/1.1\r\nHost: x\r\n\r\n"
        for _ in range(2):  # two requests on one connection, each within the deadline
            sock.sendall(request)
            assert _read_response(sock).startswith(b"HTTP/1.1 200")
            time.sleep(0.3)
        sock.settimeout(3)
        started = time.monotonic()
        assert sock.recv(4096) == b""  # then the idle connection is closed
        assert time.monotonic() - started < 2
    finally:
        sock.close()


def test_concurrency_beyond_the_limit_gets_503():
    with EmulatorServer(limits=ConnectionLimits(max_concurrency=4, header_timeout=5)) as server:
        held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(4)]
        try:
            time.sleep(0.1)
            assert httpx2.get(server.url + "/_emulator/health").status_code == 503
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.1)
        assert httpx2.get(server.url + "/_emulator/health").status_code == 200
