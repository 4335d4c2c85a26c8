"""Test helpers: spec conformance straight from the subset file with jsonschema (not via
the emulator's own conformance module), and a raw SSE parser."""
from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REPO = Path(__file__).resolve().parents[2]
SUBSET = REPO / "flowrun" / "emulator" / "openapi_subset.json"
_URI = "urn:test:openai-subset"

# ---- spec conformance, straight from the subset file with jsonschema (not via the emulator's code)

_registry = Registry().with_resource(
    _URI, Resource(contents=json.loads(SUBSET.read_text()), specification=DRAFT202012))
_validators: dict[str, Draft202012Validator] = {}


def spec_errors(name: str, instance) -> list[str]:
    if name not in _validators:
        _validators[name] = Draft202012Validator({"$ref": f"{_URI}#/components/schemas/{name}"},
                                                 registry=_registry)
    return [f"{list(e.absolute_path)}: {e.message[:300]}" for e in _validators[name].iter_errors(instance)]


def assert_conforms(name: str, instance) -> None:
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
