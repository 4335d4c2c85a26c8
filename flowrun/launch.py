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
from .providers import IN_PROCESS_POLL_SECONDS, ProviderConfig, resolve_provider
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
def provider_endpoint(cfg: ProviderConfig, flow: str, script: str | None,
                      replay: Any = None) -> Iterator[ProviderConfig]:
    """For ``emulator`` without a URL, serve the emulator in-process for the run
    (replaying ``replay``, a :class:`~flowrun.testing.cassette.Replay`, when given)."""
    if cfg.kind != "emulator" or cfg.base_url:
        yield cfg
        return
    from .emulator import Emulator, EmulatorServer, ScriptError

    path = None if replay is not None else emulator_script_for(flow, script)
    from .emulator.quota import quota_from_env

    try:
        emulator = Emulator.from_env(script=path)
        quota_from_env(emulator)
    except (ScriptError, ValueError) as exc:
        raise UsageError(f"emulator: {exc}") from None
    if replay is not None:
        replay.install(emulator)
    with EmulatorServer(emulator) as server:
        cfg.base_url = server.base_url
        cfg.endpoint_id = _in_process_identity(path)
        cfg.poll_interval_cap = IN_PROCESS_POLL_SECONDS
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


def run_view(as_json: bool, interactive: bool | None) -> tuple[bool, Any]:
    """Whether to ask at the terminal (default: stdin and stderr are terminals), and the
    hooks that show the run: the live view, or notices on stderr under ``--json``."""
    if interactive is None:
        interactive = not as_json and sys.stdin.isatty() and sys.stderr.isatty()
    if as_json:
        from .hooks import StderrNotices

        return interactive, StderrNotices()
    from .view import LiveView

    return interactive, LiveView()


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
    record: str | None = None,
    replay: str | None = None,
    rpm: float | None = None,
    tpm: float | None = None,
    cache: bool | None = None,
) -> RunResult:
    """``record``: write a cassette of the run there; ``replay``: run on the emulator,
    answering from that cassette. ``flow`` may be a recipe's name (``recipe:NAME``)."""
    from .recipes import flow_argument, secrets_notice

    flow, recipe = flow_argument(flow)
    plan = load_plan(flow)
    if recipe is not None:
        from .runner import secrets_used

        notice = secrets_notice(recipe, secrets_used(plan))
        if notice:
            print(notice, file=sys.stderr, flush=True)
    cassette = None
    if replay is not None:
        from .testing.cassette import Replay

        if provider not in (None, "emulator") or base_url:
            raise UsageError("--replay runs on the built-in emulator; drop --provider/--base-url")
        cassette = Replay.load(replay)
        provider = "emulator"
    from_file = read_inputs_file(inputs_file) if inputs_file else {}
    inputs = resolve_inputs(plan.flow, parse_assignments(assignments), from_file,
                            flow_dir=plan.base_dir)
    if provider is None and base_url is None and os.environ.get("FLOWRUN_PROVIDER"):
        provider = os.environ["FLOWRUN_PROVIDER"]
    cfg = resolve_provider(provider, plan.flow.provider, base_url)
    interactive, hooks = run_view(as_json, interactive)

    with provider_endpoint(cfg, flow, emulator_script, cassette) as endpoint:
        from .client import ResponsesClient

        async def main() -> RunResult:
            client: Any = ResponsesClient(endpoint)
            client.budget = run_budget(rpm, tpm, plan)
            recorder = None
            if record is not None:
                from .runner import run_redactor
                from .testing.cassette import Recorder
                from .testing.local_paths import Places

                client = recorder = Recorder(client, Path(record), run_redactor(plan, os.environ, endpoint),
                                             Places(plan.base_dir, run_dir))
            try:
                return await run_plan(
                    plan, client, inputs, run_root=Path(run_dir), hooks=hooks,
                    interactive=interactive, max_concurrency=max_concurrency, cache=cache,
                )
            finally:
                await client.close()
                if recorder is not None:
                    recorder.save(plan.flow.name)

        # under --json stdout is one JSON object: what Python steps and tools print goes to stderr
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            return _run_with_interrupts(main())


def run_budget(rpm: float | None, tpm: float | None, plan: Any, *, learn: bool = False) -> Any:
    """The run's rate budget (:mod:`flowrun.ratelimit`): ``--rpm`` / ``--tpm``, the flow's
    ``rate_limits:``, the config file's ``provider.rate_limits``; None when none is set."""
    from .providers import _user_config
    from .ratelimit import budget_from

    config = None
    if plan.flow.rate_limits is None:
        try:
            config = _user_config(os.environ).get("rate_limits")
        except UsageError:
            config = None  # a broken config file is reported where the provider is resolved
    return budget_from(rpm, tpm, plan.flow.rate_limits, config, learn=learn)


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
