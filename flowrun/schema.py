"""The JSON Schema of flow files, generated from :mod:`flowrun.spec`.

``schemas/flow.schema.json`` is this output, checked in; a test fails when they drift.
Editors use it through ``# yaml-language-server: $schema=...``.
"""

from __future__ import annotations

import json
from typing import Any

SCHEMA_ID = "https://github.com/flowrun/flowrun/schemas/flow.schema.json"


def flow_schema() -> dict[str, Any]:
    """The flow file JSON Schema (draft 2020-12)."""
    from .spec import Flow

    schema = _sorted_enums(Flow.model_json_schema(by_alias=True, mode="validation"))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
    }


def _sorted_enums(node: Any) -> Any:
    """Enums in a fixed order. ``typing`` caches unions by equality, and ``Literal``
    equality ignores order, so a Literal built elsewhere (the openai SDK's types) can
    replace ours and reorder its values depending on what was imported first."""
    if isinstance(node, dict):
        out = {k: _sorted_enums(v) for k, v in node.items()}
        if isinstance(out.get("enum"), list):
            out["enum"] = sorted(out["enum"], key=lambda v: (str(type(v)), str(v)))
        return out
    if isinstance(node, list):
        return [_sorted_enums(v) for v in node]
    return node


def schema_text() -> str:
    """The schema as the exact text of ``schemas/flow.schema.json``."""
    return json.dumps(flow_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


TEST_SCHEMA_ID = "https://github.com/flowrun/flowrun/schemas/test.schema.json"


def test_schema() -> dict[str, Any]:
    """The test file (``*.test.yaml``) JSON Schema (draft 2020-12)."""
    from .testing.spec import TestFile

    schema = _sorted_enums(TestFile.model_json_schema(by_alias=True, mode="validation"))
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": TEST_SCHEMA_ID, **schema}


def test_schema_text() -> str:
    """The schema as the exact text of ``schemas/test.schema.json``."""
    return json.dumps(test_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
