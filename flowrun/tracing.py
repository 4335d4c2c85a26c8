"""The tracing seam: where a run, its steps, model calls and tool calls open spans.

The run code asks :func:`current` for the tracer and opens its scopes (``with
tracer.step(...)``). Without tracing the tracer is :class:`Tracer`, whose scopes are one
shared null context: no OpenTelemetry import, no allocation per scope. ``flowrun.otel``
installs a tracer that makes OpenTelemetry spans (see :func:`start`).

Scopes (every one is a context manager; the value it gives has a ``done(...)`` method
that records the outcome):

- ``run(runner)``: a run of a flow (or of a dataset row, or a sub-flow);
- ``dataset(runner)``: a dataset run, the parent of its rows' runs;
- ``step(runner, step_id)``: a step; ``item(sc)``: one item of a ``for_each`` step;
- ``model_call(sc, params)``: one model turn, its retries included; ``done(response)``;
- ``tool_call(sc, call)``: a function call flowrun runs; ``done(record)``;
- ``local_tool(sc, item)``: another tool call flowrun runs (custom, shell, apply_patch).

:meth:`Tracer.child_env` gives the environment of a program flowrun starts for a tool:
``None`` (inherit) without tracing, else with ``TRACEPARENT``.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, ContextManager, Mapping

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
CONTENT_VAR = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


class _Nothing:
    """What a null scope gives: its ``done`` does nothing."""

    def done(self, *args: Any, **kwargs: Any) -> None:
        return None


NOTHING = _Nothing()
_NULL: ContextManager[Any] = contextlib.nullcontext(NOTHING)


class Tracer:
    """No tracing: every scope is the same null context."""

    active = False

    def run(self, runner: Any) -> ContextManager[Any]:
        return _NULL

    def dataset(self, runner: Any) -> ContextManager[Any]:
        return _NULL

    def step(self, runner: Any, step_id: str) -> ContextManager[Any]:
        return _NULL

    def item(self, sc: Any) -> ContextManager[Any]:
        return _NULL

    def model_call(self, sc: Any, params: dict[str, Any]) -> ContextManager[Any]:
        return _NULL

    def tool_call(self, sc: Any, call: dict[str, Any]) -> ContextManager[Any]:
        return _NULL

    def local_tool(self, sc: Any, item: dict[str, Any]) -> ContextManager[Any]:
        return _NULL

    def child_env(self) -> dict[str, str] | None:
        return None

    def shutdown(self) -> None:
        return None


_current: Tracer = Tracer()


def current() -> Tracer:
    """The process's tracer (a no-op one unless tracing was started)."""
    return _current


def install(tracer: Tracer | None) -> Tracer:
    """Make ``tracer`` (None: no tracing) the process's tracer; returns the one before."""
    global _current
    before, _current = _current, tracer or Tracer()
    return before


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def wanted(flag: bool, environ: Mapping[str, str] | None = None) -> bool:
    """Tracing is on with ``--otel``, or when an OTLP endpoint is set in the environment
    (unless ``OTEL_SDK_DISABLED=true``)."""
    env = os.environ if environ is None else environ
    if _truthy(env.get("OTEL_SDK_DISABLED")):
        return False
    return flag or any(env.get(name) for name in ENDPOINT_VARS)


def content_wanted(flag: bool, environ: Mapping[str, str] | None = None) -> bool:
    """Message content goes into spans only on request: ``--otel-content`` or
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``."""
    env = os.environ if environ is None else environ
    return flag or _truthy(env.get(CONTENT_VAR))


def start(flag: bool = False, content: bool = False, environ: Mapping[str, str] | None = None) -> Tracer:
    """Start tracing for this process when it is wanted (:func:`wanted`): spans go to
    the OTLP/HTTP endpoint of the standard ``OTEL_*`` variables. Returns the tracer now
    in use. ``--otel`` without the ``otel`` extra installed is a :class:`UsageError`; an
    endpoint in the environment without it only warns (on stderr)."""
    if not wanted(flag, environ):
        return current()
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
        import opentelemetry.sdk.trace  # noqa: F401

        from . import otel
    except ImportError as exc:
        missing = getattr(exc, "name", None) or "opentelemetry"
        message = (f"OpenTelemetry tracing needs the otel extra ({missing} is not installed); "
                   "install it with: pip install 'flowrun[otel]'")
        if flag:
            from .errors import UsageError

            raise UsageError(message, hint="or run without --otel") from None
        import sys

        sys.stderr.write(f"flowrun: OTEL_EXPORTER_OTLP_ENDPOINT is set, but {message}; "
                         "running without traces\n")
        return current()
    tracer = otel.OtelTracer.from_environment(content=content_wanted(content, environ))
    install(tracer)
    return tracer


def otel_options(command: Any) -> Any:
    """``--otel`` and ``--otel-content`` for a command that runs flows: tracing starts
    (:func:`start`) before the command does."""
    import functools

    import click

    @click.option("--otel", is_flag=True,
                  help="Send OpenTelemetry traces over OTLP/HTTP (default endpoint "
                       "http://localhost:4318; on anyway when OTEL_EXPORTER_OTLP_ENDPOINT is set).")
    @click.option("--otel-content", is_flag=True,
                  help="Put prompts, answers and tool arguments in the traces, secrets masked "
                       f"(also {CONTENT_VAR}=true).")
    @functools.wraps(command)
    def wrapper(*args: Any, otel: bool = False, otel_content: bool = False, **kwargs: Any) -> Any:
        start(otel, otel_content)
        return command(*args, **kwargs)

    return wrapper
