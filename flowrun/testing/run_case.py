"""Running test cases: each on its own in-process emulator, many at once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import FlowrunError
from .checks import (
    Failure,
    check_cost,
    check_error,
    check_expr,
    check_requests,
    check_step,
    check_value,
)
from .load import LoadedTests
from .local_paths import Places
from .spec import Case

PASSED, FAILED, ERROR = "passed", "failed", "error"


@dataclass
class CaseResult:
    """What one case did: passed, failed (expectations) or error (could not run)."""

    file: str
    name: str
    status: str
    failures: list[Failure] = field(default_factory=list)
    duration_s: float = 0.0
    run_status: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    requests: int = 0

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "file": self.file, "name": self.name, "status": self.status,
                               "duration_s": round(self.duration_s, 3), "requests": self.requests}
        if self.run_status:
            out["run_status"] = self.run_status
        if self.failures:
            out["failures"] = [f.to_dict() for f in self.failures]
        if self.error:
            out["error"] = self.error
        return out


def _script_for(tests: LoadedTests, case: Case) -> Any:
    if case.script is not None:
        return case.script
    if case.script_file is not None:
        return str(tests.path.parent / case.script_file)
    beside = tests.flow_path.with_name(tests.flow_path.name.rsplit(".", 1)[0] + ".emulator.yaml")
    return str(beside) if beside.is_file() else None


def _locate(tests: LoadedTests, failures: list[Failure], base: tuple[Any, ...]) -> list[Failure]:
    for f in failures:
        path = base + f.path
        line, col = tests.source.locate(path)
        f.where = f"{tests.name}:{line}:{col}" if line is not None else tests.name
        f.path = path
    return failures


async def run_case(tests: LoadedTests, plan: Any, name: str, case: Case, run_root: Path,
                   replay: Any = None) -> CaseResult:
    """Run one case on a fresh in-process emulator and check its expectations."""
    started = time.monotonic()
    result = CaseResult(tests.name, name, PASSED)
    with serve_folder(tests.path.parent / case.serve if case.serve else None) as url:
        try:
            inputs = case_inputs(tests, plan, name, case, url)
            emulator = case_emulator(tests, case, replay)
        except FlowrunError as exc:
            return _errored(result, exc.format(), started)
        return await _run_case(tests, plan, name, case, run_root, replay, emulator, inputs, result, started)


def case_inputs(tests: LoadedTests, plan: Any, name: str, case: Case, url: str | None) -> dict[str, Any]:
    """The flow's inputs for ``case`` (``{{ serve.url }}`` rendered), checked and resolved;
    raises :class:`~flowrun.errors.UsageError` saying where to fix them."""
    from ..errors import UsageError
    from ..run_inputs import resolve_inputs
    from ..templating import TemplateError, render_deep

    try:
        given = render_deep(case.inputs, {"serve": {"url": url}}) if url else case.inputs
    except TemplateError as exc:
        raise UsageError(f"inputs: {exc}") from None
    try:
        return resolve_inputs(plan.flow, {}, given, cwd=tests.path.parent, flow_dir=plan.base_dir)
    except FlowrunError as exc:
        message = exc.format().replace("give inputs as -i NAME=VALUE or --inputs FILE.yaml",
                                       f"give it under `inputs:` of case {name!r}")
        raise UsageError(message) from None


def case_emulator(tests: LoadedTests, case: Case, replay: Any = None) -> Any:
    """The case's emulator: its script (or the flow's FLOW.emulator.yaml), or ``replay``."""
    from ..emulator import Emulator
    from ..errors import UsageError

    try:
        emulator = Emulator(script=_script_for(tests, case))
    except ValueError as exc:  # a bad script
        raise UsageError(f"emulator script: {exc}") from None
    if replay is not None:
        replay.install(emulator)
    return emulator


async def _run_case(tests: LoadedTests, plan: Any, name: str, case: Case, run_root: Path, replay: Any,
                    emulator: Any, inputs: dict[str, Any], result: CaseResult, started: float) -> CaseResult:
    from ..client import ResponsesClient
    from ..emulator import EmulatorServer
    from ..errors import Cancelled
    from ..hooks import RunHooks
    from ..providers import IN_PROCESS_POLL_SECONDS, ProviderConfig
    from ..runner import run_plan

    base = ("cases", name)
    environ = {**os.environ, **case.env}
    async with EmulatorServer(emulator) as server:
        client = ResponsesClient(ProviderConfig("emulator", base_url=server.base_url, api_key="emulator",
                                                poll_interval_cap=IN_PROCESS_POLL_SECONDS))
        try:
            run = await run_plan(plan, client, inputs, run_root=run_root, hooks=RunHooks(), environ=environ,
                                 cache=False)  # a case sees its own script, never a cached answer
        except Cancelled as exc:
            run = exc.result
        except FlowrunError as exc:
            return _errored(result, exc.format(), started)
        finally:
            await client.close()
        journal = emulator.journal.entries()
    if replay is not None:
        result.failures.extend(replay.failures(Places(plan.base_dir, run_root)))
    result.run_status = run.status
    result.outputs = run.outputs
    result.requests = sum(1 for e in journal if e.get("method") == "POST"
                          and str(e.get("path", "")).rstrip("/").endswith("/responses"))
    failures = list(result.failures)
    if case.expect_error is not None:
        failures.extend(check_error(case.expect_error, run, ("expect_error",)))
    elif run.status != "succeeded":
        failed = {s: o.error for s, o in run.steps.items() if o.status == "failed"}
        detail = "; ".join(f"{s}: {e}" for s, e in failed.items()) or run.error or ""
        failures.append(Failure((), f"the run {run.status}" + (f": {detail}" if detail else "")))
    if run.status == "succeeded" or case.expect_error is None:
        failures.extend(_expectations(case, run, journal))
    result.failures = _locate(tests, failures, base)
    result.status = FAILED if result.failures else PASSED
    result.duration_s = time.monotonic() - started
    return result


def _expectations(case: Case, run: Any, journal: list[dict[str, Any]]) -> list[Failure]:
    exp = case.expect
    out: list[Failure] = []
    for name, check in exp.outputs.items():
        path = ("expect", "outputs", name)
        if name not in run.outputs:
            out.append(Failure(path, f"the run has no output {name!r} (outputs: "
                                     f"{', '.join(run.outputs) or 'none'})"))
            continue
        out.extend(check_value(check, run.outputs[name], path, f"outputs.{name}"))
    for step_id, check in exp.steps.items():
        out.extend(check_step(check, step_id, run.steps.get(step_id), ("expect", "steps", step_id)))
    for i, check in enumerate(exp.requests):
        out.extend(check_requests(check, journal, run.steps, ("expect", "requests", i)))
    if exp.cost is not None:
        out.extend(check_cost(exp.cost, run.steps, journal, ("expect", "cost")))
    if exp.expr:
        context = {"outputs": run.outputs, "steps": {s: o.to_template() for s, o in run.steps.items()}}
        for i, expr in enumerate(exp.expr):
            out.extend(check_expr(expr, context, ("expect", "expr", i)))
    return out


@contextlib.contextmanager
def serve_folder(folder: Path | None) -> Iterator[str | None]:
    """Serve ``folder`` read-only over HTTP on 127.0.0.1 and a free port (its URL), or nothing."""
    if folder is None:
        yield None
        return
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="flowrun-test-serve")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _errored(result: CaseResult, message: str, started: float) -> CaseResult:
    result.status = ERROR
    result.error = message
    result.duration_s = time.monotonic() - started
    return result


async def run_all(selected: list[tuple[LoadedTests, Any, str, Case]], jobs: int = 4,
                  run_dir: Path | None = None, replays: dict[tuple[str, str], Any] | None = None,
                  on_result: Any = None) -> list[CaseResult]:
    """Run cases ``jobs`` at a time; results in the order given. ``run_dir`` keeps the run
    records (default: a temporary directory, removed afterwards)."""
    gate = asyncio.Semaphore(max(1, jobs))
    with tempfile.TemporaryDirectory(prefix="flowrun-test-") as tmp:
        root = Path(run_dir) if run_dir is not None else Path(tmp)

        async def one(tests: LoadedTests, plan: Any, name: str, case: Case) -> CaseResult:
            async with gate:
                replay = (replays or {}).get((tests.name, name))
                res = await run_case(tests, plan, name, case, root, replay)
                if on_result is not None:
                    on_result(res)
                return res

        return list(await asyncio.gather(*(one(*s) for s in selected)))
