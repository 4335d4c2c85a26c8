"""OpenTelemetry spans of a run, after the GenAI semantic conventions (the ``otel`` extra).

The span tree of a run::

    invoke_workflow FLOW                 INTERNAL  the run (a dataset: the dataset, its rows below)
      invoke_agent STEP                  INTERNAL  a step that talks to the model
        chat MODEL                       CLIENT    one model turn, retries included
          execute_tool web_search        INTERNAL  a hosted tool the service ran in that turn
        execute_tool FUNCTION            INTERNAL  a function / command / flow tool flowrun ran
      step STEP                          INTERNAL  a for_each step (its items are invoke_agent
                                                   spans) or a python / flow step

Message content (``gen_ai.input.messages``, ``gen_ai.output.messages``,
``gen_ai.system_instructions``, tool arguments and results) is recorded only when asked
for, and always masked by the run's redactor. Installed by :func:`flowrun.tracing.start`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from typing import Any, Iterator
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from . import otel_content
from ._version import __version__
from .tracing import NOTHING, Tracer

INTERNAL, CLIENT = SpanKind.INTERNAL, SpanKind.CLIENT
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
HOSTED_TOOLS = {  # output item -> (tool name, gen_ai.tool.type); run by the service
    "web_search_call": ("web_search", "extension"),
    "file_search_call": ("file_search", "datastore"),
    "code_interpreter_call": ("code_interpreter", "extension"),
    "image_generation_call": ("image_generation", "extension"),
    "mcp_call": (None, "extension"),
    "mcp_list_tools": ("mcp_list_tools", "extension"),
}
LOCAL_TOOLS = {  # output item -> tool name; run by flowrun (function calls: tool_call)
    "custom_tool_call": None, "shell_call": "shell", "local_shell_call": "local_shell",
    "apply_patch_call": "apply_patch", "computer_call": "computer",
}
CLIENT_CALLS = ("function_call", "custom_tool_call", "shell_call", "local_shell_call",
                "apply_patch_call", "computer_call", "mcp_approval_request")
MODEL_KINDS = ("responses", "computer_use")
_propagator = TraceContextTextMapPropagator()


def provider_name(provider: Any) -> str:
    return "azure.ai.openai" if getattr(provider, "kind", None) == "azure" else "openai"


def _server(provider: Any) -> dict[str, Any]:
    url = getattr(provider, "base_url", None)
    if not url:
        return {}
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return {"server.address": parts.hostname or "", "server.port": port}


def error_type(exc: BaseException) -> str:
    """Low-cardinality: the HTTP status of an endpoint's error, ``timeout``, or the class."""
    from .errors import ClientError, StepTimeout

    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, StepTimeout):
        return "timeout"
    if isinstance(exc, ClientError) and getattr(exc, "status", None):
        return str(exc.status)
    return type(exc).__name__


def usage_attributes(usage: dict[str, Any] | None) -> dict[str, int]:
    """``usage`` of a response (or a step's total) as ``gen_ai.usage.*``."""
    usage = usage or {}
    out: dict[str, int] = {}
    for key, attr in (("input_tokens", "gen_ai.usage.input_tokens"),
                      ("output_tokens", "gen_ai.usage.output_tokens")):
        if isinstance(usage.get(key), int):
            out[attr] = usage[key]
    inp = usage.get("input_tokens_details") or {}
    outp = usage.get("output_tokens_details") or {}
    for value, attr in ((inp.get("cached_tokens"), "gen_ai.usage.cache_read.input_tokens"),
                        (inp.get("cache_write_tokens"), "gen_ai.usage.cache_creation.input_tokens"),
                        (outp.get("reasoning_tokens"), "gen_ai.usage.reasoning.output_tokens")):
        if isinstance(value, int):
            out[attr] = value
    return out


def finish_reason(response: dict[str, Any]) -> str:
    status = response.get("status")
    if status == "completed":
        calls = any(i.get("type") in CLIENT_CALLS for i in response.get("output") or [])
        return "tool_calls" if calls else "stop"
    if status == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason") or "incomplete"
        return "length" if reason == "max_output_tokens" else reason
    return "error" if status == "failed" else str(status or "unknown")


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}


def _fail(span: Any, kind: str, description: str | None = None) -> None:
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, description))


def conversation_id(sc: Any, params: dict[str, Any]) -> str:
    """The Conversation's id when the step uses one; else the run's id and the step whose
    conversation this turn extends (a ``continue:`` chain leads back to its first step)."""
    conv = params.get("conversation")
    if isinstance(conv, dict):
        conv = conv.get("id")
    if isinstance(conv, str) and conv:
        return conv
    key, step, seen = sc.key, sc.step, {sc.step_id}
    while getattr(step, "continue_", None) is not None and step.continue_.step not in seen:
        key = step.continue_.step
        seen.add(key)
        try:
            step = sc.run.plan.step(key)
        except Exception:
            break
    return f"{sc.run.store.run_id}/{key}"


