"""serve(): the blocking entry point behind `flowrun emulator`, run as a real process."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import httpx2
from flowkit import REPO


def test_serve_in_subprocess(tmp_path):
    script = tmp_path / "s.json"
    script.write_text('{"default": ["scripted hello"]}')
    code = ("from flowrun.emulator import serve\n"
            "try:\n"
            f"    serve(port=0, latency_ms=5, faults='503', script={str(script)!r})\n"
            "except KeyboardInterrupt:\n"  # Ctrl+C: serve() shuts down, then re-raises
            "    raise SystemExit(130)\n")
    env = {**os.environ, "FLOWRUN_EMULATOR_FAULTS": "429x5"}  # the explicit argument wins
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
        assert match, line
        base = f"http://127.0.0.1:{match.group(1)}"
        body = {"model": "m", "input": "x"}
        assert httpx2.post(base + "/v1/responses", json=body).status_code == 503
        answer = httpx2.post(base + "/openai/v1/responses", json=body)
        assert answer.status_code == 200 and answer.json()["output"][0]["content"][0]["text"] == "scripted hello"
        journal = httpx2.get(base + "/_emulator/requests").json()
        assert [e["body"] for e in journal] == [body, body]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
        proc.stderr.close()


def test_stop_with_request_in_flight_is_quick_and_quiet(caplog):
    import threading
    import time

    import openai

    from flowrun.emulator import EmulatorServer

    server = EmulatorServer(script={"default": [{"text": "late", "delay_ms": 5000}]}).start()
    client = openai.OpenAI(base_url=server.base_url, api_key="t", max_retries=0)
    errors = []
    worker = threading.Thread(target=lambda: errors.append(_call(client)))
    worker.start()
    time.sleep(0.2)
    start = time.monotonic()
    with caplog.at_level("ERROR"):
        server.stop()
    assert time.monotonic() - start < 1.0
    worker.join(5)
    assert errors and isinstance(errors[0], openai.APIConnectionError)
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text


def _call(client):
    try:
        client.responses.create(model="m", input="x")
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return exc
    return None
