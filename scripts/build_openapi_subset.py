#!/usr/bin/env python3
"""Extract the Responses-API slice of the OpenAI OpenAPI spec for the emulator.

Usage: python scripts/build_openapi_subset.py [SPEC_YAML] [--out PATH]

Reads the official spec (default ``../shared/specs/openai-openapi.yml`` relative to
the repo root), takes the closure of component schemas referenced from the roots
below, drops documentation-only keywords (descriptions, examples, ``x-*``), and writes
``flowrun/emulator/openapi_subset.json`` with sorted keys so the output is stable.
``$ref``s keep their ``#/components/schemas/NAME`` form, so the file is itself a valid
OpenAPI-shaped document that :mod:`flowrun.emulator.conformance` loads as one resource.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOTS = (
    "CreateResponse", "Response", "ResponseStreamEvent", "ResponseItemList", "ErrorResponse", "Error",
    "OpenAIFile", "ContainerResource", "ContainerListResource", "ContainerFileResource",
    "ContainerFileListResource",
    "CreateVectorStoreRequest", "UpdateVectorStoreRequest", "VectorStoreObject", "ListVectorStoresResponse",
    "DeleteVectorStoreResponse", "CreateVectorStoreFileRequest", "UpdateVectorStoreFileAttributesRequest",
    "VectorStoreFileObject", "ListVectorStoreFilesResponse", "DeleteVectorStoreFileResponse",
    "VectorStoreFileContentResponse", "CreateVectorStoreFileBatchRequest", "VectorStoreFileBatchObject",
    "VectorStoreSearchRequest", "VectorStoreSearchResultsPage",
    # conversations and compaction
    "CreateConversationBody", "UpdateConversationBody", "ConversationResource",
    "DeletedConversationResource", "ConversationItem", "ConversationItemList",
    "CompactResponseMethodPublicBody", "CompactResource",
    # batches
    "CreateBatchRequest", "Batch", "ListBatchesResponse",
)
REF_PREFIX = "#/components/schemas/"
DROP_KEYS = {"description", "example", "examples", "title", "deprecated", "externalDocs"}
# Maps whose keys are names (property names, definitions), not JSON-Schema keywords.
NAME_MAPS = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = REPO.parent / "shared" / "specs" / "openai-openapi.yml"
DEFAULT_OUT = REPO / "flowrun" / "emulator" / "openapi_subset.json"


def clean(node, in_name_map: bool = False):
    """Return ``node`` without documentation-only keywords."""
    if isinstance(node, list):
        return [clean(x) for x in node]
    if not isinstance(node, dict):
        return node
    if in_name_map:
        return {k: clean(v) for k, v in node.items()}
    out = {}
    for key, value in node.items():
        if key in DROP_KEYS or key.startswith("x-"):
            continue
        out[key] = clean(value, in_name_map=key in NAME_MAPS)
    return out


def refs_in(node) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            ref = cur.get("$ref")
            if isinstance(ref, str):
                if not ref.startswith(REF_PREFIX):
                    raise SystemExit(f"unsupported $ref {ref!r}")
                found.add(ref[len(REF_PREFIX):])
            stack.extend(cur.values())
        elif isinstance(cur, list):
            stack.extend(cur)
    return found


def build(spec: dict) -> dict:
    schemas = spec["components"]["schemas"]
    todo, seen = list(ROOTS), {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in schemas:
            raise SystemExit(f"schema {name!r} referenced but not defined in the spec")
        seen[name] = clean(schemas[name])
        todo.extend(refs_in(seen[name]) - seen.keys())
    return {
        "info": {"source": "openai-openapi.yml", "version": spec.get("info", {}).get("version"),
                 "roots": list(ROOTS)},
        "components": {"schemas": seen},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default=str(DEFAULT_SPEC))
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(args.spec, encoding="utf-8") as fh:
        spec = yaml.load(fh, Loader=loader)
    subset = build(spec)
    text = json.dumps(subset, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: {len(subset['components']['schemas'])} schemas, {len(text)} bytes",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
