"""The browser session of one computer-use step: a fresh context, the actions, tabs,
downloads, dialogs and the events the model is told about."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..secrets import Redactor, truncate
from .actions import clamp, describe, key_combo
from .domains import AllowedHost
from .guard import Guard
from .launch import BrowserError, LaunchedBrowser, launch_browser, shared_browser
from .proxy import ConnectionGate

ACTION_TIMEOUT_MS = 10_000  # one Playwright operation (navigation, screenshot)
SETTLE_BUDGET_S = 10.0  # waiting for what an action started
POPUP_WAIT_S = 3.0  # after a click on a link that opens a new tab
POPUP_GRACE_S = 0.15  # after any other click or key press
MAX_WAIT_MS = 10_000

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


DIALOG_SHOWN = 500  # characters of a dialog's message kept


@dataclass
class _PageWatch:
    """Navigations in flight on one page."""

    pending: set[Any] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class BrowserSession:
    """One step's browser: a fresh context, its pages, the guard, and the actions.

    ``save_download(suggested_name) -> Path`` says where a download goes (the run dir);
    ``redactor`` masks secrets in what it reports (typed text, dialog messages).
    """

    def __init__(self, *, width: int, height: int, headless: bool = True,
                 allowed: list[AllowedHost], save_download: Callable[[str], Path],
                 environ: Any = None, redactor: Redactor | None = None):
        self.redactor = redactor or Redactor()
        self.width, self.height = width, height
        self.headless = headless
        self.allowed = allowed
        self.save_download = save_download
        self.environ = environ
        self.events: list[dict[str, Any]] = []
        self.blocked: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self.downloads: list[dict[str, Any]] = []
        self._own: LaunchedBrowser | None = None
        self._gate: ConnectionGate | None = None
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
            self._gate = await ConnectionGate(self.allowed, self._on_refused).start()
            self.context = await browser.new_context(
                proxy=self._gate.playwright_proxy(),  # type: ignore[arg-type]
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
        if self._gate is not None:
            await self._gate.close()
            self._gate = None
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

    def _on_refused(self, entry: dict[str, Any]) -> None:
        """The connection gate refused what the browser sent past the guard (a speculative
        prefetch, Chromium's own background traffic): kept, not told to the model."""
        self.refused.append(entry)

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
        message = truncate(dialog.message, DIALOG_SHOWN, redactor=self.redactor)  # masked, then cut
        self.events.append({"kind": "dialog", "dialog": dialog.type, "message": message})
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
            what, why = describe(action, self.redactor), self.redactor.text(_first_line(exc))
            if not self._browser_alive():
                raise BrowserError(f"the browser stopped during {what}: {why}") from None
            done["error"] = f"{what} failed: {why}"
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
