"""Running the emulator: in a background thread (:class:`EmulatorServer`) or blocking
(:func:`serve`, behind ``flowrun emulator``)."""
from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from .connections import ConnectionLimits
from .server import create_app
from .service import Emulator


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _config(emulator: Emulator, limits: ConnectionLimits | None, *, in_process: bool) -> uvicorn.Config:
    return uvicorn.Config(create_app(emulator), log_level="warning", access_log=False,
                          ws="none", lifespan="off", timeout_graceful_shutdown=1,
                          **(limits or ConnectionLimits()).uvicorn_settings(),
                          **({"log_config": None} if in_process else {}))


class EmulatorServer:
    """The emulator on a local port, served by uvicorn in a background thread.

    ``with EmulatorServer() as server:`` (or ``async with``) starts it on 127.0.0.1 and a
    free port; ``server.base_url`` is the OpenAI-style base URL
    (``http://127.0.0.1:PORT/v1``), ``server.azure_base_url`` the Azure v1-style one,
    ``server.url`` the bare origin and ``server.emulator`` the :class:`Emulator`.
    ``limits`` bounds each connection (:class:`~.connections.ConnectionLimits`).
    Extra keyword arguments build the Emulator when none is given.
    """

    def __init__(self, emulator: Emulator | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 limits: ConnectionLimits | None = None, **emulator_kwargs: Any) -> None:
        self.emulator = emulator if emulator is not None else Emulator(**emulator_kwargs)
        self.limits = limits
        self.host, self.port = host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def azure_base_url(self) -> str:
        return self.url + "/openai/v1"

    def start(self) -> "EmulatorServer":
        if self._thread is not None:
            raise RuntimeError("EmulatorServer already started")
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(_config(self.emulator, self.limits, in_process=True))
        self._thread = threading.Thread(target=self._run, args=(sock,), daemon=True,
                                        name=f"flowrun-emulator-{self.port}")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"emulator failed to start: {self._error!r}")
            time.sleep(0.002)
        return self

    def _run(self, sock: socket.socket) -> None:
        assert self._server is not None
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._server.serve(sockets=[sock]))
        except BaseException as exc:  # reported by start()
            self._error = exc
        finally:
            try:
                for conn in list(self._server.server_state.connections):
                    if conn.transport is not None:
                        conn.transport.close()
                loop.run_until_complete(self.emulator.aclose())
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                sock.close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> "EmulatorServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def __aenter__(self) -> "EmulatorServer":
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await asyncio.to_thread(self.stop)


def serve(port: int = 8000, host: str = "127.0.0.1", latency_ms: int | None = None,
          faults: str | None = None, script: str | Path | None = None,
          rpm: float | None = None, tpm: float | None = None, api_key: str | None = None,
          batch_delay_ms: int | None = None, batch_token_limit: str | int | None = None) -> None:
    """Serve the emulator in the foreground until interrupted (``flowrun emulator``).

    Unset arguments fall back to ``FLOWRUN_EMULATOR_LATENCY_MS``,
    ``FLOWRUN_EMULATOR_FAULTS``, ``FLOWRUN_EMULATOR_SCRIPT`` and ``FLOWRUN_EMULATOR_RPM`` /
    ``FLOWRUN_EMULATOR_TPM`` (the quotas of :mod:`.quota`), and the Batch API settings to
    ``FLOWRUN_EMULATOR_BATCH_*`` (:mod:`.batch_settings`). Raises
    :class:`~.script.ScriptError`, :class:`~.faults.FaultSpecError` or ``ValueError``
    for bad settings and ``OSError`` when the port cannot be bound - before serving.
    On Ctrl+C (SIGINT) it shuts down cleanly and then re-raises ``KeyboardInterrupt``
    (uvicorn's behaviour), which the CLI should map to exit code 130.
    """
    from .quota import quota_from_env, set_quota

    emulator = Emulator.from_env(script=script, faults=faults, latency_ms=latency_ms, api_key=api_key)
    quota_from_env(emulator)
    if rpm or tpm:
        set_quota(emulator, rpm, tpm, initial=True)
    batch = {k: v for k, v in (("delay_ms", batch_delay_ms), ("token_limit", batch_token_limit)) if v is not None}
    if batch:
        from .batch_settings import set_batch_settings

        set_batch_settings(emulator, initial=True, **batch)
    sock = _bind(host, port)
    actual = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"flowrun emulator listening on http://{shown}:{actual}/v1 "
          f"(Azure-style: http://{shown}:{actual}/openai/v1); Ctrl+C to stop", file=sys.stderr, flush=True)
    uvicorn.Server(_config(emulator, None, in_process=False)).run(sockets=[sock])
