"""The shared test kit: a handle on the built-in emulator, running flows through flowrun's
real client (the openai SDK over HTTP) against it, and the small helpers every test area
uses. The fixtures (``emulator_server``, ``emu``) live in ``tests/conftest.py``; pytest puts
``tests/`` on ``sys.path`` for it, so every test module can ``from flowkit import ...``.
What only one area needs stays in that area's kit (media makers, the MCP docs server, ...)."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import sys
import textwrap
import urllib.request
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Coroutine

import openai
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from flowrun.client import ResponsesClient
from flowrun.emulator import EmulatorServer
from flowrun.emulator.computer import computer_log
from flowrun.emulator.inputs_report import inputs_report
from flowrun.hooks import RunHooks
from flowrun.plan import load_plan
from flowrun.providers import ProviderConfig, resolve_provider
from flowrun.run_inputs import resolve_inputs
from flowrun.runner import RunResult, run_plan

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "flows"
NOT_FLOWS = (".emulator.yaml", ".test.yaml")  # emulator scripts and test files beside the flows


def example_flows() -> list[Path]:
    """The example flow files (not their emulator scripts or test files), sorted."""
    return sorted(p for p in EXAMPLES.glob("*.yaml") if not p.name.endswith(NOT_FLOWS))
SUBSET = REPO / "flowrun" / "emulator" / "openapi_subset.json"


# --------------------------------------------------------------------------- the emulator


def emulator_fixture(**settings: Any) -> Any:
    """A session-scoped ``emulator_server`` fixture: one ``EmulatorServer(**settings)`` on
    loopback. ``tests/conftest.py`` defines the default; an area that needs other settings
    overrides it in its own conftest with ``emulator_server = emulator_fixture(...)``."""

    @pytest.fixture(scope="session", name="emulator_server")
    def emulator_server():
        with EmulatorServer(**settings) as server:
            yield server

    return emulator_server


class Emu:
    """The test's handle on the emulator: script and faults in; journal, inputs report and
    computer log out. The journal is read over the real ``GET /_emulator/requests``."""

    def __init__(self, server: EmulatorServer):
        self.server = server
        self.base_url = server.base_url

    def reset(self) -> None:
        """Back to a fresh emulator: no script, no faults, empty journal and stores."""
        self.server.emulator.reset()
        self.server.emulator.load_script(None)

    def script(self, script: dict[str, Any]) -> None:
        """Load a script (``{"steps": {step: [reply, ...]}, ...}``)."""
        self.server.emulator.load_script(script)

    def faults(self, spec: str = "", latency_ms: int | None = None) -> None:
        """Load a faults spec (``"429x2:retry_after=0.4"``), and a latency for every request."""
        self.server.emulator.faults.load(spec)
        if latency_ms is not None:
            self.server.emulator.faults.latency_ms = latency_ms

    def batch_settings(self, **values: Any) -> dict[str, Any]:
        """``POST /_emulator/batches``: Batch API settings (``delay_ms``, ``token_limit``,
        ``max_lines``, ``max_bytes``, ``pause_after``; None resets one); what they are now."""
        request = urllib.request.Request(self.server.url + "/_emulator/batches", data=json.dumps(values).encode(),
                                         headers={"content-type": "application/json"}, method="POST")
        with urllib.request.urlopen(request) as resp:
            return json.loads(resp.read())

    def journal(self) -> list[dict[str, Any]]:
        """``GET /_emulator/requests``, the fixed interface: every request, oldest first."""
        with urllib.request.urlopen(self.server.url + "/_emulator/requests") as resp:
            return json.loads(resp.read())

    def posts(self, step: str | None = None) -> list[dict[str, Any]]:
        """Journal entries (method, path, body, time, ...) of ``POST .../responses``
        requests, of one step when ``step`` is given, oldest first."""
        out = []
        for e in self.journal():
            if e["method"] == "POST" and e["path"].endswith("/responses"):
                meta = (e["body"] or {}).get("metadata") or {}
                if step is None or meta.get("flowrun_step") == step:
                    out.append(e)
        return out

    def bodies(self, step: str | None = None) -> list[dict[str, Any]]:
        """The request bodies of :meth:`posts`."""
        return [e["body"] for e in self.posts(step)]

    def paths(self, method: str) -> list[str]:
        """The paths of every journalled request with this method."""
        return [e["path"] for e in self.journal() if e["method"] == method]

    def outputs(self, step: str | None = None, kind: str = "computer_call_output") -> list[dict[str, Any]]:
        """Every input item of type ``kind`` flowrun sent (of one step), in order."""
        return [item for body in self.bodies(step) for item in items_sent(body, kind)]

    def inputs(self, step: str | None = None) -> list[dict[str, Any]]:
        """What the emulator's model received (images and files), oldest first."""
        return [e for e in inputs_report(self.server.emulator) if step is None or e["step"] == step]

    def log(self) -> list[dict[str, Any]]:
        """The emulator's computer-use log (actions sent, screenshots received)."""
        return computer_log(self.server.emulator)

    def sdk(self, azure: bool = False) -> openai.OpenAI:
        """A plain openai SDK client on the emulator (its Azure v1 URL when ``azure``)."""
        url = self.server.azure_base_url if azure else self.base_url
        return openai.OpenAI(base_url=url, api_key="test", max_retries=0)

    def azure_provider(self, deployment: str | None = "gpt-image-1") -> ProviderConfig:
        """An azure-kind provider pointed at the emulator's /openai/v1, as the CLI would
        resolve it from the environment."""
        env = {"AZURE_OPENAI_API_KEY": "test-key"}
        if deployment:
            env["AZURE_OPENAI_IMAGE_DEPLOYMENT"] = deployment
        return resolve_provider("azure", None, self.server.azure_base_url, environ=env)


