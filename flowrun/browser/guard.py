"""The route guard: every request of a browser context passes here, and only allowed hosts
are reached (redirects checked hop by hop, WebSockets too)."""

from __future__ import annotations

import contextlib
import json
import re
import time
from typing import Any, Callable
from urllib.parse import urljoin

from .domains import AllowedHost, url_allowed

MAX_REDIRECTS = 10
_REDIRECTS = (301, 302, 303, 307, 308)
# counts window.open() calls, so the session knows a script opened a tab and waits for it


class Guard:
    """Routes every request of a context; only allowed hosts are reached (module docstring)."""

    def __init__(self, allowed: list[AllowedHost], on_block: Callable[[dict[str, Any], Any], None]):
        self.allowed = allowed
        self.on_block = on_block

    def allows(self, url: str) -> bool:
        return url_allowed(url, self.allowed)

    async def install(self, context: Any) -> None:
        await context.route("**/*", self.handle)
        route_ws = getattr(context, "route_web_socket", None)
        if route_ws is not None:
            await route_ws(re.compile(".*"), self.handle_websocket)

    @staticmethod
    def _main_frame(request: Any) -> bool:
        try:
            frame = request.frame
            return frame.parent_frame is None
        except Exception:
            return False

    def _block(self, request: Any, url: str, reason: str, navigation: bool, **extra: Any) -> None:
        self.on_block({
            "url": url, "reason": reason, "navigation": navigation,
            "main_frame": navigation and self._main_frame(request),
            "resource_type": request.resource_type, "time": time.time(), **extra,
        }, request)

    async def _refuse(self, route: Any, navigation: bool) -> None:
        if navigation:
            # a navigation answered with 204 is dropped: the page stays where it was
            await route.fulfill(status=204, body=b"")
        else:
            await route.abort("blockedbyclient")

    async def handle(self, route: Any, request: Any) -> None:
        try:
            await self._handle(route, request)
        except Exception:  # page closed meanwhile, route already handled, ...
            with contextlib.suppress(Exception):
                await route.abort("failed")

    async def _handle(self, route: Any, request: Any) -> None:
        url = request.url
        navigation = request.is_navigation_request()
        if not self.allows(url):
            self._block(request, url, "host not allowed", navigation)
            await self._refuse(route, navigation)
            return
        if request.resource_type == "eventsource":
            await route.continue_()
            return
        try:
            response = await route.fetch(max_redirects=0)
        except Exception:
            await route.abort("failed")
            return
        hops = 0
        current = url
        method, post = request.method, request.post_data_buffer
        while response.status in _REDIRECTS and response.headers.get("location"):
            target = urljoin(current, response.headers["location"])
            if not self.allows(target):
                self._block(request, target, "redirect to a host that is not allowed", navigation,
                            redirected_from=current)
                await self._refuse(route, navigation)
                return
            if navigation:
                # let the browser take the next hop itself, so that it is routed here again
                body = ("<!doctype html><title>Redirecting</title><script>location.replace("
                        + json.dumps(target).replace("</", "<\\/") + ")</script>")
                await route.fulfill(status=200, content_type="text/html", body=body)
                return
            hops += 1
            if hops > MAX_REDIRECTS:
                await route.abort("failed")
                return
            if response.status in (301, 302, 303) and method not in ("GET", "HEAD"):
                method, post = "GET", None
            try:
                response = await route.fetch(url=target, method=method, post_data=post, max_redirects=0)
            except Exception:
                await route.abort("failed")
                return
            current = target
        await route.fulfill(response=response)

    async def handle_websocket(self, ws: Any) -> None:
        if self.allows(ws.url):
            ws.connect_to_server()
            return
        self.on_block({"url": ws.url, "reason": "host not allowed", "navigation": False,
                       "main_frame": False, "resource_type": "websocket", "time": time.time()}, None)
        with contextlib.suppress(Exception):
            await ws.close(code=1008, reason="blocked by flowrun: host not allowed")
