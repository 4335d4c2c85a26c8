"""Test pages for the computer-use tests, served on loopback by ``http.server`` in a thread.

Elements sit at fixed positions (``position: absolute``) so scripted actions can aim at
them. The server records every request (method, path, Host header) and every form
submission, and counts the TCP connections it accepted (a preconnect sends no request), so
a test can see what reached it - and what never did.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

STYLE = "<style>body{margin:0;font:14px sans-serif} .at{position:absolute;box-sizing:border-box;margin:0}</style>"


def box(left: int, top: int, width: int, height: int) -> str:
    return f'class="at" style="left:{left}px;top:{top}px;width:{width}px;height:{height}px"'


def page(title: str, body: str, script: str = "") -> bytes:
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{title}</title>{STYLE}</head>"
            f"<body>{body}<script>{script}</script></body></html>").encode()


@dataclass
class Site:
    """One server: what it received."""

    server: ThreadingHTTPServer
    other_origin: str = ""  # the forbidden server's origin, for links on the pages
    requests: list[dict[str, Any]] = field(default_factory=list)
    posts: list[dict[str, Any]] = field(default_factory=list)
    accepted: int = 0  # TCP connections
    extra_pages: dict[str, bytes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def origin(self) -> str:
        return f"http://{self.server.server_address[0]}:{self.port}"

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.posts.clear()
            self.accepted = 0

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def pages(site: Site) -> dict[str, bytes]:
    other = site.other_origin
    return {
        "/form": page("Sign up", f"""
            <form method=post action=/submit>
              <input name=name placeholder=Name {box(10, 10, 200, 30)}>
              <button type=submit {box(10, 60, 100, 30)}>Sign up</button>
            </form>"""),
        "/keys": page("Edit", f"""
            <form method=post action=/submit>
              <input name=q value="old value" {box(10, 10, 200, 30)}>
            </form>"""),
        "/tabs": page("Tabs", f"""
            <a href=/second target=_blank {box(10, 10, 150, 30)}>open in a new tab</a>"""),
        "/second": page("Second", "<h1>Second tab</h1>"),
        "/plain": page("Plain", f"""<a href=/second {box(10, 10, 150, 30)}>a plain link</a>"""),
        "/long": page("Long", """
            <div style="height:3000px;background:linear-gradient(#fff,#008)">top</div>""",
            "addEventListener('scroll', () => history.replaceState(null, '', '#y=' + scrollY));"),
        "/slider": page("Slider", f"""
            <form method=post action=/submit>
              <input type=range name=level min=0 max=100 value=0 {box(20, 20, 200, 20)}>
              <button type=submit {box(20, 80, 100, 30)}>Save</button>
            </form>""",
            "document.querySelector('input').addEventListener('input', e => "
            "history.replaceState(null, '', '#level=' + e.target.value));"),
        "/links": page("Links", f"""
            <a id=out href="{other}/secret" {box(10, 10, 200, 30)}>elsewhere</a>
            <a id=alias href="http://localhost:{site.port}/secret" {box(10, 60, 200, 30)}>same server, other name</a>
            <a id=hop href="/hop" {box(10, 110, 200, 30)}>redirects elsewhere</a>
            <img src="{other}/pixel.png" alt="" {box(300, 10, 10, 10)}>"""),
        "/corner": page("Corner", f"""
            <form method=post action=/submit>
              <input type=hidden name=corner value=clicked>
              <button type=submit {box(350, 260, 50, 40)}>X</button>
            </form>"""),
        "/download": page("Download", f"""<a href=/report.txt {box(10, 10, 200, 30)}>report</a>"""),
        "/popup": page("Popup", f"""
            <button onclick="window.open('/second')" {box(10, 10, 150, 30)}>open</button>"""),
        "/sneaky": page("Sneaky", f"""<img src="/hop" alt="" {box(10, 10, 20, 20)}>""",
            f"const ws = new WebSocket('{other.replace('http', 'ws')}/socket');"
            "ws.onclose = e => history.replaceState(null, '', '#ws=' + e.code);"),
        # redirects whose Location Python and the browser could read differently, and a
        # WebRTC connection (UDP, which request routing never sees)
        "/escape": page("Escape", f"""<img src="/hop-backslash" alt="" {box(10, 10, 20, 20)}>""",
            "fetch('/hop-userinfo').catch(() => null);"
            "history.replaceState(null, '', '#rtc=' + typeof RTCPeerConnection);"),
        "/thanks": page("Thanks", "<h1>Thanks</h1>"),
        "/secret": page("Secret", "<h1>Secret</h1>"),
    }


class _Handler(BaseHTTPRequestHandler):
    site: Site

    def log_message(self, *args: Any) -> None:
        pass

    def _record(self, body: bytes = b"") -> None:
        with self.site.lock:
            self.site.requests.append({"method": self.command, "path": self.path,
                                       "host": self.headers.get("Host", ""), "body": body})

    def _send(self, status: int, body: bytes = b"", ctype: str = "text/html; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        self._record()
        path = urlsplit(self.path).path
        if path == "/hop":
            return self._send(302, headers={"Location": f"{self.site.other_origin}/landing"})
        host = self.server.server_address[0]
        if path == "/hop-backslash":  # the browser reads "\\" as "/": the host is the other site
            return self._send(302, headers={"Location": f"{self.site.other_origin}\\@{host}/steal"})
        if path == "/hop-userinfo":
            return self._send(302, headers={"Location": f"http://{host}@{self.site.other_origin[7:]}/steal"})
        if path == "/report.txt":
            return self._send(200, b"quarterly numbers\n", "text/plain",
                              {"Content-Disposition": "attachment; filename=report.txt"})
        if path == "/favicon.ico":
            return self._send(404)
        body = self.site.extra_pages.get(path) or pages(self.site).get(path)
        if body is None:
            return self._send(404, b"not found", "text/plain")
        self._send(200, body)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length)
        self._record(data)
        fields = {k: v if len(v) > 1 else v[0] for k, v in parse_qs(data.decode()).items()}
        with self.site.lock:
            self.site.posts.append({"path": self.path, "fields": fields})
        self._send(303, headers={"Location": "/thanks"})


class _CountingServer(ThreadingHTTPServer):
    site: Site

    def get_request(self) -> Any:
        conn = super().get_request()
        with self.site.lock:
            self.site.accepted += 1
        return conn


def serve(host: str, other_origin: str = "") -> Site:
    handler = type("Handler", (_Handler,), {})
    server = _CountingServer((host, 0), handler)
    server.daemon_threads = True
    site = Site(server, other_origin)
    handler.site = server.site = site
    threading.Thread(target=server.serve_forever, name=f"site-{host}", daemon=True).start()
    return site