def items_sent(body: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The ``input`` items of type ``kind`` in a request body (none when it is a string)."""
    items = body.get("input")
    return [i for i in items if isinstance(i, dict) and i.get("type") == kind] \
        if isinstance(items, list) else []


def outputs_sent(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The function_call_output items of a request body."""
    return items_sent(body, "function_call_output")


def sent_text(body: dict[str, Any]) -> str:
    """The latest user text of a request body (``input`` as a string or as items)."""
    value = body["input"]
    if isinstance(value, str):
        return value
    for item in reversed(value):
        if item.get("role") == "user":
            content = item["content"]
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content if p.get("type") == "input_text")
    return ""


# --------------------------------------------------------------------------- running flows


class Recorder(RunHooks):
    """Run hooks that keep what they were told: ``events`` (step, status, detail) and
    ``deltas`` (the streamed text per step key)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str | None]] = []
        self.deltas: dict[str, str] = {}

    def on_step_status(self, step_id, status, detail=None, usage=None):
        self.events.append((step_id, status, detail))

    def on_text_delta(self, step_key, delta):
        self.deltas[step_key] = self.deltas.get(step_key, "") + delta

    def details(self) -> list[str]:
        """Every non-empty status detail, in order."""
        return [d for _, _, d in self.events if d]


def write(path: Path, text: str) -> Path:
    """Write dedented ``text`` at ``path``, making its directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def write_flow(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    """Write dedented flow ``text`` as ``tmp_path / name``."""
    return write(tmp_path / name, text)


def run_file(
    path: Path,
    emu: Emu | None,
    inputs: dict[str, Any] | None = None,
    *,
    run_root: Path,
    cwd: Path | None = None,
    provider: ProviderConfig | None = None,
    credential: Any = None,
    runner: Callable[[Coroutine[Any, Any, RunResult]], RunResult] = asyncio.run,
    **run_plan_kwargs: Any,
) -> RunResult:
    """Run the flow file at ``path``: load_plan, resolve_inputs (relative to ``cwd``,
    default the flow's directory), then ``run_plan`` with a ``ResponsesClient`` on
    ``provider`` (default: the emulator behind ``emu``). ``runner`` runs the coroutine
    (``asyncio.run``, or a loop's ``run_until_complete``); extra keywords go to run_plan
    (``hooks``, ``environ``, ``interactive``, ...)."""
    plan = load_plan(path)
    values = resolve_inputs(plan.flow, {}, inputs or {}, cwd=cwd or path.parent)
    if provider is None:
        assert emu is not None, "run_file needs the emulator or a provider"
        provider = ProviderConfig("emulator", emu.base_url, "test-key")

    async def main() -> RunResult:
        client = ResponsesClient(provider, credential=credential)
        try:
            return await run_plan(plan, client, values, run_root=run_root, cwd=cwd or path.parent,
                                  **run_plan_kwargs)
        finally:
            await client.close()

    return runner(main())


def run_flow(
    tmp_path: Path,
    emu: Emu | None,
    text: str,
    inputs: dict[str, Any] | None = None,
    *,
    name: str = "flow.yaml",
    **kw: Any,
) -> RunResult:
    """Write ``text`` as ``tmp_path / name`` and :func:`run_file` it, with inputs resolved
    in ``tmp_path`` and runs under ``tmp_path / "runs"``. Keywords as for run_file
    (``provider``, ``hooks``, ``cwd``, ``credential``, ``environ``, ...)."""
    kw.setdefault("cwd", tmp_path)
    return run_file(write_flow(tmp_path, text, name), emu, inputs, run_root=tmp_path / "runs", **kw)


def record(result: RunResult) -> dict[str, Any]:
    """The run's ``record.json``."""
    return json.loads((result.run_dir / "record.json").read_text())


def tool_calls(result: RunResult, step: str) -> list[dict[str, Any]]:
    """The function-tool calls the record keeps for ``step``."""
    return record(result)["steps"][step].get("tool_calls", [])


def step_error(result: RunResult, step: str) -> str:
    """The step's error, or its result's (empty when none): for assert messages."""
    outcome = result.steps[step]
    return outcome.error or (outcome.result.error if outcome.result else "") or ""


def files_text(root: Path) -> dict[str, str]:
    """Every file below ``root``, as text."""
    return {str(p): p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- the command line


def cli_env(**extra: str) -> dict[str, str]:
    """``os.environ`` without provider settings (``OPENAI_*``, ``AZURE_*``, ``FLOWRUN_*``),
    plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_", "FLOWRUN_"))}
    env.update(extra)
    return env


def flowrun_cli(*args: str, cwd: Path = REPO, input: str = "", env: dict[str, str] | None = None,
                timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """``python -m flowrun.cli ARGS`` in a subprocess, as a user runs it, with :func:`cli_env`
    plus ``env``; ``input`` is its stdin."""
    return subprocess.run([sys.executable, "-m", "flowrun.cli", *args], input=input, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=cli_env(**(env or {})))


# --------------------------------------------------------------------------- spec and wire checks


@lru_cache(maxsize=None)
def _spec_validator(name: str) -> Draft202012Validator:
    uri = "urn:test:openai-subset"
    doc = json.loads(SUBSET.read_text())
    registry = Registry().with_resource(uri, Resource(contents=doc, specification=DRAFT202012))
    return Draft202012Validator({"$ref": f"{uri}#/components/schemas/{name}"}, registry=registry)


def spec_errors(name: str, instance: Any) -> list[str]:
    """How ``instance`` breaks schema ``name`` of the OpenAPI subset file, checked with
    jsonschema straight from the file (not via the emulator's own conformance module)."""
    return [f"{list(e.absolute_path)}: {e.message[:300]}" for e in _spec_validator(name).iter_errors(instance)]


def assert_conforms(name: str, instance: Any) -> None:
    """Fail unless ``instance`` conforms to schema ``name`` (see :func:`spec_errors`)."""
    errors = spec_errors(name, instance)
    assert not errors, f"{name} does not conform:\n" + "\n".join(errors)


def parse_sse(text: str) -> list[dict]:
    """Parse a raw SSE body into event payloads, checking each frame's event name."""
    events = []
    for frame in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines())
        payload = json.loads(lines["data"])
        assert lines["event"] == payload["type"]
        events.append(payload)
    return events


def png_bytes(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour RGB PNG, built with zlib and struct (no Pillow)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))
