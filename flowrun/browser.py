"""The browser a computer-use step drives: Playwright with Chromium.

- **Launch.** :func:`launch_browser` starts Chromium headless (or not) with
  :data:`LAUNCH_ARGS` (no sandbox, no GPU, no background networking: this runs as root in
  containers with no outside network). The executable is ``$FLOWRUN_CHROMIUM``, else
  ``/usr/bin/chromium`` when it exists (Debian's ``chromium`` package), else Playwright's
  own download (``playwright install chromium``). Playwright is imported lazily; without
  it the error names the ``browser`` extra.
- **One fresh context per step.** :class:`BrowserSession` opens ``browser.new_context()``
  (never a persistent profile) with the display as viewport, downloads accepted and
  service workers blocked, and closes it at the end. The browser itself is the step's
  own, unless code embedding flowrun (or a test) shares one with :func:`use_browser`.
- **Actions** (:meth:`BrowserSession.perform`): the computer-use actions click (left /
  right; ``wheel`` is the middle button; ``back`` / ``forward`` go through history),
  double_click, drag along its path, move, scroll (``scroll_x`` / ``scroll_y`` at x, y),
  keypress (:data:`KEY_MAPPING`; several keys are a combination such as CTRL+A), type,
  wait (``ms``, default 1 s, at most 10 s) and screenshot. Coordinates are clamped to the
  display. After each action the session waits for what the action started: navigations
  to load, a new tab to open (a click on a link with a ``target`` waits up to 3 s, any
  other click briefly), and then switches to the new tab.
- **The guard.** Every request of the context is routed through :class:`Guard`: a request
  to a host outside ``allowed_domains`` never leaves the browser. A blocked navigation is
  answered ``204 No Content`` (so the page stays where it was), a blocked subresource is
  aborted. Allowed requests are fetched by the guard itself without following
  redirects, so a redirect to another host is caught too (Playwright would follow it
  unseen); an allowed redirect of a navigation becomes a small page that moves on with
  ``location.replace``, so each hop is checked. Streaming requests (``EventSource``) are
  passed through unfetched, and WebSockets to other hosts are refused. URLs that Python
  and the browser could read differently (backslashes, userinfo, escapes in the host)
  are refused, and WebRTC is switched off, since its UDP traffic is not routed.
- **Events for the model** (:meth:`BrowserSession.take_events`): blocked requests, tab
  switches, downloads (saved where the session's ``save_download`` says: the run
  directory), dialogs (dismissed; their text is recorded, not shown to the model) and
  actions that failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urljoin, urlsplit

from .errors import ExecutionError

LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEBIAN_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ENV = "FLOWRUN_CHROMIUM"
INSTALL_HINT = "pip install 'flowrun[browser]'"

# Key names the model uses -> Playwright key names (the Azure guide's mapping, extended).
KEY_MAPPING = {
    "/": "Slash", "\\": "Backslash", "alt": "Alt", "arrowdown": "ArrowDown",
    "arrowleft": "ArrowLeft", "arrowright": "ArrowRight", "arrowup": "ArrowUp",
    "backspace": "Backspace", "ctrl": "Control", "delete": "Delete",
    "enter": "Enter", "esc": "Escape", "shift": "Shift", "space": " ",
    "tab": "Tab", "win": "Meta", "cmd": "Meta", "super": "Meta", "option": "Alt",
    # beyond the guide
    "control": "Control", "meta": "Meta", "command": "Meta", "return": "Enter",
    "escape": "Escape", "del": "Delete", "up": "ArrowUp", "down": "ArrowDown",
    "left": "ArrowLeft", "right": "ArrowRight", "pageup": "PageUp", "pagedown": "PageDown",
    "home": "Home", "end": "End", "insert": "Insert", "capslock": "CapsLock",
    **{f"f{n}": f"F{n}" for n in range(1, 13)},
}
MODIFIER_KEYS = {"Control", "Shift", "Alt", "Meta"}

ACTION_TIMEOUT_MS = 10_000  # one Playwright operation (navigation, screenshot)
SETTLE_BUDGET_S = 10.0  # waiting for what an action started
POPUP_WAIT_S = 3.0  # after a click on a link that opens a new tab
POPUP_GRACE_S = 0.15  # after any other click or key press
MAX_WAIT_MS = 10_000
MAX_REDIRECTS = 10
_REDIRECTS = (301, 302, 303, 307, 308)
# counts window.open() calls, so the session knows a script opened a tab and waits for it
_COUNT_OPENS = """(() => {
  const open = window.open; let count = 0;
  Object.defineProperty(window, '__flowrunOpens', {get: () => count});
  window.open = function (...args) { count += 1; return open.apply(this, args); };
})();"""
_NO_WEBRTC = """(() => {
  for (const name of ["RTCPeerConnection", "webkitRTCPeerConnection", "RTCDataChannel",
                      "RTCRtpSender", "RTCRtpReceiver", "RTCIceCandidate"]) {
    try { Object.defineProperty(window, name, {value: undefined, writable: false,
                                               configurable: false}); } catch (e) {}
  }
})();"""
_NOTED_HEADERS = {"content-length", "content-encoding", "transfer-encoding", "location"}


class BrowserError(ExecutionError):
    """The browser could not be started or stopped working."""


# ---------------------------------------------------------------- pure helpers


def clamp(x: Any, y: Any, width: int, height: int) -> tuple[int, int]:
    """Coordinates inside a ``width`` x ``height`` display (pixels 0..width-1)."""

    def one(v: Any, size: int) -> int:
        try:
            n = int(round(float(v)))
        except (TypeError, ValueError):
            n = 0
        return max(0, min(n, size - 1))

    return one(x, width), one(y, height)


def map_key(key: str) -> str:
    """A model key name as Playwright names it (``CTRL`` -> ``Control``)."""
    return KEY_MAPPING.get(key.lower(), key)


def key_combo(keys: list[str]) -> list[str]:
    """The Playwright keys of a keypress, in order. ``"ctrl+a"`` inside one entry is split,
    and a letter pressed with a modifier is lower case (CTRL+A selects all; it is not
    CTRL+SHIFT+A)."""
    out: list[str] = []
    for key in keys:
        key = str(key)
        parts = key.split("+") if len(key) > 1 and "+" in key.strip("+") else [key]
        out.extend(map_key(p.strip() or p) for p in parts if p)
    if len(out) > 1 and any(k in MODIFIER_KEYS for k in out):
        out = [k.lower() if len(k) == 1 else k for k in out]
    return out


@dataclass(frozen=True)
class AllowedHost:
    """One ``allowed_domains`` entry: a host (its subdomains too), optionally one port."""

    host: str
    port: int | None = None

    def allows(self, host: str, port: int | None) -> bool:
        if self.port is not None and port != self.port:
            return False
        return host == self.host or host.endswith("." + self.host)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}" if self.port is not None else self.host


def parse_allowed(entries: list[str], start_url: str | None) -> list[AllowedHost]:
    """``allowed_domains`` as hosts; by default the start URL's host. An entry may be a
    host (``example.com``: the host and its subdomains, any port), ``host:port``, or a
    URL (its host and port)."""
    out: list[AllowedHost] = []
    for raw in entries:
        text = str(raw).strip().lower()
        if not text:
            continue
        if "://" in text:
            parts = urlsplit(text)
            host, port = parts.hostname or "", parts.port
        else:
            parts = urlsplit("//" + text)
            try:
                host, port = parts.hostname or "", parts.port
            except ValueError:
                raise ExecutionError(f"allowed_domains: {raw!r} is not a host") from None
        host = host.lstrip("*.").rstrip(".")
        if not host:
            raise ExecutionError(f"allowed_domains: {raw!r} is not a host")
        out.append(AllowedHost(host, port))
    if not entries and start_url:
        host = urlsplit(start_url).hostname
        if host:
            out.append(AllowedHost(host.lower()))
    return out


def _port(parts: Any) -> int | None:
    try:
        port = parts.port
    except ValueError:
        return -1
    if port is None:
        return {"http": 80, "ws": 80, "https": 443, "wss": 443}.get(parts.scheme)
    return port


_AMBIGUOUS = re.compile(r"[\\\x00-\x20\x7f]")


def url_allowed(url: str, allowed: list[AllowedHost]) -> bool:
    """True for an http(s) / ws(s) URL whose host is allowed.

    Python and the browser must agree on the host, so anything they may read differently
    is refused: backslashes and control characters or spaces anywhere (browsers treat
    ``\\`` as ``/`` and drop tabs and newlines), and userinfo or percent-escapes in the
    authority (``http://allowed\\@other/``, ``http://a%2eb/``)."""
    if _AMBIGUOUS.search(url):
        return False
    parts = urlsplit(url)
    if "@" in parts.netloc or "%" in parts.netloc:
        return False
    if parts.scheme not in ("http", "https", "ws", "wss"):
        return False
    host = (parts.hostname or "").lower().rstrip(".")
    port = _port(parts)
    return bool(host) and port != -1 and any(a.allows(host, port) for a in allowed)


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what the model is told about a blocked one."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname:
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        try:
            port = f":{parts.port}" if parts.port is not None else ""
        except ValueError:
            port = ""
        return f"{parts.scheme}://{host}{port}"
    return (parts.scheme or "url") + ":"


def describe(action: dict[str, Any]) -> str:
    """A short human description of a computer-use action."""
    kind = action.get("type", "?")
    if kind in ("click", "double_click", "move"):
        button = action.get("button")
        extra = f" {button}" if kind == "click" and button not in (None, "left") else ""
        return f"{kind}{extra} ({action.get('x')}, {action.get('y')})"
    if kind == "scroll":
        return (f"scroll ({action.get('scroll_x', 0)}, {action.get('scroll_y', 0)}) at "
                f"({action.get('x')}, {action.get('y')})")
    if kind == "drag":
        path = action.get("path") or []
        ends = [f"({p.get('x')}, {p.get('y')})" for p in (path[:1] + path[-1:]) if isinstance(p, dict)]
        return "drag " + " -> ".join(ends)
    if kind == "keypress":
        return "keypress " + "+".join(str(k) for k in action.get("keys") or [])
    if kind == "type":
        text = str(action.get("text", ""))
        return f"type {text[:40]!r}" + ("..." if len(text) > 40 else "")
    if kind == "wait":
        return f"wait {action.get('ms', 1000)} ms"
    return str(kind)


# ---------------------------------------------------------------- launching


def chromium_executable(environ: Any = None) -> str | None:
    """The Chromium to launch: ``$FLOWRUN_CHROMIUM``, ``/usr/bin/chromium``, or None
    (Playwright's own)."""
    env = os.environ if environ is None else environ
    configured = env.get(CHROMIUM_ENV)
    if configured:
        if not Path(configured).is_file():
            raise BrowserError(f"{CHROMIUM_ENV}={configured} is not a file; point it at a Chromium "
                               "executable or unset it")
        return configured
    if Path(DEBIAN_CHROMIUM).is_file():
        return DEBIAN_CHROMIUM
    return None


def _playwright() -> Any:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        raise BrowserError(f"computer use needs Playwright, which is not installed: {INSTALL_HINT} "
                           "(and a Chromium: Debian's chromium package, or `playwright install "
                           "chromium`)") from None
    return async_playwright


@dataclass
class LaunchedBrowser:
    """A running Chromium and the Playwright driver behind it."""

    playwright: Any
    browser: Any

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.browser.close()
        with contextlib.suppress(Exception):
            await self.playwright.stop()


async def launch_browser(headless: bool = True, environ: Any = None) -> LaunchedBrowser:
    """Start Playwright and Chromium (see the module docstring)."""
    async_playwright = _playwright()
    executable = chromium_executable(environ)
    driver = await async_playwright().start()
    try:
        browser = await driver.chromium.launch(
            headless=headless, executable_path=executable, args=list(LAUNCH_ARGS))
    except Exception as exc:
        with contextlib.suppress(Exception):
            await driver.stop()
        where = executable or "Playwright's Chromium"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BrowserError(
            f"could not start Chromium ({where}): {first}. Install Debian's chromium "
            f"(apt-get install chromium), or run `playwright install chromium`, or set "
            f"{CHROMIUM_ENV} to a Chromium executable") from None
    return LaunchedBrowser(driver, browser)


_SHARED: contextvars.ContextVar[Any] = contextvars.ContextVar("flowrun_shared_browser", default=None)


@contextlib.contextmanager
def use_browser(browser: Any) -> Iterator[None]:
    """Let computer-use steps started inside this block (same task or its children) use
    ``browser`` (a Playwright ``Browser``) instead of launching their own. Each step still
    opens, and closes, its own fresh context in it."""
    token = _SHARED.set(browser)
    try:
        yield
    finally:
        _SHARED.reset(token)


def shared_browser() -> Any:
    browser = _SHARED.get()
    if browser is not None and browser.is_connected():
        return browser
    return None


# ---------------------------------------------------------------- the guard


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


# ---------------------------------------------------------------- the session


@dataclass
class _PageWatch:
    """Navigations in flight on one page."""

    pending: set[Any] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class BrowserSession:
    """One step's browser: a fresh context, its pages, the guard, and the actions.

    ``save_download(suggested_name) -> Path`` says where a download goes (the run dir).
    """

    def __init__(self, *, width: int, height: int, headless: bool = True,
                 allowed: list[AllowedHost], save_download: Callable[[str], Path],
                 environ: Any = None):
        self.width, self.height = width, height
        self.headless = headless
        self.allowed = allowed
        self.save_download = save_download
        self.environ = environ
        self.events: list[dict[str, Any]] = []
        self.blocked: list[dict[str, Any]] = []
        self.downloads: list[dict[str, Any]] = []
        self._own: LaunchedBrowser | None = None
        self.context: Any = None
        self.page: Any = None
        self._new_pages: list[Any] = []
        self._page_event = asyncio.Event()
        self._watches: dict[Any, _PageWatch] = {}
        self._download_tasks: set[asyncio.Task] = set()
        self._last_png: bytes | None = None

    # -- lifecycle -----------------------------------------------------------------------
    async def __aenter__(self) -> "BrowserSession":
        browser = shared_browser()
        if browser is None:
            self._own = await launch_browser(self.headless, self.environ)
            browser = self._own.browser
        try:
            self.context = await browser.new_context(
                viewport={"width": self.width, "height": self.height},
                screen={"width": self.width, "height": self.height},
                device_scale_factor=1,
                accept_downloads=True,
                service_workers="block",
            )
            await Guard(self.allowed, self._on_block).install(self.context)
            await self.context.add_init_script(_COUNT_OPENS)
            # WebRTC (STUN/TURN over UDP) bypasses request routing: the page gets none
            await self.context.add_init_script(_NO_WEBRTC)
            self.context.on("page", self._on_page)
            self.page = await self.context.new_page()
        except BaseException:
            await self.aclose()
            raise
        self._new_pages.clear()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._download_tasks:
            await asyncio.wait(list(self._download_tasks), timeout=30)
        if self.context is not None:
            with contextlib.suppress(Exception):
                await self.context.close()
            self.context = None
        if self._own is not None:
            await self._own.close()
            self._own = None

    # -- events --------------------------------------------------------------------------
    def _on_block(self, entry: dict[str, Any], request: Any) -> None:
        self.blocked.append(entry)
        self.events.append({"kind": "blocked", **entry})
        self._page_event.set()
        for watch in self._watches.values():
            watch.pending.discard(request)  # a refused navigation never commits
            watch.changed.set()

    def _on_page(self, page: Any) -> None:
        self._watch(page)
        self._new_pages.append(page)
        self._page_event.set()

    def _watch(self, page: Any) -> _PageWatch:
        watch = self._watches.get(page)
        if watch is not None:
            return watch
        watch = self._watches[page] = _PageWatch()

        def on_request(request: Any) -> None:
            if request.is_navigation_request() and Guard._main_frame(request):
                watch.pending.add(request)
                watch.changed.set()

        def on_done(request: Any) -> None:
            if request in watch.pending:
                watch.pending.discard(request)
                watch.changed.set()

        def on_navigated(frame: Any) -> None:
            if frame.parent_frame is None:
                watch.changed.set()

        page.on("request", on_request)
        page.on("requestfinished", on_done)
        page.on("requestfailed", on_done)
        page.on("framenavigated", on_navigated)
        page.on("download", self._on_download)
        page.on("dialog", self._on_dialog)
        return watch

    def _on_download(self, download: Any) -> None:
        task = asyncio.ensure_future(self._save_download(download))
        self._download_tasks.add(task)
        task.add_done_callback(self._download_tasks.discard)

    async def _save_download(self, download: Any) -> None:
        name = download.suggested_filename or "download"
        entry: dict[str, Any] = {"url": download.url, "suggested_filename": name}
        try:
            path = self.save_download(name)
            await download.save_as(path)
            entry["path"] = str(path)
            entry["bytes"] = path.stat().st_size
        except Exception as exc:
            entry["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.downloads.append(entry)
        self.events.append({"kind": "download", **entry})

    def _on_dialog(self, dialog: Any) -> None:
        self.events.append({"kind": "dialog", "dialog": dialog.type, "message": dialog.message[:500]})
        asyncio.ensure_future(self._dismiss(dialog))

    @staticmethod
    async def _dismiss(dialog: Any) -> None:
        with contextlib.suppress(Exception):
            await dialog.dismiss()

    def take_events(self) -> list[dict[str, Any]]:
        out, self.events = self.events, []
        return out

    # -- state ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        try:
            return self.page.url
        except Exception:
            return ""

    def _live_page(self) -> Any:
        if self.page is not None and not self.page.is_closed():
            return self.page
        pages = [p for p in (self.context.pages if self.context else []) if not p.is_closed()]
        if not pages:
            raise BrowserError("the browser has no open page left (the last tab was closed)")
        self.page = pages[-1]
        self.events.append({"kind": "tab", "url": self.page.url, "reason": "the tab closed"})
        return self.page

    # -- start ---------------------------------------------------------------------------
    async def start(self, url: str | None) -> None:
        """Open the start page (or stay on about:blank)."""
        page = self._live_page()
        self._watch(page)
        if not url:
            return
        try:
            await page.goto(url, wait_until="load", timeout=30_000)
        except Exception as exc:
            if self.blocked:
                raise BrowserError(f"start_url {url} is outside allowed_domains") from None
            raise BrowserError(f"could not open start_url {url}: {_first_line(exc)}") from None
        await self._frames(page)

    # -- screenshots ---------------------------------------------------------------------
    async def screenshot(self) -> bytes:
        await self._finish_downloads(1.0)
        page = self._live_page()
        try:
            png = await page.screenshot(type="png", full_page=False, timeout=ACTION_TIMEOUT_MS)
        except Exception as exc:
            if self._last_png is None or not self._browser_alive():
                raise BrowserError(f"could not take a screenshot: {_first_line(exc)}") from None
            self.events.append({"kind": "error", "message": "the screenshot failed; the previous one "
                                "is sent again"})
            return self._last_png
        self._last_png = png
        return png

    def _browser_alive(self) -> bool:
        try:
            return bool(self.context and self.context.browser and self.context.browser.is_connected())
        except Exception:
            return False

    async def _finish_downloads(self, timeout: float) -> None:
        if self._download_tasks:
            await asyncio.wait(list(self._download_tasks), timeout=timeout)

    # -- actions -------------------------------------------------------------------------
    async def perform(self, action: dict[str, Any]) -> dict[str, Any]:
        """Carry out one action; returns what was done (``at``: clamped coordinates,
        ``error`` when the action failed - the step goes on, the model is told)."""
        page = self._live_page()
        self._watch(page)
        kind = action.get("type")
        done: dict[str, Any] = {}
        handler = getattr(self, f"_do_{kind}", None) if isinstance(kind, str) else None
        if handler is None:
            done["error"] = f"flowrun cannot perform a {kind!r} action; it was skipped"
            self.events.append({"kind": "error", "message": done["error"]})
            return done
        self._new_pages.clear()
        self._page_event.clear()
        try:
            opens = await self._opens(page)
            popup_wait = await handler(page, action, done)
            await self._settle(page, popup_wait or 0.0, opens)
        except BrowserError:
            raise
        except Exception as exc:
            if not self._browser_alive():
                raise BrowserError(f"the browser stopped during {describe(action)}: "
                                   f"{_first_line(exc)}") from None
            done["error"] = f"{describe(action)} failed: {_first_line(exc)}"
            self.events.append({"kind": "error", "message": done["error"]})
        return done

    def _xy(self, action: dict[str, Any], done: dict[str, Any]) -> tuple[int, int]:
        x, y = clamp(action.get("x"), action.get("y"), self.width, self.height)
        done["at"] = [x, y]
        return x, y

    @contextlib.asynccontextmanager
    async def _holding(self, page: Any, keys: Any) -> Any:
        held = key_combo(list(keys or []))
        for key in held:
            await page.keyboard.down(key)
        try:
            yield
        finally:
            for key in reversed(held):
                with contextlib.suppress(Exception):
                    await page.keyboard.up(key)

    @staticmethod
    async def _opens(page: Any) -> int:
        """How many times the page called window.open (0 when it cannot tell)."""
        try:
            return int(await page.evaluate("() => window.__flowrunOpens || 0"))
        except Exception:
            return 0

    async def _opens_tab(self, page: Any, x: int, y: int, middle: bool = False) -> bool:
        """Whether a click at (x, y) is on a link or form that targets another window (a
        middle click opens any link in a new tab)."""
        script = """([x, y, middle]) => {
            const el = document.elementFromPoint(x, y);
            const a = el && el.closest('a[href], area[href], form');
            if (!a) return false;
            if (middle && a.tagName !== 'FORM') return true;
            const t = (a.getAttribute('target') || '').toLowerCase();
            return t !== '' && !['_self', '_parent', '_top'].includes(t);
        }"""
        try:
            return bool(await page.evaluate(script, [x, y, middle]))
        except Exception:
            return False

    async def _do_click(self, page: Any, action: dict[str, Any], done: dict[str, Any]) -> float:
        button = action.get("button") or "left"
        done["button"] = button
        if button == "back":
            await page.go_back(wait_until="load", timeout=ACTION_TIMEOUT_MS)
            return 0.0
        if button == "forward":
            await page.go_forward(wait_until="load", timeout=ACTION_TIMEOUT_MS)
            return 0.0
        x, y = self._xy(action, done)
        pw_button = {"right": "right", "wheel": "middle", "middle": "middle"}.get(button, "left")
        tab = pw_button != "right" and await self._opens_tab(page, x, y, pw_button == "middle")
        async with self._holding(page, action.get("keys")):
            await page.mouse.click(x, y, button=pw_button)
        return POPUP_WAIT_S if tab else POPUP_GRACE_S

    async def _do_double_click(self, page: Any, action: dict[str, Any], done: dict[str, Any]) -> float:
        x, y = self._xy(action, done)
        async with self._holding(page, action.get("keys")):
            await page.mouse.dblclick(x, y)
        return POPUP_GRACE_S

    async def _do_move(self, page: Any, action: dict[str, Any], done: dict[str, Any]) -> float:
        x, y = self._xy(action, done)
        async with self._holding(page, action.get("keys")):
            await page.mouse.move(x, y)
        return 0.0

    async def _do_drag(self, page: Any, action: dict[str, Any], done: dict[str, Any]) -> float:
        points = []
        for p in action.get("path") or []:
            if isinstance(p, dict):
                points.append(clamp(p.get("x"), p.get("y"), self.width, self.height))
            elif isinstance(p, (list, tuple)) and len(p) == 2:
                points.append(clamp(p[0], p[1], self.width, self.height))
        if len(points) < 2:
            raise ValueError("a drag needs a path of at least two points")
        done["path"] = [list(p) for p in points]
        async with self._holding(page, action.get("keys")):
            await page.mouse.move(*points[0])
            await page.mouse.down()
            for point in points[1:]:
                await page.mouse.move(*point, steps=5)
            await page.mouse.up()
        return 0.0

    async def _do_scroll(self, page: Any, action: dict[str, Any], done: dict[str, Any]) -> float:
        x, y = self._xy(action, done)
        dx, dy = int(action.get("scroll_x") or 0), int(action.get("scroll_y") or 0)
        async with self._holding(page, action.get("keys")):
            await page.mouse.move(x, y)
            await page.mouse.wheel(dx, dy)
        return 0.0

    async def _do_keypress(self, page: Any, action: dict[str, Any], done: dict[str, Any]) -> float:
        keys = key_combo(list(action.get("keys") or []))
        if not keys:
            raise ValueError("a keypress needs keys")
        done["keys"] = keys
        if len(keys) == 1:
            await page.keyboard.press(keys[0])
        else:
            for key in keys:
                await page.keyboard.down(key)
            for key in reversed(keys):
                await page.keyboard.up(key)
        return POPUP_GRACE_S

    async def _do_type(self, page: Any, action: dict[str, Any], done: dict[str, Any]) -> float:
        await page.keyboard.type(str(action.get("text", "")))
        return 0.0

    async def _do_wait(self, page: Any, action: dict[str, Any], done: dict[str, Any]) -> float:
        try:
            ms = int(action.get("ms", 1000))
        except (TypeError, ValueError):
            ms = 1000
        ms = max(0, min(ms, MAX_WAIT_MS))
        done["ms"] = ms
        await asyncio.sleep(ms / 1000)
        return 0.0

    async def _do_screenshot(self, page: Any, action: dict[str, Any], done: dict[str, Any]) -> float:
        return 0.0

    # -- settling ------------------------------------------------------------------------
    async def _frames(self, page: Any) -> None:
        """Let the page handle queued input and paint (two animation frames)."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(page.evaluate(
                "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"), 2.0)

    async def _loaded(self, page: Any, deadline: float) -> None:
        """Wait until no main-frame navigation of ``page`` is in flight, then for ``load``."""
        watch = self._watch(page)
        while time.monotonic() < deadline:
            watch.changed.clear()
            if watch.pending:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(watch.changed.wait(), max(0.01, deadline - time.monotonic()))
                continue
            with contextlib.suppress(Exception):
                await page.wait_for_load_state(
                    "load", timeout=max(1, int((deadline - time.monotonic()) * 1000)))
            await self._frames(page)
            if not watch.pending:  # nothing new started while loading (e.g. a redirect page)
                return

    async def _settle(self, page: Any, popup_wait: float, opens_before: int = 0) -> None:
        deadline = time.monotonic() + SETTLE_BUDGET_S
        await self._frames(page)
        if popup_wait and not self._new_pages and not page.is_closed():
            if await self._opens(page) > opens_before:  # a script opened a tab: wait for it
                popup_wait = POPUP_WAIT_S
        if popup_wait and not self._new_pages:
            blocked_before = len(self.blocked)
            end = time.monotonic() + popup_wait
            while not self._new_pages and len(self.blocked) == blocked_before and time.monotonic() < end:
                self._page_event.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._page_event.wait(), end - time.monotonic())
        if not page.is_closed():
            await self._loaded(page, deadline)
        fresh = [p for p in self._new_pages if not p.is_closed()]
        for new in fresh:
            await self._loaded(new, deadline)
        opened = [p for p in fresh if not p.is_closed() and p.url not in ("", "about:blank")]
        if opened:
            self.page = opened[-1]
            with contextlib.suppress(Exception):
                await self.page.bring_to_front()
            self.events.append({"kind": "tab", "url": self.page.url, "reason": "a new tab opened"})
        elif page.is_closed():
            self._live_page()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

