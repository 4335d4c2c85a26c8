"""When tracing is on: ``--otel`` or an OTLP endpoint in the environment. Off, flowrun
never imports OpenTelemetry; asked for without the ``otel`` extra, a clear message."""

from __future__ import annotations

import json
import subprocess
import sys

from flowkit import REPO, cli_env, write

from flowrun import tracing

DRIVER = """
import sys
{prelude}
try:
    from flowrun.cli import main
    main(sys.argv[1:])
    code = 0
except SystemExit as exc:
    code = exc.code
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
sys.stderr.write("\\nOTEL_MODULES=" + ",".join(loaded) + "\\n")
sys.exit(code)
"""


def drive(tmp_path, *args, prelude="", **env):
    flow = write(tmp_path / "flow.yaml", "name: plain\nsteps:\n  ask:\n    input: Hello\n")
    return subprocess.run([sys.executable, "-c", DRIVER.format(prelude=prelude), "run", str(flow),
                           "--provider", "emulator", "--json", "--run-dir", str(tmp_path / "runs"), *args],
                          capture_output=True, text=True, timeout=90, cwd=tmp_path,
                          env={**cli_env(PYTHONPATH=str(REPO)), **env})


def otel_modules(proc) -> str:
    return proc.stderr.rsplit("OTEL_MODULES=", 1)[1].strip()


def test_without_an_endpoint_or_flag_opentelemetry_is_never_imported(tmp_path):
    env = {k: "" for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")}
    proc = drive(tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "succeeded"
    assert otel_modules(proc) == ""


def test_otel_without_the_extra_is_a_usage_error(tmp_path):
    proc = drive(tmp_path, "--otel", prelude="sys.modules['opentelemetry'] = None")
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'flowrun[otel]'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert json.loads(proc.stdout)["status"] == "invalid"


def test_an_endpoint_without_the_extra_warns_and_runs(tmp_path):
    proc = drive(tmp_path, prelude="sys.modules['opentelemetry'] = None",
                 OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert proc.returncode == 0, proc.stderr
    assert "running without traces" in proc.stderr and "pip install 'flowrun[otel]'" in proc.stderr
    assert json.loads(proc.stdout)["status"] == "succeeded"


def test_when_tracing_and_content_are_wanted():
    assert not tracing.wanted(False, {})
    assert tracing.wanted(True, {})
    assert tracing.wanted(False, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.wanted(False, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
    assert not tracing.wanted(True, {"OTEL_SDK_DISABLED": "true"})
    assert not tracing.content_wanted(False, {})
    assert tracing.content_wanted(True, {})
    assert tracing.content_wanted(False, {tracing.CONTENT_VAR: "True"})
    assert not tracing.content_wanted(False, {tracing.CONTENT_VAR: "false"})
