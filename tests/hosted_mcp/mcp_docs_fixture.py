"""A real MCP server for the hosted-MCP tests: the SDK's MCPServer (FastMCP in mcp 1.x),
served over streamable HTTP by uvicorn in a thread on a free loopback port.

Tools: ``search_docs`` (public, read-only), ``fetch_page`` (needs ``Authorization: Bearer
TOKEN``, checked in the tool through the request context), ``delete_page`` (meant to be
filtered out with ``allowed_tools``). A request that carries a *wrong* bearer token is
refused by a Starlette-level gate with HTTP 401 and an OAuth-style JSON body. Every tool
call is logged in :attr:`DocsServer.calls` (tool, arguments, whether it was authorized).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from starlette.responses import JSONResponse

REFUSAL = "the bearer token is not valid for the docs server"


class AuthGate:
    """ASGI middleware: a request with a wrong bearer token gets 401 with a JSON body."""

    def __init__(self, app: Any, token: str):
        self.app = app
        self.token = token

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            auth = headers.get("authorization")
            if auth is not None and auth != f"Bearer {self.token}":
                response = JSONResponse({"error": "invalid_token", "error_description": REFUSAL},
                                        status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class DocsServer:
    def __init__(self, token: str):
        self.token = token
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = MCPServer("docs", log_level="WARNING")

        def log(tool: str, arguments: dict[str, Any], authorized: bool) -> None:
            with self._lock:
                self.calls.append({"tool": tool, "arguments": arguments, "authorized": authorized})

        @server.tool(annotations=ToolAnnotations(read_only_hint=True))
        def search_docs(query: str) -> str:
            """Search the documentation; returns matching page names."""
            log("search_docs", {"query": query}, False)
            return f"2 pages match {query!r}: api-keys, rotation"

        @server.tool()
        def fetch_page(page: str, ctx: Context) -> str:
            """Fetch a full documentation page (needs the bearer token)."""
            authorized = (ctx.headers or {}).get("authorization") == f"Bearer {token}"
            log("fetch_page", {"page": page}, authorized)
            if not authorized:
                raise ToolError("fetch_page needs the header Authorization: Bearer <token>")
            return f"# {page}\nRotate a key in Settings > Keys, then revoke the old one."

        @server.tool(annotations=ToolAnnotations(destructive_hint=True))
        def delete_page(page: str) -> str:
            """Delete a documentation page."""
            log("delete_page", {"page": page}, False)
            return f"deleted {page}"

        self.app = AuthGate(server.streamable_http_app(), token)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def called(self, tool: str) -> list[dict[str, Any]]:
        with self._lock:
            return [c for c in self.calls if c["tool"] == tool]

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()

    def start(self) -> "DocsServer":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="on",
                                log_config=None)
        self._server = uvicorn.Server(config)

        def run() -> None:
            asyncio.run(self._server.serve(sockets=[sock]))

        self._thread = threading.Thread(target=run, daemon=True, name="mcp-docs-fixture")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the MCP fixture server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
