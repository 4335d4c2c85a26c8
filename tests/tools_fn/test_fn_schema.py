"""JSON Schema from type hints and docstrings, strict mode, and argument conversion."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import jsonschema
import pytest
from pydantic import BaseModel, Field

from flowrun.emulator.function_tools import _strict_problem
from flowrun.tools.functions import inputs_schema
from flowrun.tools.schema_from_hints import (
    NotStrict,
    SchemaProblem,
    drop_optional_nulls,
    make_strict,
    parse_docstring,
    signature_schema,
)


class Opaque:
    """Not something pydantic can describe."""


class Address(BaseModel):
    """A postal address."""

    street: str
    city: str = "Paris"


def kitchen_sink(
    name: str,
    count: int,
    ratio: float,
    active: bool,
    tags: list[str],
    note: Optional[str] = None,
    level: Literal["low", "high"] = "low",
    address: Address | None = None,
    limit: int = 10,
) -> str:
    """Do everything at once.

    A second paragraph of description.

    Args:
        name: The name to use.
        count (int): How many,
            over two lines.
        tags: Labels.
        level: How loud.

    Returns:
        A string.
    """
    return ""


def test_types_defaults_and_docstring():
    sig = signature_schema(kitchen_sink)
    assert sig.description == "Do everything at once.\n\nA second paragraph of description."
    props = sig.schema["properties"]
    assert props["name"] == {"type": "string", "description": "The name to use."}
    assert props["count"] == {"type": "integer", "description": "How many, over two lines."}
    assert props["ratio"] == {"type": "number"}
    assert props["active"] == {"type": "boolean"}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}, "description": "Labels."}
    assert props["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    assert props["level"] == {"type": "string", "enum": ["low", "high"], "default": "low",
                              "description": "How loud."}
    assert props["address"] == {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}], "default": None}
    assert props["limit"] == {"type": "integer", "default": 10}
    assert sig.schema["required"] == ["name", "count", "ratio", "active", "tags"]
    assert sig.schema["$defs"]["Address"] == {
        "type": "object", "description": "A postal address.", "required": ["street"],
        "properties": {"street": {"type": "string"}, "city": {"type": "string", "default": "Paris"}},
    }
    assert "title" not in sig.schema and "title" not in props["name"]


def test_strict_form_is_nullable_required_and_accepted_by_the_emulator_check():
    sig = signature_schema(kitchen_sink)
    strict = make_strict(sig.schema)
    jsonschema.Draft202012Validator.check_schema(strict)
    assert strict["required"] == list(strict["properties"])
    assert strict["additionalProperties"] is False
    assert strict["properties"]["limit"] == {"anyOf": [{"type": "integer"}, {"type": "null"}],
                                             "description": "Default: 10."}
    assert strict["properties"]["level"] == {
        "anyOf": [{"type": "string", "enum": ["low", "high"]}, {"type": "null"}],
        "description": "How loud. Default: \"low\"."}
    assert strict["properties"]["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    address = strict["$defs"]["Address"]
    assert address["required"] == ["street", "city"] and address["additionalProperties"] is False
    assert _strict_problem(strict, ()) is None
    assert _strict_problem(sig.schema, ()) is not None  # the raw schema would be refused

    args = {"name": "n", "count": 1, "ratio": 0.5, "active": True, "tags": ["a"], "note": None,
            "level": None, "address": {"street": "Main", "city": None}, "limit": None}
    jsonschema.validate(args, strict)
    cleaned = drop_optional_nulls(args, sig.schema)
    assert cleaned == {"name": "n", "count": 1, "ratio": 0.5, "active": True, "tags": ["a"],
                       "note": None, "address": {"street": "Main"}}
    positional, kwargs = sig.call_arguments(cleaned)
    assert positional == []
    assert kwargs["address"] == Address(street="Main", city="Paris")
    assert kwargs["limit"] == 10 and kwargs["level"] == "low" and kwargs["note"] is None


def test_hidden_parameters_are_left_out_but_still_converted():
    def f(query: str, api_key: str, retries: int = 2) -> str:
        return ""

    sig = signature_schema(f, {"api_key", "retries"})
    assert list(sig.schema["properties"]) == ["query"]
    assert sig.schema["required"] == ["query"]
    _, kwargs = sig.call_arguments({"query": "q", "api_key": "k", "retries": "3"})
    assert kwargs == {"query": "q", "api_key": "k", "retries": 3}
    with pytest.raises(SchemaProblem, match="bind names 'token', which is not a parameter"):
        signature_schema(f, {"token"})


def test_pydantic_field_descriptions_and_positional_only():
    def g(a: int, /, b: Annotated[str, Field(description="Bee.", max_length=3)]) -> None:
        """G."""

    sig = signature_schema(g)
    assert sig.schema["properties"]["b"] == {"type": "string", "maxLength": 3, "description": "Bee."}
    assert sig.positional_only == ["a"]
    assert sig.call_arguments({"a": 1, "b": "x"}) == ([1], {"b": "x"})


def test_unschemable_types_and_non_strict_shapes():
    def h(x: Opaque) -> None: ...

    with pytest.raises(SchemaProblem, match="give `parameters:` explicitly"):
        signature_schema(h)

    def d(counts: dict[str, int]) -> None: ...

    with pytest.raises(NotStrict, match="free-form object"):
        make_strict(signature_schema(d).schema)

    def anything(x) -> None: ...

    with pytest.raises(NotStrict, match="without a type"):
        make_strict(signature_schema(anything).schema)

    with pytest.raises(NotStrict, match="'oneOf' is not supported"):
        make_strict({"type": "object", "properties": {"x": {"oneOf": [{"type": "string"}]}}})


def test_sphinx_and_numpy_docstrings():
    desc, params = parse_docstring("""Sphinx style.

    :param city: The city.
    :param int days: Days
        ahead.
    :returns: nothing
    """)
    assert desc == "Sphinx style."
    assert params == {"city": "The city.", "days": "Days ahead."}

    desc, params = parse_docstring("""Numpy style.

    Parameters
    ----------
    city : str
        The city.
    days : int, optional
        Days ahead.

    Returns
    -------
    str
    """)
    assert desc == "Numpy style."
    assert params == {"city": "The city.", "days": "Days ahead."}


def test_flow_inputs_schema():
    from flowrun.spec import Flow

    flow = Flow.model_validate({
        "name": "x",
        "inputs": {"city": "string", "n": {"type": "integer", "default": 3},
                   "doc": {"type": "file", "description": "The report"},
                   "mode": {"type": "string", "enum": ["a", "b"], "default": "a"}},
        "steps": {"s": {"input": "hi"}},
    })
    schema = inputs_schema(flow)
    assert schema["required"] == ["city", "doc"]
    assert schema["properties"]["doc"] == {"type": "string", "description": "The report (path of a file)"}
    assert schema["properties"]["mode"] == {"type": "string", "enum": ["a", "b"], "default": "a"}
    strict = make_strict(schema)
    assert strict["required"] == ["city", "n", "doc", "mode"]
    assert _strict_problem(strict, ()) is None
