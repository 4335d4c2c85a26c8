"""`flowrun emulator`: user errors are one line and exit 2, never a traceback."""

from __future__ import annotations

import socket

import pytest

from flowkit import flowrun_cli


@pytest.mark.parametrize("args, env, message", [
    (["--faults", "nonsense"], {}, "fault rule 'nonsense' not understood"),
    (["--script", "/no/such/script.yaml"], {}, "cannot read emulator script"),
    ([], {"FLOWRUN_EMULATOR_LATENCY_MS": "abc"}, "FLOWRUN_EMULATOR_LATENCY_MS must be an integer"),
    (["--batch-token-limit", "gpt-4.1=lots"], {}, "'token_limit' must be a whole number"),
    (["--faults", "line@every=0"], {}, "every= needs a whole number"),
    ([], {"FLOWRUN_EMULATOR_BATCH_MAX_LINES": "0"}, "FLOWRUN_EMULATOR_BATCH_MAX_LINES"),
])
def test_bad_emulator_settings_exit_2(args, env, message):
    proc = flowrun_cli("emulator", "--port", "0", *args, env=env, timeout=30)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_port_in_use_is_a_clear_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = flowrun_cli("emulator", "--port", str(port), timeout=30)
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_batch_options_reach_the_served_emulator():
    import re
    import signal
    import subprocess
    import sys

    import httpx2

    from flowkit import REPO, cli_env

    proc = subprocess.Popen([sys.executable, "-m", "flowrun.cli", "emulator", "--port", "0",
                             "--batch-delay-ms", "7", "--batch-token-limit", "gpt-4.1=900,*=50"],
                            cwd=REPO, env=cli_env(FLOWRUN_EMULATOR_BATCH_MAX_LINES="12"),
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
        assert match, line
        shown = httpx2.get(f"http://127.0.0.1:{match.group(1)}/_emulator/batches").json()
        assert (shown["delay_ms"], shown["max_lines"]) == (7, 12)
        assert shown["token_limit"] == {"gpt-4.1": 900, "*": 50}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        proc.stderr.close()