class _ModelCall:
    def __init__(self, owner: "OtelTracer", span: Any, sc: Any) -> None:
        self.owner, self.span, self.sc, self.started = owner, span, sc, time.time_ns()

    def done(self, response: dict[str, Any]) -> None:
        span = self.span
        reason = finish_reason(response)
        span.set_attributes(_clean({
            "gen_ai.response.id": response.get("id"),
            "gen_ai.response.model": response.get("model"),
            "gen_ai.response.finish_reasons": [reason],
            "openai.response.service_tier": response.get("service_tier"),
            **usage_attributes(response.get("usage")),
        }))
        if self.owner.content:
            span.set_attribute("gen_ai.output.messages", otel_content.as_attribute(
                otel_content.output_messages(response, reason), self.sc.run.redactor))
        if response.get("status") == "failed":
            err = response.get("error") or {}
            _fail(span, str(err.get("code") or "response_failed"),
                  self.sc.run.redactor.text(str(err.get("message") or "")))
        self.owner.hosted_tools(self.sc, span, response, self.started)


class _ToolCall:
    def __init__(self, owner: "OtelTracer", span: Any, sc: Any) -> None:
        self.owner, self.span, self.sc = owner, span, sc

    def done(self, record: dict[str, Any]) -> None:
        if record.get("error"):
            _fail(self.span, "tool_error", record["error"])  # masked in the record
        elif self.owner.content and record.get("output") is not None:
            self.span.set_attribute("gen_ai.tool.call.result", self.sc.run.redactor.truncate(
                str(record["output"]), otel_content.MAX_CONTENT, marker="... [truncated]"))


