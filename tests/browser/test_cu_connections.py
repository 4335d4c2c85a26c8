"""No socket reaches a host outside ``allowed_domains``: speculative loading, preconnects,
iframes and forms posted into them, counted as accepted TCP connections on 127.0.0.2 (one
server per vector), and the connection gate (the per-context proxy) on its own."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from typing import Any

import pytest
from flowkit import record

import cu_site  # type: ignore[import-not-found]
from flowrun.browser import LAUNCH_ARGS, AllowedHost
from flowrun.browser.proxy import ConnectionGate

VECTORS = ["spec_prefetch", "spec_prerender", "link_prefetch", "link_preconnect", "link_dns_prefetch",
           "link_prerender", "iframe", "form_into_iframe", "img", "script", "link_click"]


@pytest.fixture(scope="module")
def traps():
    """One server on 127.0.0.2 per vector, so a connection says which vector opened it."""
    servers = {name: cu_site.serve("127.0.0.2") for name in VECTORS}
    yield servers
    for server in servers.values():
        server.close()


def speculative_page(o: dict[str, str]) -> bytes:
    rules = {"prefetch": [{"source": "list", "urls": [o["spec_prefetch"] + "/p?token=secret"]}]}
    prerender = {"prerender": [{"source": "list", "urls": [o["spec_prerender"] + "/r?token=secret"]}]}
    return cu_site.page("Speculative", f"""
        <script type="speculationrules">{json.dumps(rules)}</script>
        <script type="speculationrules">{json.dumps(prerender)}</script>
        <link rel=prefetch href="{o['link_prefetch']}/lp?token=secret">
        <link rel=preconnect href="{o['link_preconnect']}">
        <link rel=dns-prefetch href="{o['link_dns_prefetch']}">
        <link rel=prerender href="{o['link_prerender']}/lr?token=secret">
        <iframe src="{o['iframe']}/frame?token=secret" {cu_site.box(200, 10, 80, 60)}></iframe>
        <iframe name=sink {cu_site.box(200, 100, 80, 60)}></iframe>
        <iframe src="/second" {cu_site.box(300, 10, 80, 60)}></iframe>
        <form id=f method=post action="{o['form_into_iframe']}/post?token=secret" target=sink>
          <input type=hidden name=token value=secret></form>
        <img src="{o['img']}/pixel.png?token=secret" alt="" {cu_site.box(10, 200, 10, 10)}>
        <script src="{o['script']}/app.js?token=secret"></script>
        <a href="{o['link_click']}/next?token=secret" {cu_site.box(10, 10, 150, 30)}>elsewhere</a>""",
        "document.getElementById('f').submit();")


def flow() -> str:
    return """
    name: cu-connections
    inputs:
      site: {type: string}
    steps:
      browse:
        computer_use:
          task: "Look around."
          start_url: "{{ inputs.site }}/speculative"
          display: {width: 400, height: 300}
          max_turns: 5
    """


def test_no_vector_opens_a_connection_to_a_host_outside_allowed_domains(driver, emu, site, traps,
                                                                        tmp_path):
    # the counter counts: a plain request from here is one accepted connection
    urllib.request.urlopen(traps["img"].origin + "/second", timeout=5).read()
    assert traps["img"].accepted == 1
    for trap in traps.values():
        trap.clear()
    site.extra_pages["/speculative"] = speculative_page({k: t.origin for k, t in traps.items()})
    emu.script({"steps": {"browse": [
        {"computer": {"action": {"type": "wait", "ms": 1000}}},  # time for speculative loads
        {"computer": {"action": {"type": "click", "x": 60, "y": 25}}},  # the link elsewhere
        {"computer": {"action": {"type": "wait", "ms": 300}}},
        {"text": "done"},
    ]}})
    try:
        result = driver.run(tmp_path, emu, flow(), {"site": site.origin})
    finally:
        del site.extra_pages["/speculative"]
    assert result.status == "succeeded", result.error
    assert {name: (t.accepted, [r["path"] for r in t.requests]) for name, t in traps.items()} == {
        name: (0, []) for name in VECTORS}
    # the allowed site still works through the gate: the page, its same-site iframe
    assert {"/speculative", "/second"} <= {r["path"] for r in site.requests}
    assert [o["current_url"] for o in emu.outputs("browse")] == [site.origin + "/speculative"] * 3
    # the guard saw and refused what was routed to it (the control: image, script)
    blocked = {b["url"] for b in record(result)["steps"]["browse"]["computer_use"]["blocked"]}
    assert {traps["img"].origin + "/pixel.png?token=secret",
            traps["script"].origin + "/app.js?token=secret",
            traps["iframe"].origin + "/frame?token=secret",
            traps["link_click"].origin + "/next?token=secret"} <= blocked


def test_launch_flags_keep_playwrights_disabled_features_and_turn_off_speculation(driver):
    """Chromium reads only the last --disable-features: it must hold Playwright's own too."""
    loop = driver.loop

    async def command_line() -> str:
        page = await driver.launched.browser.new_page()
        try:
            await page.goto("chrome://version")
            return await page.inner_text("#command_line")
        finally:
            await page.context.close()

    text = loop.run_until_complete(command_line())
    lists = [m.split(",") for m in re.findall(r"--disable-features=(\S+)", text)]
    assert len(lists) >= 2, text
    effective = set(lists[-1])
    for earlier in lists[:-1]:
        assert set(earlier) <= effective, f"these Playwright defaults would be lost: {set(earlier) - effective}"
    assert {"Prerender2", "NoStatePrefetch"} <= effective
    assert "--dns-prefetch-disable" in text and "--dns-prefetch-disable" in LAUNCH_ARGS


