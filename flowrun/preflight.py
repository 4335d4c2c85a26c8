"""Checks ``validate`` runs for what would otherwise fail only at run time.

Each check looks at one part of a flow and returns :class:`Finding` objects whose ``path``
is relative to that part; :mod:`flowrun.plan` places them in the file. Nothing here runs
user code: a ``python:`` tool's module is looked up, and read with ``ast``, never imported.

- ``output_schema`` / ``parameters`` must be JSON Schema, and fit the strict mode;
- a ``python:`` tool's module must exist (beside the flow file or installed) and define
  the function;
- ``image_generation`` options must be a combination the tool accepts;
- ``background: true`` needs stored responses, so ``store: false`` cannot go with it.
"""

from __future__ import annotations

import ast
import functools
import importlib.machinery
import json
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JSON_TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")


@dataclass(frozen=True)
class Finding:
    """A problem at ``path`` (relative to the part checked), with what to do."""

    path: tuple[str | int, ...]
    message: str
    hint: str | None = None
    key: bool = False


# --------------------------------------------------------------------------- JSON Schema


def _shown(value: Any) -> str:
    """A value as YAML writes it (null, true), else its repr."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)[:80]


def schema_findings(schema: dict[str, Any], what: str = "output_schema") -> list[Finding]:
    """``schema`` must be valid JSON Schema (its ``$schema`` draft, else 2020-12) and
    convertible to the strict structured-output form. Checked once per distinct schema:
    a flow often gives many steps the same one, and each check walks the metaschema."""
    try:
        key = json.dumps(schema, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):  # not plain JSON data: checked as it is
        return _schema_findings(schema, what)
    return list(_cached_findings(key, what))


@functools.lru_cache(maxsize=512)
def _cached_findings(key: str, what: str) -> tuple[Finding, ...]:
    return tuple(_schema_findings(json.loads(key), what))


@functools.lru_cache(maxsize=None)
def _meta_validator(cls: Any) -> Any:
    """One validator of ``cls``'s metaschema, reused (it keeps its resolved references)."""
    return cls(cls.META_SCHEMA)


def _schema_findings(schema: dict[str, Any], what: str) -> list[Finding]:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError, best_match
    from jsonschema.validators import validator_for

    try:
        cls = validator_for(schema, default=Draft202012Validator)
    except Exception:  # a $schema that names no draft: the metaschema check reports it
        cls = Draft202012Validator
    by_path: dict[tuple[Any, ...], list[Any]] = {}
    for err in _meta_validator(cls).iter_errors(schema):
        by_path.setdefault(tuple(err.absolute_path), []).append(err)
    hint = f"{what} is a JSON Schema, e.g. {{type: object, properties: {{name: {{type: string}}}}}}"
    out = []
    for path, errors in sorted(by_path.items(), key=lambda kv: [str(p) for p in kv[0]]):
        err = best_match(errors)
        if path and path[-1] == "type":
            msg = (f"{_shown(err.instance)} is not a JSON Schema type; use one of "
                   f"{', '.join(JSON_TYPES)} (or a list of them)")
        else:
            msg, raw = err.message, repr(err.instance)
            if msg.startswith(raw):
                msg = _shown(err.instance) + msg[len(raw):]
            msg = f"not valid JSON Schema: {msg[:200]}"
        out.append(Finding(path, msg, hint))
    if out:
        return out
    from .output import strict_schema

    try:
        strict = strict_schema(schema)
        error = best_match(_meta_validator(cls).iter_errors(strict))
        if error is not None:
            raise SchemaError.create_from(error)
    except Exception as exc:  # a shape the strict conversion cannot take
        return [Finding((), f"{what} cannot be sent in strict mode: {type(exc).__name__}: {exc}",
                        hint)]
    return []


# --------------------------------------------------------------------------- python tools


def _module_file(parts: list[str], base_dir: Path) -> tuple[bool | None, Path | None]:
    """(exists, source file) of a dotted module, without importing anything: beside the
    flow file first, as the tool loader does, else among the installed modules. ``exists``
    is None when that cannot be told."""
    from .tools.functions import _local_target

    if _local_target(parts, base_dir) is not None:
        rest = base_dir.joinpath(*parts)
        for candidate in (rest.with_suffix(".py"), rest / "__init__.py"):
            if candidate.is_file():
                return True, candidate
        return rest.is_dir(), None  # a namespace package, or nothing
    try:
        spec = importlib.machinery.PathFinder.find_spec(parts[0], [str(base_dir)]) \
            or importlib.util.find_spec(parts[0])
        for i in range(1, len(parts)):
            if spec is None or spec.submodule_search_locations is None:
                return False, None
            spec = importlib.machinery.PathFinder.find_spec(
                ".".join(parts[: i + 1]), list(spec.submodule_search_locations))
    except (ImportError, ValueError, AttributeError):
        return None, None
    if spec is None:
        return False, None
    origin = Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    return True, origin


def _defines(source: Path, name: str) -> bool | None:
    """Whether the module file binds ``name``; None when it cannot be told statically."""
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"), str(source))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None  # reported by the import at run time, with its own message
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name in (name, "__getattr__"):
                return True
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*" or (alias.asname or alias.name.split(".")[0]) == name:
                    return True
        elif isinstance(node, ast.Name) and node.id in (name, "globals"):
            return True
    return False


def python_tool_findings(ref: str, base_dir: Path) -> list[Finding]:
    """``module:function`` must name a module that exists and a function it defines."""
    module, _, attr = ref.partition(":")
    exists, source = _module_file(module.split("."), base_dir)
    if exists is False:
        return [Finding((), f"no module {module!r} beside the flow file or among the "
                            "installed packages",
                        f"looked for {module.replace('.', '/')}.py in {base_dir}; python: is "
                        "module:function, the module relative to the flow file")]
    if source is not None and _defines(source, attr) is False:
        return [Finding((), f"module {module!r} has no function {attr!r}",
                        f"define {attr} in {source}, or fix the name after the colon")]
    return []


# --------------------------------------------------------------------------- image options


def image_findings(options: Any) -> list[Finding]:
    """Option combinations the image_generation tool rejects (the OpenAPI spec's
    ``ImageGenTool``): a transparent background needs png or webp; compression below
    100 applies to jpeg and webp only."""
    if options is None:
        return []
    fmt = options.output_format or "png"
    out = []
    if options.background == "transparent" and fmt == "jpeg":
        out.append(Finding(("background",), "a transparent background needs output_format png "
                           "or webp, not jpeg", "set output_format: png (or webp), or drop "
                           "background: transparent"))
    if options.output_compression is not None and options.output_compression < 100 and fmt == "png":
        where = "output_format is png" if options.output_format else "output_format defaults to png"
        out.append(Finding(("output_compression",), f"output_compression applies to jpeg and "
                           f"webp only; {where}", "set output_format: jpeg (or webp), or drop "
                           "output_compression"))
    return out


# --------------------------------------------------------------------------- background


def background_findings(step: Any, defaults: Any) -> list[Finding]:
    """``background: true`` keeps the response at the service to be polled: it cannot
    go with ``store: false`` (set on the step or in ``defaults``)."""
    if not step.background:
        return []
    store = step.store if step.store is not None else defaults.store
    if store is not False:
        return []
    origin = "on the step" if step.store is False else "in defaults"
    return [Finding(("background",), f"background: true with store: false ({origin}): a "
                    "background response is kept by the service to be polled, so it is "
                    "always stored", "drop background: true, or set store: true on this step "
                    "(or remove store: false)")]