class OtelTracer(Tracer):
    """Spans through an OpenTelemetry ``TracerProvider``; ``content``: record messages."""

    active = True

    def __init__(self, provider: Any, content: bool = False) -> None:
        self.provider = provider
        self.content = content
        self._tracer = provider.get_tracer("flowrun", __version__)

    @classmethod
    def from_environment(cls, content: bool = False) -> "OtelTracer":
        """A provider exporting in batches to the OTLP/HTTP endpoint the ``OTEL_*``
        variables name (default ``http://localhost:4318``); ``OTEL_TRACES_EXPORTER=console``
        prints spans on stderr instead. Flushed when the process exits."""
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

        attributes = {"service.version": __version__}
        if not os.environ.get("OTEL_SERVICE_NAME") and \
                "service.name=" not in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""):
            attributes["service.name"] = "flowrun"
        provider = TracerProvider(resource=Resource.create(attributes))
        kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
        if kind == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
        elif kind != "none":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            # the process's provider too, unless one is set: spans a Python tool (or a library
            # it instruments) makes go to the same place, as children of its execute_tool span
            trace.set_tracer_provider(provider)
        return cls(provider, content)

    def shutdown(self) -> None:
        self.provider.shutdown()

    # -- spans -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _span(self, name: str, kind: SpanKind, attributes: dict[str, Any], redactor: Any,
              context: Any = None) -> Iterator[Any]:
        span = self._tracer.start_span(name, context=context, kind=kind, attributes=_clean(attributes))
        with trace.use_span(span, end_on_exit=True, record_exception=False,
                            set_status_on_exception=False):
            try:
                yield span
            except BaseException as exc:
                if isinstance(exc, (Exception, asyncio.CancelledError)):
                    _fail(span, error_type(exc), redactor.text(str(exc)) if redactor else None)
                raise

    def _remote_parent(self) -> Any:
        """A run with no span around it continues the trace in ``$TRACEPARENT``."""
        if trace.get_current_span().get_span_context().is_valid or not os.environ.get("TRACEPARENT"):
            return None
        return _propagator.extract({"traceparent": os.environ["TRACEPARENT"],
                                    "tracestate": os.environ.get("TRACESTATE", "")})

    def _workflow(self, flow: str, provider: Any) -> dict[str, Any]:
        return {OPERATION: "invoke_workflow", "gen_ai.workflow.name": flow, "gen_ai.agent.name": flow,
                PROVIDER: provider_name(provider)}

    @contextlib.contextmanager
    def run(self, runner: Any) -> Iterator[Any]:
        ctx = runner.ctx
        flow = runner.plan.flow.name
        journal = getattr(runner, "journal", None)
        run_id, _, row = ctx.store.run_id.partition("#")
        attributes = {**self._workflow(flow, getattr(ctx.client, "provider", None)),
                      "flowrun.run.id": run_id, "flowrun.dataset.row": int(row) if row else None,
                      "flowrun.run.attempt": getattr(journal, "attempt", None),
                      "flowrun.flow.file": str(runner.plan.file.path) if runner.plan.file.path else None}
        with self._span(f"invoke_workflow {flow}", INTERNAL, attributes, ctx.redactor,
                        self._remote_parent()) as span:
            try:
                yield NOTHING
            finally:
                span.set_attribute("flowrun.run.status", runner.status)
                if runner.status == "failed":
                    _fail(span, _first_error_type(runner), runner.error)

    @contextlib.contextmanager
    def dataset(self, runner: Any) -> Iterator[Any]:
        spec = runner.spec
        flow = spec.plan.flow.name
        attributes = {**self._workflow(flow, getattr(runner.client, "provider", None)),
                      "flowrun.run.id": runner.run_id, "flowrun.dataset.rows": spec.total,
                      "flowrun.dataset.source": str(spec.source)}
        with self._span(f"invoke_workflow {flow}", INTERNAL, attributes, runner.redactor,
                        self._remote_parent()) as span:
            yield NOTHING
            failed = runner.counts.get("failed", 0)
            span.set_attributes({"flowrun.dataset.succeeded": runner.counts.get("succeeded", 0),
                                 "flowrun.dataset.failed": failed})
            if failed:
                _fail(span, "row_failed", f"{failed} rows failed")

    def _agent(self, ctx: Any, step: Any, sid: str) -> tuple[str, dict[str, Any]]:
        base = {"flowrun.step.id": sid, "flowrun.step.kind": step.kind}
        if step.kind in MODEL_KINDS:
            return f"invoke_agent {sid}", {OPERATION: "invoke_agent", "gen_ai.agent.name": sid,
                                           PROVIDER: provider_name(getattr(ctx.client, "provider", None)),
                                           **base}
        return f"step {sid}", base

    @contextlib.contextmanager
    def step(self, runner: Any, step_id: str) -> Iterator[Any]:
        ctx = runner.ctx
        step = runner.plan.step(step_id)
        if step.for_each is not None:
            name, attributes = f"step {step_id}", {"flowrun.step.id": step_id,
                                                   "flowrun.step.kind": step.kind, "flowrun.step.for_each": True}
        else:
            name, attributes = self._agent(ctx, step, step_id)
        with self._span(name, INTERNAL, attributes, ctx.redactor) as span:
            try:
                yield NOTHING
            finally:
                outcome = ctx.outcomes[step_id]
                span.set_attributes({"flowrun.step.status": outcome.status,
                                     **usage_attributes(outcome.usage),
                                     **_reuse(ctx, step_id, outcome.result)})
                if outcome.items is not None:
                    span.set_attribute("flowrun.step.items", len(outcome.items))
                if outcome.status == "failed":
                    result = outcome.result or next((r for r in outcome.items or []
                                                     if r.status == "failed"), None)
                    _fail(span, getattr(result, "error_type", None) or "_OTHER", outcome.error)

    @contextlib.contextmanager
    def item(self, sc: Any) -> Iterator[Any]:
        name, attributes = self._agent(sc.run, sc.step, sc.step_id)
        attributes["flowrun.step.index"] = sc.result.index
        with self._span(name, INTERNAL, attributes, sc.run.redactor) as span:
            try:
                yield NOTHING
            finally:
                result = sc.result
                span.set_attributes({"flowrun.step.status": result.status, **usage_attributes(result.usage),
                                     **_reuse(sc.run, sc.key, result)})
                if result.status == "failed":
                    _fail(span, result.error_type or "_OTHER", result.error)

    @contextlib.contextmanager
    def model_call(self, sc: Any, params: dict[str, Any]) -> Iterator[Any]:
        provider = getattr(sc.run.client, "provider", None)
        model = str(params.get("model") or "")
        text = params.get("text") or {}
        structured = isinstance(text, dict) and (text.get("format") or {}).get("type") == "json_schema"
        attributes: dict[str, Any] = {
            OPERATION: "chat", PROVIDER: provider_name(provider), "gen_ai.request.model": model,
            **_server(provider), "openai.api.type": "responses",
            "gen_ai.conversation.id": conversation_id(sc, params),
            "gen_ai.request.temperature": params.get("temperature"),
            "gen_ai.request.top_p": params.get("top_p"),
            "gen_ai.request.max_tokens": params.get("max_output_tokens"),
            "gen_ai.request.stream": True if sc.param("stream") else None,
            "gen_ai.output.type": "json" if structured else None,
            "openai.request.service_tier": params.get("service_tier"),
            "flowrun.step.id": sc.step_id, "flowrun.step.index": sc.result.index,
            "flowrun.turn": sc.state.get("turn"),
        }
        if self.content:
            redactor = sc.run.redactor
            attributes["gen_ai.input.messages"] = otel_content.as_attribute(
                otel_content.input_messages(params.get("input")), redactor)
            system = otel_content.system_instructions(params.get("instructions"))
            if system:
                attributes["gen_ai.system_instructions"] = otel_content.as_attribute(system, redactor)
            if params.get("tools"):
                attributes["gen_ai.tool.definitions"] = otel_content.as_attribute(params["tools"], redactor)
        with self._span(f"chat {model}", CLIENT, attributes, sc.run.redactor) as span:
            yield _ModelCall(self, span, sc)

    def hosted_tools(self, sc: Any, parent: Any, response: dict[str, Any], started: int) -> None:
        """An ``execute_tool`` span (inside the model call) per tool the service ran."""
        context = trace.set_span_in_context(parent)
        for item in response.get("output") or []:
            kind = item.get("type")
            if kind not in HOSTED_TOOLS:
                continue
            name, tool_type = HOSTED_TOOLS[kind]
            name = name or str(item.get("name") or "mcp")
            attributes = _clean({OPERATION: "execute_tool", "gen_ai.tool.name": name,
                                 "gen_ai.tool.type": tool_type, "gen_ai.tool.call.id": item.get("id"),
                                 "flowrun.tool.kind": kind, "flowrun.mcp.server": item.get("server_label")})
            if self.content and kind == "mcp_call":
                attributes["gen_ai.tool.call.arguments"] = sc.run.redactor.text(str(item.get("arguments") or ""))
                if item.get("output") is not None:
                    attributes["gen_ai.tool.call.result"] = sc.run.redactor.truncate(
                        str(item["output"]), otel_content.MAX_CONTENT, marker="... [truncated]")
            span = self._tracer.start_span(f"execute_tool {name}", context=context, kind=INTERNAL,
                                           attributes=attributes, start_time=started)
            if item.get("error") or item.get("status") == "failed":
                _fail(span, "tool_error", sc.run.redactor.text(str(item.get("error") or "failed")))
            span.end()

    @contextlib.contextmanager
    def tool_call(self, sc: Any, call: dict[str, Any]) -> Iterator[Any]:
        name = str(call.get("name") or "")
        tool = sc.functions.get(name)
        attributes = {OPERATION: "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.type": "function",
                      "gen_ai.tool.call.id": call.get("call_id"),
                      "gen_ai.tool.description": getattr(tool, "description", None),
                      "flowrun.tool.kind": getattr(tool, "kind", None), "flowrun.step.id": sc.step_id}
        if self.content:
            attributes["gen_ai.tool.call.arguments"] = sc.run.redactor.truncate(
                str(call.get("arguments") or ""), otel_content.MAX_CONTENT, marker="... [truncated]")
        with self._span(f"execute_tool {name}", INTERNAL, attributes, sc.run.redactor) as span:
            yield _ToolCall(self, span, sc)

    def local_tool(self, sc: Any, item: dict[str, Any]) -> Any:
        kind = item.get("type")
        if kind not in LOCAL_TOOLS:
            return contextlib.nullcontext(NOTHING)
        name = LOCAL_TOOLS[kind] or str(item.get("name") or kind)
        attributes = {OPERATION: "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.type": "function",
                      "gen_ai.tool.call.id": item.get("call_id"), "flowrun.tool.kind": kind,
                      "flowrun.step.id": sc.step_id}
        return self._span(f"execute_tool {name}", INTERNAL, attributes, sc.run.redactor)

    def child_env(self) -> dict[str, str] | None:
        """This process's environment, with the current span as ``TRACEPARENT``."""
        carrier: dict[str, str] = {}
        _propagator.inject(carrier)
        env = {k: v for k, v in os.environ.items() if k not in ("TRACEPARENT", "TRACESTATE")}
        env.update({k.upper(): v for k, v in carrier.items()})
        return env


def _reuse(ctx: Any, key: str, result: Any) -> dict[str, bool]:
    """Whether the result came from an earlier attempt of the run (a resume) or the step
    cache: no model call spans below it then."""
    out = {}
    journal = getattr(ctx.store, "journal", None)
    if journal is not None and key in getattr(journal, "reused", ()):
        out["flowrun.step.reused"] = True
    if getattr(result, "cached", False):
        out["flowrun.step.cached"] = True
    return out


def _first_error_type(runner: Any) -> str:
    for outcome in runner.ctx.outcomes.values():
        if outcome.status == "failed":
            result = outcome.result or next((r for r in outcome.items or [] if r.status == "failed"), None)
            return getattr(result, "error_type", None) or "step_failed"
    return "_OTHER"
