"""Launching Chromium through Playwright: which executable, which flags, and sharing one
browser between steps (:func:`use_browser`)."""

from __future__ import annotations

import contextlib
import contextvars
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import ExecutionError

# Chromium reads only the last --disable-features, so this one repeats Playwright's own
# (1.65; a test checks that none is lost) before adding speculative loading: speculation
# rules prerender, <link rel=prerender> (NoStatePrefetch), the navigation and loading
# predictors. The connection gate (proxy.py) is what guarantees no socket reaches another
# host; these keep the browser from trying.
PLAYWRIGHT_DISABLED_FEATURES = [
    "AvoidUnnecessaryBeforeUnloadCheckSync", "DestroyProfileOnBrowserClose", "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable", "LensOverlay", "MediaRouter", "PaintHolding",
    "ThirdPartyStoragePartitioning", "AvoidCorsURLLoaderRestartOnRedirect",
    "TcpPortRandomizationWin", "OptimizationHints", "NetworkTimeServiceQuerying", "AimEnabled",
    "PreconnectToSearch", "msForceBrowserSignIn", "msEdgeUpdateLaunchServicesPreferredVersion",
]
SPECULATIVE_FEATURES = [
    "Prerender2", "NoStatePrefetch", "SpeculationRulesPrefetchFuture", "AutoSpeculationRules",
    "NavigationPredictor", "LoadingPredictorPrefetch", "LoadingPreconnectToRedirectTarget",
    "LCPPAutoPreconnectLcpOrigin", "LCPPPrefetchSubresource",
]
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--dns-prefetch-disable",
    "--disable-features=" + ",".join(PLAYWRIGHT_DISABLED_FEATURES + SPECULATIVE_FEATURES),
]
DEBIAN_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ENV = "FLOWRUN_CHROMIUM"
INSTALL_HINT = "pip install 'flowrun[browser]'"


class BrowserError(ExecutionError):
    """The browser could not be started or stopped working."""


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
