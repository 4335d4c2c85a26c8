"""``flowrun test --update`` for recorded cases: a cassette whose requests no longer match
the flow is recorded anew, then the case is replayed from the new cassette.

Where the new recording comes from:

1. **The provider the cassette was recorded on** (its ``provider``: kind and base URL,
   no credentials), when this environment can reach it: the credentials are looked up as
   for ``flowrun run --provider KIND`` (``OPENAI_API_KEY``, ``AZURE_OPENAI_*``, the user
   config), and the flow's secrets from the environment before the case's ``env:`` (which
   usually holds fakes). Real answers stay real.
2. **Offline, the emulator's scripted model**, when the cassette was recorded on the
   emulator, has no provider, or that provider is not reachable here (no credentials; no
   TCP connection opens: refused, unknown host, no answer in 5 s): the flow's
   ``FLOW.emulator.yaml`` if present, else the emulator's default rule. The answers are
   then scripted ones, and the report says so.

Either way the old cassette is replaced only when the new run finished as the case
expects (succeeded, or failed when it has ``expect_error``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FlowrunError, UsageError
from .cassette import Recorder, Replay
from .local_paths import Places
from .load import LoadedTests
from .run_case import case_emulator, case_inputs, serve_folder
from .spec import Case

OFFLINE = "the emulator's scripted model"


@dataclass
class Rerecorded:
    """What re-recording one case did: ``source`` names where the answers came from;
    ``error`` says why nothing was written."""

    path: Path
    source: str = ""
    turns: int = 0
    error: str | None = None
    note: str | None = None


def stale(result: Any) -> bool:
    """Whether a case failed because its requests no longer match its recording."""
    return any(f.path and f.path[-1] == "recording" for f in result.failures)


def recorded_provider(replay: Replay, plan: Any, environ: Any) -> tuple[Any, str | None]:
    """The cassette's provider with this environment's credentials, or (None, why not)."""
    from ..providers import resolve_provider

    kind = replay.provider.get("kind")
    if not kind:
        return None, "the cassette does not say where it was recorded"
    if kind == "emulator" and not replay.provider.get("base_url"):
        return None, "it was recorded on the in-process emulator"
    try:
        provider = resolve_provider(kind, plan.flow.provider, replay.provider.get("base_url"), environ)
    except UsageError as exc:
        return None, f"{kind} is not configured here ({exc})"
    unreachable = _probe(provider.base_url)
    if unreachable:
        return None, f"{_where(provider)} is not reachable ({unreachable})"
    return provider, None


def _where(provider: Any) -> str:
    return f"{provider.kind} at {provider.base_url}" if provider.base_url else provider.kind


def _probe(url: str | None, timeout: float = 5.0) -> str | None:
    """Why nothing answers at ``url`` (connection refused, unknown host, no answer within
    ``timeout``), or None when a TCP connection opens."""
    import socket
    from urllib.parse import urlsplit

    if not url:
        return None
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    if not host:
        return None
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except socket.gaierror as exc:
        return f"host {host} not found: {exc.strerror or exc}"
    except OSError as exc:
        return f"cannot connect to {host}:{port}: {exc.strerror or exc}"
    return None


async def rerecord(tests: LoadedTests, plan: Any, name: str, case: Case, replay: Replay,
                   run_root: Path) -> Rerecorded:
    """Record ``case`` anew over ``replay``'s cassette (see the module docstring)."""
    real = {**case.env, **os.environ}  # a real provider gets the real secrets, where set
    provider, why_not = await asyncio.to_thread(recorded_provider, replay, plan, real)  # it probes
    if provider is not None:
        return await _record(tests, plan, name, case, replay.path, run_root, real, provider,
                             _where(provider))
    offline = {**os.environ, **case.env}  # as the case runs
    outcome = await _record(tests, plan, name, case, replay.path, run_root, offline, None, OFFLINE)
    if outcome.error is None:
        outcome.note = f"offline: {why_not}; the answers are scripted, not a real model's"
    return outcome


async def _record(tests: LoadedTests, plan: Any, name: str, case: Case, path: Path, run_root: Path,
                  environ: dict[str, str], provider: Any, source: str) -> Rerecorded:
    from ..client import ResponsesClient
    from ..emulator import EmulatorServer
    from ..errors import Cancelled
    from ..hooks import RunHooks
    from ..providers import IN_PROCESS_POLL_SECONDS, ProviderConfig
    from ..runner import run_plan, run_redactor

    outcome = Rerecorded(path, source)
    with serve_folder(tests.path.parent / case.serve if case.serve else None) as url:
        try:
            inputs = case_inputs(tests, plan, name, case, url)
            emulator = case_emulator(tests, case) if provider is None else None
        except FlowrunError as exc:
            outcome.error = exc.format()
            return outcome
        async with contextlib.AsyncExitStack() as stack:
            if emulator is not None:
                server = await stack.enter_async_context(EmulatorServer(emulator))
                provider = ProviderConfig("emulator", base_url=server.base_url, api_key="emulator",
                                          endpoint_id="in-process emulator",
                                          poll_interval_cap=IN_PROCESS_POLL_SECONDS)
            recorder = Recorder(ResponsesClient(provider), path, run_redactor(plan, environ, provider),
                                Places(plan.base_dir, run_root))
            try:
                run = await run_plan(plan, recorder, inputs, run_root=run_root, hooks=RunHooks(),
                                     environ=environ, cache=False)
            except Cancelled as exc:
                run = exc.result
            except FlowrunError as exc:
                outcome.error = exc.format()
                return outcome
            finally:
                await recorder.close()
    wanted = "failed" if case.expect_error is not None else "succeeded"
    if run.status != wanted:
        failed = "; ".join(f"{s}: {o.error}" for s, o in run.steps.items() if o.status == "failed")
        outcome.error = f"the new recording's run {run.status}" + (f" ({failed})" if failed else "") + \
            f", so {path.name} was kept"
        return outcome
    recorder.save(plan.flow.name)
    outcome.turns = len(recorder.turns)
    return outcome

