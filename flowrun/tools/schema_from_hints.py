"""JSON Schema for function tools: from a Python signature (type hints + docstring), made
strict-compatible, and the small helpers the call path needs.

- :func:`signature_schema` builds a pydantic model from the function's signature (one
  field per parameter, the parameter's name as alias, the docstring's ``Args:`` text as
  description) and returns its JSON Schema together with the model, which later turns
  the model's JSON arguments into Python values (a ``dict`` into a pydantic model, ...).
- :func:`make_strict` rewrites a schema for ``strict: true`` function calling: every
  object gets ``additionalProperties: false`` and lists all its properties as
  ``required``; a property that was optional becomes nullable (null = "use the default",
  see :func:`drop_optional_nulls`); ``default`` is removed (strict mode does not allow it)
  and mentioned in the description instead. A schema strict mode cannot express (a
  free-form ``dict``, ``Any``, ``oneOf``/``allOf``, tuples, ...) raises :class:`NotStrict`
  and the tool is sent with ``strict: false``.
"""

from __future__ import annotations

import copy
import inspect
import json
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, create_model

# --------------------------------------------------------------------------- docstrings

_GOOGLE_ARGS = re.compile(
    r"^(args|arguments|parameters|params|keyword args|keyword arguments|other parameters)\s*:\s*$",
    re.I,
)
_GOOGLE_OTHER = re.compile(
    r"^(returns?|yields?|raises?|examples?|notes?|see also|warnings?|references|todo|"
    r"attributes|methods)\s*:\s*$",
    re.I,
)
_NUMPY_HEADER = re.compile(r"^-{3,}\s*$")
_SPHINX_PARAM = re.compile(r"^:param\s+(?:[^:]*?\s+)?(\*{0,2}\w+)\s*:\s*(.*)$")
_SPHINX_OTHER = re.compile(r"^:(returns?|rtype|raises?|type|yields?|ytype|var|ivar|cvar)\b")
_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")  # google: name (type): text
_NUMPY_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?::\s*(.*))?$")  # numpy: name : type