# ---------------------------------------------------------------- the gate on its own


async def _exchange(gate: ConnectionGate, data: bytes) -> bytes:
    host, port = gate.url[len("http://"):].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()


def _gate_run(allowed: str, scenario: Any) -> tuple[Any, list[dict[str, Any]]]:
    refused: list[dict[str, Any]] = []

    async def main() -> Any:
        gate = await ConnectionGate([AllowedHost(allowed)], refused.append).start()
        try:
            return await scenario(gate)
        finally:
            await gate.close()

    return asyncio.run(main()), refused


def test_gate_refuses_other_hosts_without_connecting(site, other_site):
    port = other_site.port

    async def scenario(gate: ConnectionGate) -> list[bytes]:
        return [await _exchange(gate, f"CONNECT 127.0.0.2:{port} HTTP/1.1\r\nHost: 127.0.0.2:{port}\r\n\r\n".encode()),
                await _exchange(gate, f"GET http://127.0.0.2:{port}/secret?token=x HTTP/1.1\r\n"
                                      f"Host: 127.0.0.2:{port}\r\n\r\n".encode()),
                await _exchange(gate, f"GET http://127.0.0.1@127.0.0.2:{port}/ HTTP/1.1\r\n\r\n".encode())]

    answers, refused = _gate_run("127.0.0.1", scenario)
    assert [a.split(b"\r\n")[0] for a in answers] == [b"HTTP/1.1 403 Forbidden"] * 3
    assert other_site.accepted == 0 and other_site.requests == []
    assert [r["method"] for r in refused] == ["CONNECT", "GET", "GET"]


def test_gate_forwards_allowed_requests_one_per_connection(site):
    async def scenario(gate: ConnectionGate) -> tuple[bytes, bytes]:
        plain = await _exchange(gate, f"GET {site.origin}/second?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{site.port}\r\n"
                                      "Proxy-Connection: keep-alive\r\n\r\n".encode())
        host, port = gate.url[len("http://"):].split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"CONNECT 127.0.0.1:{site.port} HTTP/1.1\r\n\r\n".encode())
        established = await reader.readuntil(b"\r\n\r\n")
        writer.write(f"GET /plain HTTP/1.1\r\nHost: 127.0.0.1:{site.port}\r\nConnection: close\r\n\r\n".encode())
        tunnelled = established + await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return plain, tunnelled

    (plain, tunnelled), refused = _gate_run("127.0.0.1", scenario)
    assert refused == []
    assert plain.startswith(b"HTTP/1.0 200") and b"\r\nConnection: close\r\n" in plain and b"Second tab" in plain
    assert tunnelled.startswith(b"HTTP/1.1 200 Connection Established\r\n\r\nHTTP/1.0 200")
    assert b"a plain link" in tunnelled
    assert [(r["method"], r["path"]) for r in site.requests] == [("GET", "/second?x=1"), ("GET", "/plain")]
