"""examples/flows/browser-check.yaml runs on the emulator, with its script, against the
example site served on loopback."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from flowkit import EXAMPLES

from flowrun.emulator.script import load_script


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def example_site():
    handler = functools.partial(_Quiet, directory=str(EXAMPLES / "site"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_browser_check_example_runs_on_the_emulator(driver, emu, example_site, tmp_path):
    emu.server.emulator.load_script(load_script(EXAMPLES / "browser-check.emulator.yaml"))
    result = driver.run_file(EXAMPLES / "browser-check.yaml", emu, {"site": example_site},
                             run_root=tmp_path / "runs")
    assert result.status == "succeeded", result.error
    assert "Contoso opens a research lab in Oslo" in result.outputs["found"]
    assert result.outputs["verdict"].startswith("PASS")
    assert Path(result.outputs["screenshot"]).name == "0002-scroll.png"
    outputs = emu.outputs("check")
    assert [o["current_url"] for o in outputs] == [example_site + "/press.html"] * 2
    # the first screenshot, at 1024x768, went with the task
    first = emu.bodies("check")[0]["input"][0]["content"]
    assert first[0]["text"].startswith("Find the newest press release")
    assert [e["width"] for e in emu.log()] == [1024, 1024]
