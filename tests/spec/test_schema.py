"""schemas/flow.schema.json: generated from the models, documented, and in agreement
with the loader on the example flows and fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from jsonschema import Draft202012Validator

from flowrun.errors import SpecError
from flowrun.loader import load_file, parse_yaml, read_text
from flowrun.schema import flow_schema, schema_text
from flowkit import example_flows

ROOT = Path(__file__).parents[2]
SCHEMA_FILE = ROOT / "schemas" / "flow.schema.json"
EXAMPLES = example_flows()
VALID = sorted((ROOT / "tests" / "fixtures" / "valid").glob("*.yaml"))
BROKEN = sorted(p for p in (ROOT / "tests" / "fixtures" / "broken").glob("*.yaml")
                if p.name != "expectations.yaml")


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def document(path: Path) -> Any:
    data, _ = parse_yaml(read_text(path), str(path))
    return data


def test_checked_in_schema_is_the_generated_one() -> None:
    # if this fails after a model change: .venv/bin/flowrun schema > schemas/flow.schema.json
    assert schema_text() == SCHEMA_FILE.read_text(encoding="utf-8")


def test_schema_header() -> None:
    schema = flow_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/schemas/flow.schema.json")
    assert schema["title"] == "Flow"
    assert set(schema["required"]) == {"name", "steps"}
    assert schema["additionalProperties"] is False


def _properties(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            for name, prop in props.items():
                yield f"{where}/properties/{name}", prop
        for key, value in node.items():
            yield from _properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _properties(value, f"{where}/{i}")


def test_every_property_has_a_description() -> None:
    props = list(_properties(flow_schema()))
    assert len(props) > 100  # $defs included
    missing = [where for where, prop in props if not prop.get("description", "").strip()]
    assert missing == []


def test_every_definition_has_a_description() -> None:
    defs = flow_schema()["$defs"]
    assert [name for name, d in defs.items() if not d.get("description")] == []


def test_schema_is_closed() -> None:
    # every object in the flow language rejects unknown keys, as the loader does
    open_models = [name for name, d in flow_schema()["$defs"].items()
                   if d.get("type") == "object" and d.get("additionalProperties") is not False]
    assert open_models == []


def test_there_are_example_flows() -> None:
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("path", EXAMPLES + VALID, ids=lambda p: p.name)
def test_valid_flows_match_the_json_schema(path: Path, validator: Draft202012Validator) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(document(path))]
    assert errors == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_point_editors_at_the_schema(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=../../schemas/flow.schema.json"
    assert (path.parent / "../../schemas/flow.schema.json").resolve() == SCHEMA_FILE.resolve()


# Checks the models make that the JSON Schema does not express (model validators and
# key patterns). Editors accept these files; `flowrun validate` does not.
SCHEMA_GAPS = {
    "complex-key.yaml",  # step ids: no propertyNames pattern
    "invalid-step-id.yaml",  # same
    "input-default-wrong-type.yaml",  # default vs type
    "step-no-kind.yaml",  # exactly one of input / computer_use / flow
    "step-two-kinds.yaml",  # same
    "with-without-flow.yaml",  # with needs flow
    "file-search-bad-filter.yaml",  # the filter tree is checked by a validator
}


def test_json_schema_rejects_what_the_models_reject(validator: Draft202012Validator) -> None:
    accepted = set()
    for path in BROKEN:
        try:
            load_file(path)
            continue  # a plan-level problem (references, cycles): not the schema's job
        except SpecError:
            pass
        try:
            data = document(path)
        except SpecError:
            continue  # not YAML at all
        if data is not None and validator.is_valid(data):
            accepted.add(path.name)
    assert accepted == SCHEMA_GAPS
