"""Reports of example runs opened from disk in real headless Chromium (Playwright, the
same launch as computer use): every step listed, images and screenshots loaded with their
action marks, no console errors and zero network requests. A screenshot of each report
is kept under tests/report/artifacts/ (or $FLOWRUN_TEST_ARTIFACTS)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flowkit import EXAMPLES, run_file, write_flow
from reportkit import ARTIFACTS, page_of, run_dataset_of, run_example

from flowrun.browser import launch_browser, use_browser
from flowrun.emulator.script import load_script


class Pages:
    """One event loop and one Chromium for the module: runs flows (computer use shares the
    browser) and opens reports, counting every request and console error."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.launched = self.loop.run_until_complete(launch_browser(headless=True))

    def close(self) -> None:
        self.loop.run_until_complete(self.launched.close())
        self.loop.close()

    def run_example(self, name: str, emu: Any, tmp_path: Path, inputs: dict[str, Any] | None = None) -> Any:
        with use_browser(self.launched.browser):
            return run_example(name, emu, tmp_path, inputs, runner=self.loop.run_until_complete)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def open(self, path: Path, shot: str) -> tuple[Any, Any, dict[str, list[str]]]:
        """The report at ``path`` in a fresh page; (context, page, seen) where ``seen``
        holds ``requests`` (every request but the page itself) and ``errors``."""
        context = await self.launched.browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        url = path.resolve().as_uri()
        seen: dict[str, list[str]] = {"requests": [], "errors": [], "shot": [str(ARTIFACTS / shot)]}

        async def route(r: Any) -> None:
            if r.request.url == url:
                await r.continue_()
            else:
                seen["requests"].append(r.request.url)
                await r.abort()

        await context.route("**/*", route)
        page.on("request", lambda r: r.url != url and seen["requests"].append(r.url))
        page.on("console", lambda m: m.type in ("error", "warning") and seen["errors"].append(m.text))
        page.on("pageerror", lambda e: seen["errors"].append(str(e)))
        await page.goto(url)
        return context, page, seen


