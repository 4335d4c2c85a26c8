"""Start a run from the command line: load, resolve inputs and provider, start the
built-in emulator when asked, run with Ctrl-C handling, and return the result."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any, Iterator

from .errors import Cancelled, UsageError
from .plan import load_plan
from .providers import ProviderConfig, resolve_provider
from .run_inputs import parse_assignments, read_inputs_file, resolve_inputs
from .runner import RunResult, run_plan


def emulator_script_for(flow: str, explicit: str | None) -> str | None:
    """``--emulator-script``, else ``$FLOWRUN_EMULATOR_SCRIPT``, else ``FLOW.emulator.yaml``."""
    if explicit:
        if not Path(explicit).is_file():
            raise UsageError(f"--emulator-script {explicit}: no such file")
        return explicit
    if os.environ.get("FLOWRUN_EMULATOR_SCRIPT"):
        return os.environ["FLOWRUN_EMULATOR_SCRIPT"]
    p = Path(flow)
    beside = p.with_name(p.name.rsplit(".", 1)[0] + ".emulator.yaml")
    return str(beside) if beside.is_file() else None


@contextlib.contextmanager
def provider_endpoint(cfg: ProviderConfig, flow: str, script: str | None) -> Iterator[ProviderConfig]:
    """For ``emulator`` without a URL, serve the emulator in-process for the run."""
    if cfg.kind != "emulator" or cfg.base_url:
        yield cfg
        return
    from .emulator import Emulator, EmulatorServer, ScriptError

    path = emulator_script_for(flow, script)
    try:
        emulator = Emulator.from_env(script=path)
    except (ScriptError, ValueError) as exc:
        raise UsageError(f"emulator: {exc}") from None
    with EmulatorServer(emulator) as server:
        cfg.base_url = server.base_url
        cfg.endpoint_id = _in_process_identity(path)
        yield cfg


def _in_process_identity(script: str | None) -> str:
    """The in-process emulator answers by its script: the step cache keys on that, not
    on its (random) port."""
    import hashlib

    if not script:
        return "in-process emulator"
    try:
        digest = hashlib.sha256(Path(script).read_bytes()).hexdigest()
    except OSError:
        digest = "unreadable"
    return f"in-process emulator, script sha256:{digest}"


def launch(
    flow: str,
    assignments: tuple[str, ...],
    inputs_file: str | None,
    provider: str | None,
    base_url: str | None,
    as_json: bool,
    max_concurrency: int | None,
    run_dir: str,
    emulator_script: str | None = None,
    interactive: bool | None = None,
    cache: bool | None = None,
) -> RunResult:
    plan = load_plan(flow)
    from_file = read_inputs_file(inputs_file) if inputs_file else {}
    inputs = resolve_inputs(plan.flow, parse_assignments(assignments), from_file,
                            flow_dir=plan.base_dir)
    if provider is None and base_url is None and os.environ.get("FLOWRUN_PROVIDER"):
        provider = os.environ["FLOWRUN_PROVIDER"]
    cfg = resolve_provider(provider, plan.flow.provider, base_url)
    if interactive is None:
        interactive = not as_json and sys.stdin.isatty() and sys.stderr.isatty()
    from .hooks import StderrNotices

    hooks: Any = StderrNotices()
    if not as_json:
        from .view import LiveView

        hooks = LiveView()

    with provider_endpoint(cfg, flow, emulator_script) as endpoint:
        from .client import ResponsesClient

        async def main() -> RunResult:
            client = ResponsesClient(endpoint)
            try:
                return await run_plan(
                    plan, client, inputs, run_root=Path(run_dir), hooks=hooks,
                    interactive=interactive, max_concurrency=max_concurrency, cache=cache,
                )
            finally:
                await client.close()

        return _run_with_interrupts(main())


def _run_with_interrupts(coro: Any) -> RunResult:
    """Run ``coro``; the first Ctrl-C (or SIGTERM) cancels it cleanly."""
    loop = asyncio.new_event_loop()
    task = loop.create_task(coro)
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, task.cancel)
    try:
        return loop.run_until_complete(task)
    except Cancelled as exc:
        if exc.result is not None:
            return exc.result
        raise
    except KeyboardInterrupt:
        task.cancel()
        with contextlib.suppress(BaseException):
            loop.run_until_complete(task)
        raise Cancelled() from None
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
