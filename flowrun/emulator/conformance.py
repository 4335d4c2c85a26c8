"""Spec conformance: validate JSON against the OpenAI OpenAPI schemas (JSON Schema 2020-12).

The schemas come from ``openapi_subset.json`` (built by ``scripts/build_openapi_subset.py``
from ``shared/specs/openai-openapi.yml``), loaded once and registered as a single
``referencing`` resource so ``$ref: '#/components/schemas/X'`` resolves as written.
Validators are compiled once per schema name and cached.

The emulator checks every ``POST /responses`` body with :func:`check_request` and answers
a non-conforming one with HTTP 400 naming the offending path, as the real service does.
Besides the schema it rejects unknown top-level parameters (``Unknown parameter: 'x'``).

Narrow, documented exceptions where the spec is stricter than the real service:

* ``FunctionTool.required`` lists ``strict``; the service (and the Azure guide's own
  function-calling example) accepts a function tool without it, defaulting to strict.
  Request validation drops ``strict`` from that list. Responses are validated unpatched
  (the emulator always echoes ``strict``).
* ``MCPApprovalResponse.required`` lists ``request_id``, which is not even one of its
  properties; the SDK and the service use ``approval_request_id``. Dropped for requests.
  (``MCPApprovalResponseResource`` has the same bug; an emulator answer listing such an
  item should carry ``request_id`` too, which the open schema allows.)
"""
from __future__ import annotations

import copy
import json
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .errors import APIError

SUBSET_PATH = Path(__file__).with_name("openapi_subset.json")
_URI = "urn:flowrun:openai-openapi-subset"


# schema -> names dropped from its "required" list for request validation (see docstring)
REQUEST_RELAXATIONS = {"FunctionTool": ("strict",), "MCPApprovalResponse": ("request_id",)}


def _relax_for_requests(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for name, dropped in REQUEST_RELAXATIONS.items():
        schema = doc["components"]["schemas"][name]
        schema["required"] = [r for r in schema["required"] if r not in dropped]
    return doc


@lru_cache(maxsize=1)
def load_subset() -> dict[str, Any]:
    """The parsed subset document ``{"info", "components": {"schemas": {...}}}``."""
    return json.loads(SUBSET_PATH.read_text(encoding="utf-8"))


@lru_cache(maxsize=2)
def _registry(request: bool) -> Registry:
    doc = _relax_for_requests(load_subset()) if request else load_subset()
    return Registry().with_resource(_URI, Resource(contents=doc, specification=DRAFT202012))


@lru_cache(maxsize=None)
def validator(name: str, request: bool = False) -> Draft202012Validator:
    """A compiled validator for ``components/schemas/<name>``."""
    if name not in load_subset()["components"]["schemas"]:
        raise KeyError(f"schema {name!r} is not in the OpenAPI subset")
    return Draft202012Validator({"$ref": f"{_URI}#/components/schemas/{name}"},
                                registry=_registry(request))


@lru_cache(maxsize=1)
def create_response_parameters() -> frozenset[str]:
    """All top-level property names ``CreateResponse`` allows (through its ``allOf``)."""
    schemas = load_subset()["components"]["schemas"]
    names: set[str] = set()

    def collect(schema: dict[str, Any]) -> None:
        if "$ref" in schema:
            collect(schemas[schema["$ref"].rsplit("/", 1)[-1]])
        names.update(schema.get("properties", {}))
        for part in schema.get("allOf", []):
            collect(part)

    collect(schemas["CreateResponse"])
    return frozenset(names)


def _path(error: ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_WEAK = ("anyOf", "oneOf", "type", "const", "enum")


def _explain(error: ValidationError) -> tuple[str, str]:
    """``(path, message)`` for one top-level error, the most specific one underneath it."""
    path, message, _ = _deepest(error)
    return path, message


def _deepest(error: ValidationError) -> tuple[str, str, tuple[int, bool]]:
    """Descend into ``anyOf``/``oneOf`` failures (following the ``type`` discriminator
    when the instance has one) and return the deepest, most concrete violation as
    ``(path, message, rank)`` instead of "is not valid under any of the given schemas"."""
    here = (len(error.absolute_path), error.validator not in _WEAK)
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        return _path(error), error.message, here
    branches: dict[Any, list[ValidationError]] = defaultdict(list)
    for sub in error.context:
        branches[sub.relative_schema_path[0]].append(sub)
    inst = error.instance
    groups = list(branches.values())
    if isinstance(inst, dict) and isinstance(inst.get("type"), str):
        groups = [errs for errs in groups if not any(list(e.relative_path) == ["type"] for e in errs)]
        if not groups:
            where = _path(error)
            return (f"{where}.type" if where else "type",
                    f"{inst['type']!r} is not a valid type here", (here[0], False))
    found = [_deepest(e) for errs in groups for e in errs]
    best = max(found, key=lambda f: f[2])
    if best[2][0] > here[0] or best[2][1]:
        return best
    types = sorted({str(e.validator_value) for errs in groups for e in errs if e.validator == "type"})
    if types and all(e.validator in ("type", "anyOf", "oneOf") for errs in groups for e in errs):
        return _path(error), f"{inst!r} is not of type {' or '.join(types)}", here
    return best


def problems(name: str, instance: Any, request: bool = False) -> list[str]:
    """Human-readable violations of schema ``name`` (empty when ``instance`` conforms)."""
    val = validator(name, request)
    if val.is_valid(instance):
        return []
    return [f"{path or '<root>'}: {message}"
            for path, message in (_explain(err) for err in val.iter_errors(instance))]


def check_request(body: Any) -> None:
    """Raise a 400 :class:`APIError` if ``body`` is not a conforming ``CreateResponse``."""
    if not isinstance(body, dict):
        raise APIError(400, "The request body must be a JSON object.")
    unknown = sorted(set(body) - create_response_parameters())
    if unknown:
        raise APIError(400, f"Unknown parameter: '{unknown[0]}'.", param=unknown[0],
                       code="unknown_parameter")
    check_body("CreateResponse", body)


def check_body(name: str, body: Any) -> None:
    """Raise a 400 :class:`APIError` naming the deepest violation of request schema ``name``."""
    if not isinstance(body, dict):
        raise APIError(400, "The request body must be a JSON object.")
    val = validator(name, request=True)
    if val.is_valid(body):
        return
    where, message, _ = max((_deepest(e) for e in val.iter_errors(body)), key=lambda f: f[2])
    message = message if len(message) <= 300 else message[:297] + "..."
    raise APIError(400, f"Invalid request body at '{where or '<root>'}': {message}",
                   param=where or None, code="invalid_value")
