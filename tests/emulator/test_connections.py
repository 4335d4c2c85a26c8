"""Connection limits: idle and slowloris sockets are closed after the header timeout,
and requests beyond the concurrency limit get a 503, while normal requests work."""
from __future__ import annotations

import json
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


def test_concurrency_beyond_the_limit_gets_503_in_the_openai_envelope():
    with EmulatorServer(limits=ConnectionLimits(max_concurrency=4, header_timeout=5)) as server:
        held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(4)]
        try:
            time.sleep(0.1)
            answer = httpx2.post(server.url + "/v1/responses", json={"model": "m", "input": "x"})
            assert answer.status_code == 503
            assert answer.headers["content-type"] == "application/json"
            assert answer.headers["retry-after"] == "1" and answer.headers["retry-after-ms"] == "1000"
            error = answer.json()["error"]
            assert error["type"] == "server_error" and error["code"] == "service_unavailable"
            assert "limit of 4 concurrent" in error["message"]
            with openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0) as c:
                with pytest.raises(openai.InternalServerError) as err:  # the SDK reads it as an API error
                    c.responses.create(model="gpt-4.1", input="hi")
            assert err.value.status_code == 503 and "limit of 4 concurrent" in err.value.message
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.1)
        assert httpx2.get(server.url + "/_emulator/health").status_code == 200


def test_a_request_body_sent_too_slowly_gets_408_and_the_connection_closed():
    limits = ConnectionLimits(header_timeout=5, body_timeout=0.6)
    with EmulatorServer(limits=limits) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        try:
            body = b'{"model": "gpt-4.1", "input": "hello"}'
            sock.sendall(b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
            sock.setblocking(False)
            answer, opened, closed = b"", time.monotonic(), None
            for byte in body:  # a byte at a time, slower than the deadline allows
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break
                ready, _, _ = select.select([sock], [], [], 0.1)
                if ready:
                    try:
                        chunk = sock.recv(65536)
                    except ConnectionResetError:
                        chunk = b""
                    answer += chunk
                    if not chunk:
                        closed = time.monotonic() - opened
                        break
            sock.setblocking(True)
            sock.settimeout(3)
            while closed is None:
                chunk = sock.recv(65536)
                answer += chunk
                if not chunk:
                    closed = time.monotonic() - opened
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            error = json.loads(answer.partition(b"\r\n\r\n")[2])["error"]
            assert error["code"] == "request_timeout" and "0.6 s" in error["message"]
            assert closed < len(body) * 0.1, "closed before the body was complete"
        finally:
            sock.close()
        # the journal has the request, and the server goes on serving
        assert httpx2.post(server.url + "/v1/responses", json={"model": "m", "input": "x"}).status_code == 200


def test_a_large_body_sent_promptly_is_served():
    with EmulatorServer(limits=ConnectionLimits(header_timeout=5, body_timeout=2)) as server:
        text = "word " * 400_000  # 2 MB
        answer = httpx2.post(server.url + "/v1/responses", json={"model": "m", "input": text}, timeout=30)
        assert answer.status_code == 200, answer.text[:200]
