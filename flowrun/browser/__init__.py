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
- **The connection gate.** Routing sees requests, not sockets: Chromium preconnects to a
  navigation's host (a refused iframe, form post or link still opened a TCP connection)
  and fetches speculation-rules prefetches unrouted. So each context also gets its own
  :class:`ConnectionGate`, a loopback proxy (loopback hosts included) that opens an
  upstream connection only to an allowed host. The launch flags turn speculative loading
  off as well (:data:`LAUNCH_ARGS`: prerender, NoStatePrefetch, the predictors, DNS
  prefetch).
- **Events for the model** (:meth:`BrowserSession.take_events`): blocked requests, tab
  switches, downloads (saved where the session's ``save_download`` says: the run
  directory), dialogs (dismissed; their text is recorded, not shown to the model) and
  actions that failed.
"""

from __future__ import annotations

from .actions import KEY_MAPPING, MODIFIER_KEYS, clamp, describe, key_combo, map_key
from .domains import AllowedHost, origin, parse_allowed, url_allowed
from .guard import Guard
from .proxy import ConnectionGate
from .launch import (
    CHROMIUM_ENV,
    DEBIAN_CHROMIUM,
    INSTALL_HINT,
    LAUNCH_ARGS,
    BrowserError,
    LaunchedBrowser,
    chromium_executable,
    launch_browser,
    shared_browser,
    use_browser,
)
from .session import BrowserSession

__all__ = [
    "CHROMIUM_ENV",
    "DEBIAN_CHROMIUM",
    "INSTALL_HINT",
    "KEY_MAPPING",
    "LAUNCH_ARGS",
    "MODIFIER_KEYS",
    "AllowedHost",
    "BrowserError",
    "BrowserSession",
    "ConnectionGate",
    "Guard",
    "LaunchedBrowser",
    "chromium_executable",
    "clamp",
    "describe",
    "key_combo",
    "launch_browser",
    "map_key",
    "origin",
    "parse_allowed",
    "shared_browser",
    "url_allowed",
    "use_browser",
]
