"""`flowrun emulator`: user errors are one line and exit 2, never a traceback."""

from __future__ import annotations

import socket

import pytest

from flowkit import flowrun_cli


@pytest.mark.parametrize("args, env, message", [
    (["--faults", "nonsense"], {}, "fault rule 'nonsense' not understood"),
    (["--script", "/no/such/script.yaml"], {}, "cannot read emulator script"),
    ([], {"FLOWRUN_EMULATOR_LATENCY_MS": "abc"}, "FLOWRUN_EMULATOR_LATENCY_MS must be an integer"),
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
