"""Fixtures for the tracing tests: ``spans``, an in-memory span exporter behind the flowrun
tracer for one test (the process's tracer is restored after it)."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowrun import tracing
from flowrun.otel import OtelTracer


class Spans:
    """The spans a test's runs made, finished ones only, with tree helpers."""

    def __init__(self, exporter: InMemorySpanExporter, tracer: OtelTracer) -> None:
        self.exporter, self.tracer = exporter, tracer

    @property
    def all(self) -> list:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list:
        return [s for s in self.all if s.name == name]

    def one(self, name: str):
        found = self.named(name)
        assert len(found) == 1, f"{len(found)} spans named {name!r}; all: {sorted(s.name for s in self.all)}"
        return found[0]

    def children(self, parent) -> list:
        return [s for s in self.all if s.parent is not None and s.parent.span_id == parent.context.span_id]

    def parent(self, span):
        if span.parent is None:
            return None
        return next(s for s in self.all if s.context.span_id == span.parent.span_id)


def _install(content: bool):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = OtelTracer(provider, content=content)
    return Spans(exporter, tracer)


@pytest.fixture
def spans():
    found = _install(content=False)
    before = tracing.install(found.tracer)
    yield found
    tracing.install(before)


@pytest.fixture
def content_spans():
    found = _install(content=True)
    before = tracing.install(found.tracer)
    yield found
    tracing.install(before)
