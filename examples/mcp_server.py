"""A small documentation server speaking MCP over streamable HTTP, for trying
``examples/flows/mcp-docs.yaml`` offline with the built-in emulator.

    pip install -e '.[mcp]'
    export DOCS_MCP_TOKEN=dev-token
    python examples/mcp_server.py            # http://127.0.0.1:8931/mcp  (--port N to change)

Tools:
- ``search_docs(query)``  public and read-only: which pages mention the words;
- ``fetch_page(page)``    the full page; needs ``Authorization: Bearer $DOCS_MCP_TOKEN``;
- ``delete_page(page)``   destructive; the example flow hides it with ``allowed_tools``.

A request with a wrong bearer token is refused with HTTP 401 (and a JSON body saying
why), which flowrun reports as the step's error.
"""

import argparse
import asyncio
import os
import socket
import sys
import threading
import time
from typing import Any

PAGES = {
    "api-keys": "# API keys\nCreate a key in Settings > Keys. To rotate a key, create a new one, "
                "switch your clients to it, then revoke the old key in Settings > Keys.",
    "billing": "# Billing\nInvoices are sent on the first day of each month.",
    "sso": "# Single sign-on\nConnect your identity provider in Settings > Security.",
}


def build_app(token: str) -> Any:
    """The ASGI app: the MCP server behind a bearer-token gate."""
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations
    from starlette.responses import JSONResponse

    server = MCPServer("docs", instructions="Company documentation.", log_level="WARNING")

    def search_docs(query: str) -> str:
        """Search the documentation; returns the names of the matching pages."""
        words = [w for w in query.lower().split() if len(w) > 2]
        hits = [name for name, text in PAGES.items() if any(w in text.lower() for w in words)]
        return ", ".join(hits) if hits else "no page matches"

    def fetch_page(page: str, ctx: Context) -> str:
        """Fetch a documentation page by name (needs the bearer token)."""
        if (ctx.headers or {}).get("authorization") != f"Bearer {token}":
            raise ToolError("fetch_page needs the header Authorization: Bearer <token>")
        if page not in PAGES:
            raise ToolError(f"no page named {page!r}; try search_docs first")
        return PAGES[page]

    def delete_page(page: str) -> str:
        """Delete a documentation page."""
        PAGES.pop(page, None)
        return f"deleted {page}"

    server.add_tool(search_docs, annotations=ToolAnnotations(read_only_hint=True))
    server.add_tool(fetch_page)
    server.add_tool(delete_page, annotations=ToolAnnotations(destructive_hint=True))
    mcp_app = server.streamable_http_app()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            given = headers.get("authorization")
            if given is not None and given != f"Bearer {token}":
                refusal = JSONResponse(
                    {"error": "invalid_token", "error_description": "the bearer token is not valid"},
                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await refusal(scope, receive, send)
                return
        await mcp_app(scope, receive, send)

    return app


class DocsExample:
    """The server on a loopback port, in a background thread (``port=0``: any free port)."""

    def __init__(self, token: str, port: int = 8931, host: str = "127.0.0.1"):
        self.app = build_app(token)
        self.host, self.port = host, port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/mcp"

    def start(self) -> "DocsExample":
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on",
                                                     log_config=None))
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve(sockets=[sock])),
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the docs server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8931)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    token = os.environ.get("DOCS_MCP_TOKEN")
    if not token:
        sys.exit("set DOCS_MCP_TOKEN to the bearer token the server should accept")
    import uvicorn

    print(f"docs MCP server on http://{args.host}:{args.port}/mcp (Ctrl+C to stop)", file=sys.stderr)
    uvicorn.run(build_app(token), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