async def finish(context: Any, page: Any, seen: dict[str, list[str]]) -> None:
    """Keep a screenshot, then check the page stayed offline and quiet."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=seen["shot"][0], full_page=True)
    await context.close()
    assert seen["requests"] == [], "the report made network requests"
    assert seen["errors"] == [], "the console shows errors"


async def listed(page: Any) -> list[str]:
    return await page.eval_on_selector_all("#step-list > details.step", "els => els.map(e => e.dataset.key)")


async def images_loaded(page: Any, selector: str = "img") -> list[int]:
    await page.wait_for_function(f"Array.from(document.querySelectorAll({selector!r})).every(i => i.complete)")
    return await page.eval_on_selector_all(selector, "els => els.map(i => i.naturalWidth)")


@pytest.fixture(scope="module")
def pages():
    p = Pages()
    yield p
    p.close()


@pytest.fixture(scope="module")
def example_site():
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(EXAMPLES / "site")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


MARKET_BRIEF = {"steps": {
    "ticker": [{"function_calls": [{"name": "lookup_ticker", "arguments": {"company": "Contoso"}}]},
               {"text": "CTSO"}],
    "prices": [{"function_calls": [{"name": "price_history", "arguments": {"ticker": "CTSO", "days": 5}},
                                   {"name": "fx_rate", "arguments": {"from": "USD", "to": "EUR"}}]},
               {"text": "CTSO closed at 41.20 USD (37.90 EUR), up 3% over the month."}],
    "risks": [{"output": {"risks": [{"title": "Supply chain", "severity": "high"},
                                    {"title": "Currency", "severity": "medium"},
                                    {"title": "Regulation", "severity": "low"}]}}],
}}


def test_a_dag_with_tool_loops(pages, emu, tmp_path):
    emu.script(MARKET_BRIEF)
    result = pages.run_example("market-brief", emu, tmp_path, {"company": "Contoso"})
    assert result.status == "succeeded", result.error
    path, _ = page_of(result)

    async def check() -> None:
        context, page, seen = await pages.open(path, "market-brief.png")
        assert await listed(page) == list(result.steps)
        assert await page.locator("svg.dag a.node").count() == len(result.steps)
        assert await page.locator("svg.timeline rect.bar").count() == len(result.steps)
        await page.screenshot(path=str(ARTIFACTS / "market-brief-top.png"))  # docs/report.png
        await page.locator('svg.dag a.node[data-step="prices"]').click()  # opens its step
        assert await page.locator("#step-prices").evaluate("d => d.open")
        calls = page.locator("#step-prices .item-function_call")
        assert await calls.count() >= 2 and await calls.first.is_visible()
        await finish(context, page, seen)

    pages.run(check())


def test_an_image_generation(pages, emu, tmp_path):
    result = pages.run_example("image-edit", emu, tmp_path)
    assert result.status == "succeeded", result.error
    path, _ = page_of(result)

    async def check() -> None:
        context, page, seen = await pages.open(path, "image-edit.png")
        assert await listed(page) == list(result.steps)
        await page.click("#expand-all")
        widths = await images_loaded(page)
        saved = sum(len(o.result.images) for o in result.steps.values())
        assert len(widths) >= saved and all(w > 0 for w in widths)
        await finish(context, page, seen)

    pages.run(check())


def test_a_computer_use_run(pages, emu, tmp_path, example_site):
    result = pages.run_example("browser-check", emu, tmp_path, {"site": example_site})
    assert result.status == "succeeded", result.error
    path, _ = page_of(result)

    async def check() -> None:
        context, page, seen = await pages.open(path, "browser-check.png")
        assert await listed(page) == ["check", "verdict"]
        await page.locator("#step-check > summary").click()
        shots = page.locator("#step-check .shotbox")
        assert await shots.count() == 3  # start, after the click, after the scroll
        assert all(w == 1024 for w in await images_loaded(page, "#step-check .shotbox img"))
        kinds = await page.eval_on_selector_all("#step-check .shotbox svg.marks g.mark",
                                                "els => els.map(e => e.dataset.kind)")
        assert kinds == ["click", "scroll"]  # each drawn on the screenshot the model acted on
        img = await shots.nth(0).locator("img").bounding_box()
        dot = await shots.nth(0).locator("g.mark circle.dot").bounding_box()
        # the click at (500, 40) of 1024x768, wherever the screenshot is drawn
        assert (dot["x"] + dot["width"] / 2 - img["x"]) / img["width"] == pytest.approx(500 / 1024, abs=0.01)
        assert (dot["y"] + dot["height"] / 2 - img["y"]) / img["height"] == pytest.approx(40 / 768, abs=0.01)
        assert await shots.nth(0).locator("g.mark").is_visible()
        await finish(context, page, seen)

    pages.run(check())


def test_a_failed_run(pages, emu, tmp_path):
    emu.script({"steps": {"second": [{"error": {"status": 400, "message": "the request is bad"}}]}})
    flow = write_flow(tmp_path, """
        name: breaks
        steps:
          first: {input: "hello"}
          second: {input: "{{ steps.first.text }} again"}
          third: {input: "{{ steps.second.text }} and more"}
          aside: {input: "unrelated"}
    """)
    result = run_file(flow, emu, run_root=tmp_path / "runs", runner=pages.loop.run_until_complete)
    assert result.status == "failed"
    path, _ = page_of(result)

    async def check() -> None:
        context, page, seen = await pages.open(path, "failed.png")
        assert await listed(page) == list(result.steps) and len(result.steps) == 4
        assert await page.locator("header .status").inner_text() == "failed"
        assert await page.locator('svg.dag a.node.st-failed').count() == 1
        await page.click('#step-tools button[data-steps="failed"]')
        visible = await page.eval_on_selector_all("#step-list > details.step",
                                                  "els => els.filter(e => !e.hidden).map(e => e.dataset.key)")
        assert visible == ["second"]
        assert await page.locator("#step-second").evaluate("d => d.open")  # a failed step starts open
        assert "the request is bad" in await page.locator("#step-second .body .error").first.inner_text()
        await finish(context, page, seen)

    pages.run(check())


def test_a_dataset_run(pages, emu, tmp_path):
    bad = [{"match": f"T{n}:", "error": {"status": 400, "message": f"row {n} refused"}} for n in (7, 150, 230)]
    emu.script({"steps": {"classify": [*bad, {"text": "billing"}]}})
    result = run_dataset_of(emu, tmp_path, 250, concurrency=16)
    assert (result.succeeded, result.failed) == (247, 3)
    path, _ = page_of(result)

    async def check() -> None:
        context, page, seen = await pages.open(path, "dataset.png")
        rows = page.locator("#row-body tr.row")
        assert await rows.count() == 100  # a page at a time
        assert await page.locator("#row-count").inner_text() == "250 of 250 rows"
        await page.click("#row-next")
        assert await rows.first.get_attribute("data-row") == "101"
        await page.click('#row-tools button[data-rows="failed"]')
        assert [await rows.nth(i).get_attribute("data-row") for i in range(await rows.count())] == ["7", "150", "230"]
        await rows.nth(1).click()
        detail = page.locator("#row-detail")
        assert "row 150 refused" in await detail.inner_text()
        assert await detail.locator("a").all_inner_texts() == ["classify", "reply"]
        await detail.locator("a", has_text="classify").click()  # to the step
        assert await page.locator("#step-classify").evaluate("d => d.open")
        await page.fill("#row-search", "printer 42 ")
        await page.click('#row-tools button[data-rows="all"]')
        assert [await rows.nth(i).get_attribute("data-row") for i in range(await rows.count())] == ["42"]
        await finish(context, page, seen)

    pages.run(check())


def test_a_large_run_keeps_step_bodies_unparsed_until_opened(pages, emu, tmp_path):
    flow = write_flow(tmp_path, """
        name: many
        steps:
          seed: {input: "start"}
          fan:
            for_each: "{{ range(120) | list }}"
            input: "Item {{ item }} after {{ steps.seed.text }}"
    """)
    result = run_file(flow, emu, run_root=tmp_path / "runs", runner=pages.loop.run_until_complete)
    assert result.status == "succeeded", result.error
    path, html = page_of(result)
    assert html.count('<script type="text/x-flowrun-body">') == 2 + 120  # two steps, 120 items

    async def check() -> None:
        context, page, seen = await pages.open(path, "large.png")
        assert await listed(page) == ["seed", "fan"]
        assert await page.locator("#step-fan .item-step").count() == 0  # not parsed yet
        await page.locator("#step-fan > summary").click()
        assert await page.locator("#step-fan .item-step").count() == 120
        item = page.locator("#step-fan\\.7")
        await item.locator("> summary").click()
        assert "Item 7 after" in await item.locator(".request").inner_text()
        # a link to an item inside a step nobody opened yet opens both
        await page.locator("#step-fan > summary").click()
        await page.evaluate("location.hash = ''")
        await page.locator('svg.timeline a[href="#step-seed"]').click()
        assert await page.locator("#step-seed").evaluate("d => d.open")
        assert "start" in await page.locator("#step-seed .request").inner_text()
        await finish(context, page, seen)

    pages.run(check())