def parse_docstring(doc: str | None) -> tuple[str | None, dict[str, str]]:
    """``(description, {parameter: description})`` from a Google, NumPy or Sphinx style
    docstring. The description is the text before the first section."""
    if not doc:
        return None, {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    i, in_summary = 0, True
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if _GOOGLE_ARGS.match(stripped) and not line.startswith(" "):
            in_summary = False
            i = _google_section(lines, i + 1, params)
            continue
        if stripped.lower() in ("parameters", "other parameters") and _NUMPY_HEADER.match(nxt):
            in_summary = False
            i = _numpy_section(lines, i + 2, params)
            continue
        if _GOOGLE_OTHER.match(stripped) or _NUMPY_HEADER.match(nxt) and stripped:
            in_summary = False
        m = _SPHINX_PARAM.match(stripped)
        if m:
            in_summary = False
            text = [m.group(2).strip()]
            i += 1
            while i < len(lines) and lines[i].startswith((" ", "\t")) and lines[i].strip():
                text.append(lines[i].strip())
                i += 1
            params[m.group(1).lstrip("*")] = " ".join(t for t in text if t)
            continue
        if _SPHINX_OTHER.match(stripped):
            in_summary = False
        if in_summary:
            summary.append(line)
        i += 1
    description = "\n".join(summary).strip() or None
    return description, {k: v for k, v in params.items() if v}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _google_section(lines: list[str], i: int, params: dict[str, str]) -> int:
    entry_indent: int | None = None
    current: str | None = None
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        ind = _indent(line)
        if ind == 0:
            break  # the next section (or text) at the header's level
        if entry_indent is None:
            entry_indent = ind
        m = _ENTRY.match(line.strip())
        if ind <= entry_indent and m:
            current = m.group(1)
            params[current] = m.group(3).strip()
        elif current is not None:
            params[current] = (params[current] + " " + line.strip()).strip()
        i += 1
    return i


def _numpy_section(lines: list[str], i: int, params: dict[str, str]) -> int:
    current: str | None = None
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and _NUMPY_HEADER.match(nxt.strip()):
            break  # the next section header
        if not line.strip():
            i += 1
            continue
        if _indent(line) == 0:
            m = _NUMPY_ENTRY.match(line.strip())
            for name in (m.group(1),) if m else ():
                current = name
                params[current] = ""
        elif current is not None:
            params[current] = (params[current] + " " + line.strip()).strip()
        i += 1
    return i


# --------------------------------------------------------------------------- signatures


class SchemaProblem(Exception):
    """A signature that cannot be described as JSON Schema."""


@dataclass
class SignatureSchema:
    """What :func:`signature_schema` finds out about a callable."""

    schema: dict[str, Any]
    """JSON Schema of the parameters the model fills in (not strict yet)."""
    description: str | None
    """The docstring's text before its sections."""
    model: type[BaseModel]
    """Validates arguments (bound ones included) into Python values; aliases = names."""
    positional_only: list[str] = field(default_factory=list)
    """Parameters that must be passed by position, in order."""
    params: list[str] = field(default_factory=list)
    """Every parameter name, in order (``*args`` / ``**kwargs`` left out)."""
    var_keyword: bool = False
    """The function takes ``**kwargs``: names beyond ``params`` are passed through."""

    def call_arguments(self, arguments: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Validated ``(args, kwargs)`` for the call; pydantic errors propagate."""
        values = self.model.model_validate(arguments)
        by_alias = {
            (f.alias or name): getattr(values, name)
            for name, f in type(values).model_fields.items()
        }
        args = [by_alias.pop(name) for name in self.positional_only]
        by_alias.update(values.model_extra or {})
        return args, by_alias


_MODEL_CONFIG = ConfigDict(extra="forbid", arbitrary_types_allowed=False)
_KWARGS_CONFIG = ConfigDict(extra="allow", arbitrary_types_allowed=False)


def signature_schema(fn: Callable[..., Any], hidden: set[str] | frozenset[str] = frozenset()) -> SignatureSchema:
    """The JSON Schema of ``fn``'s parameters without the ``hidden`` ones (bound by flowrun).

    Raises :class:`SchemaProblem` when a parameter's type has no JSON Schema, or when a
    hidden name is not a parameter.
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise SchemaProblem(f"cannot read the signature: {exc}") from None
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # an annotation that does not resolve
        raise SchemaProblem(f"cannot resolve the type hints: {type(exc).__name__}: {exc}") from None
    description, docs = parse_docstring(inspect.getdoc(fn))

    all_fields: dict[str, Any] = {}
    shown_fields: dict[str, Any] = {}
    positional_only: list[str] = []
    names: list[str] = []
    var_keyword = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    for index, (name, p) in enumerate(sig.parameters.items()):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.kind is p.POSITIONAL_ONLY:
            positional_only.append(name)
        names.append(name)
        annotation = hints.get(name, Any)
        default = p.default if p.default is not p.empty else ...
        extra = {"description": docs[name]} if name in docs else {}
        info = Field(default, alias=name, **extra)
        # internal field names never clash with BaseModel attributes ("schema", "json", ...)
        all_fields[f"p{index}"] = (annotation, info)
        if name not in hidden:
            shown_fields[f"p{index}"] = (annotation, copy.copy(info))
    unknown = sorted(set(hidden) - set(names))
    if unknown and not var_keyword:
        raise SchemaProblem(
            f"bind names {', '.join(repr(u) for u in unknown)}, which "
            f"{'is not a parameter' if len(unknown) == 1 else 'are not parameters'} of the "
            f"function (its parameters: {', '.join(names) or 'none'})"
        )
    label = getattr(fn, "__name__", "function")
    try:
        full = create_model(f"{label}_arguments",
                            __config__=_KWARGS_CONFIG if var_keyword else _MODEL_CONFIG, **all_fields)
        shown = create_model(f"{label}_parameters", __config__=_MODEL_CONFIG, **shown_fields)
        schema = shown.model_json_schema(by_alias=True, mode="validation")
    except Exception as exc:  # PydanticSchemaGenerationError, PydanticInvalidForJsonSchema, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SchemaProblem(
            f"cannot derive a JSON Schema from the type hints ({first}); "
            "give `parameters:` explicitly or use JSON-friendly types"
        ) from None
    schema = strip_titles(schema)
    schema.setdefault("properties", {})
    return SignatureSchema(schema, description, full, positional_only, names, var_keyword)


def strip_titles(schema: Any) -> Any:
    """A copy without pydantic's ``title`` keywords (property names stay untouched)."""
    if isinstance(schema, list):
        return [strip_titles(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in ("properties", "$defs", "definitions", "patternProperties") and isinstance(value, dict):
            out[key] = {k: strip_titles(v) for k, v in value.items()}
        elif key in ("default", "const", "enum", "examples"):
            out[key] = value
        else:
            out[key] = strip_titles(value)
    return out


# --------------------------------------------------------------------------- strict mode


class NotStrict(Exception):
    """The schema uses something strict mode cannot express; the message says what."""


_UNSUPPORTED = ("allOf", "oneOf", "not", "if", "then", "else", "prefixItems",
                "patternProperties", "unevaluatedProperties", "dependentRequired",
                "dependentSchemas", "propertyNames")
_SCHEMA_KEYS = ("type", "anyOf", "$ref", "enum", "const")


def allows_null(schema: Any) -> bool:
    """True when ``null`` is a valid instance of ``schema`` (as far as can be told)."""
    if not isinstance(schema, dict):
        return schema is True
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    if "enum" in schema and None in schema["enum"]:
        return True
    if "const" in schema and schema["const"] is None:
        return True
    return any(allows_null(s) for s in schema.get("anyOf", []) + schema.get("oneOf", []))


def make_strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A strict-mode copy of an object schema; raises :class:`NotStrict`."""
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise NotStrict("the parameters are not a JSON object schema")
    root = copy.deepcopy(schema)
    root.setdefault("type", "object")
    root.setdefault("properties", {})
    return _strict(root, root, "parameters")


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise NotStrict(f"{ref!r} is not a local $ref")
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise NotStrict(f"$ref {ref!r} does not resolve")
        node = node[part]
    return node


def _strict(node: Any, root: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise NotStrict(f"{where}: boolean schemas are not allowed")
    for key in _UNSUPPORTED:
        if key in node:
            raise NotStrict(f"{where}: {key!r} is not supported in strict mode")
    node = dict(node)
    default = node.pop("default", None)
    if default is not None:  # strict mode refuses `default`: tell the model in words
        note = f"Default: {json.dumps(default)}."
        text = (node.get("description") or "").rstrip()
        if text and not text.endswith((".", "!", "?", ":")):
            text += "."
        node["description"] = f"{text} {note}" if text else note
    if "$ref" in node and len(node) > 1:
        # strict mode refuses keywords beside $ref: inline the target
        target = dict(_resolve(node["$ref"], root))
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return _strict({**target, **siblings}, root, where)
    if "$ref" in node:
        _resolve(node["$ref"], root)
        return node
    for defs in ("$defs", "definitions"):
        if defs in node:
            node[defs] = {k: _strict(v, root, f"{defs}.{k}") for k, v in node[defs].items()}
    if "anyOf" in node:
        node["anyOf"] = [_strict(s, root, f"{where}.anyOf[{i}]") for i, s in enumerate(node["anyOf"])]
        return node
    if not any(k in node for k in _SCHEMA_KEYS) and "properties" not in node and "items" not in node:
        raise NotStrict(f"{where}: a value without a type (Any) cannot be strict")
    kind = node.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if "object" in kinds or "properties" in node:
        extra = node.get("additionalProperties")
        if "properties" not in node or extra not in (None, False):
            raise NotStrict(f"{where}: a free-form object (dict) cannot be strict")
        required = set(node.get("required", []))
        props = {}
        for name, sub in node["properties"].items():
            sub = _strict(sub, root, f"{where}.{name}")
            if name not in required and not allows_null(sub):
                sub = _nullable(sub)
            props[name] = sub
        node["properties"] = props
        node["required"] = list(props)
        node["additionalProperties"] = False
    if "array" in kinds or "items" in node:
        if not isinstance(node.get("items"), dict):
            raise NotStrict(f"{where}: an array needs an items schema in strict mode")
        node["items"] = _strict(node["items"], root, f"{where}[]")
    return node


def _nullable(sub: dict[str, Any]) -> dict[str, Any]:
    description = sub.get("description")
    inner = {k: v for k, v in sub.items() if k != "description"}
    out: dict[str, Any] = {"anyOf": [inner, {"type": "null"}]}
    if description:
        out["description"] = description
    return out


# --------------------------------------------------------------------------- arguments


def drop_optional_nulls(value: Any, schema: Any, root: dict[str, Any] | None = None) -> Any:
    """``value`` without the ``null``s that strict mode forces for optional properties.

    Walks ``schema`` (the schema *before* :func:`make_strict`): an object property that is
    not required, whose schema does not allow null and whose value is null is removed,
    so the function's default (or the command's own default) applies.
    """
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return value
    if "$ref" in schema:
        try:
            target = _resolve(schema["$ref"], root)
        except NotStrict:
            return value
        return drop_optional_nulls(value, {**target, **{k: v for k, v in schema.items() if k != "$ref"}}, root)
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        required = set(schema.get("required", []))
        props = schema["properties"]
        out = {}
        for key, sub in value.items():
            if key in props:
                if sub is None and key not in required and not allows_null(props[key]):
                    continue
                sub = drop_optional_nulls(sub, props[key], root)
            out[key] = sub
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [drop_optional_nulls(v, schema["items"], root) for v in value]
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key, []):
            if isinstance(option, dict) and not allows_null(option) and _fits(value, option, root):
                return drop_optional_nulls(value, option, root)
    return value


def _fits(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> bool:
    if "$ref" in schema:
        try:
            schema = _resolve(schema["$ref"], root)
        except NotStrict:
            return False
    if isinstance(value, dict):
        props = schema.get("properties")
        return isinstance(props, dict) and set(value) <= set(props)
    if isinstance(value, list):
        return "items" in schema
    return False


def remove_properties(schema: dict[str, Any], names: set[str] | frozenset[str]) -> dict[str, Any]:
    """An object schema without the properties ``names`` (bound parameters)."""
    if not names:
        return schema
    out = dict(schema)
    out["properties"] = {k: v for k, v in (schema.get("properties") or {}).items() if k not in names}
    if "required" in schema:
        out["required"] = [r for r in schema["required"] if r not in names]
    return out
