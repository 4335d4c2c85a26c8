"""Flow inputs from ``-i NAME=VALUE`` and ``--inputs FILE``: parsed, typed, checked.

A command-line value is text, read by the input's type:

- ``integer``: ``42``, ``-7``, ``1_000`` (``1e3`` too: a whole number in float syntax);
- ``number``: JSON numbers and Python float syntax: ``12.5``, ``1e3``, ``1.25e3``; finite;
- ``boolean``: ``true`` / ``false`` (also ``yes`` / ``no``, ``on`` / ``off``);
- ``list`` / ``object``: JSON (``["a", "b"]``) or YAML flow syntax (``[a, b]``, ``{k: 1}``).

Files are read by :mod:`flowrun.inputs_file`. Text that is not valid Unicode (argv bytes
that are not UTF-8, lone surrogates) is refused before the run starts.
"""

from __future__ import annotations

import difflib
import json
import math
from pathlib import Path
from typing import Any, Mapping

from .errors import SpecError, UsageError
from .inputs_file import InputsFile, read_inputs_file
from .spec import Flow, check_input_value
from .yaml_guard import first_bad_text

__all__ = ["parse_assignments", "read_inputs_file", "resolve_inputs", "type_phrase"]

_GENERIC_HINT = "give inputs as -i NAME=VALUE or --inputs FILE.yaml"
_PHRASES = {
    "string": "a string", "integer": "an integer", "number": "a number",
    "boolean": "true or false", "list": "a list", "object": "a mapping (JSON object)",
    "file": "a file path",
}
_BOOLS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False}


def type_phrase(kind: str) -> str:
    """``integer`` -> ``an integer``: what a value of an input type is, for messages."""
    return _PHRASES.get(kind, f"a {kind}")


def _show(value: Any, limit: int = 80) -> str:
    text = repr(value)  # repr escapes surrogates and control characters
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _argv_text(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def parse_assignments(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``NAME=VALUE`` pairs as a dict; a pair that is not valid text is refused."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"-i {_show(pair)}: expected NAME=VALUE",
                             hint="for example -i company=Contoso")
        bad = _undecodable(name, "name") or _undecodable(value, "value")
        if bad:
            raise UsageError(
                f"-i {_argv_text(name.strip())}: {bad}",
                hint="the shell passed bytes that are not UTF-8: type the text in a UTF-8 "
                     "terminal (see `locale`), or put it in an --inputs file saved as UTF-8")
        out[name.strip()] = value
    return out


def _undecodable(text: str, part: str) -> str | None:
    """What is wrong with argv text Python decoded with surrogate escapes, or None."""
    for i, ch in enumerate(text):
        if 0xDC80 <= ord(ch) <= 0xDCFF:
            return (f"the {part} is not valid UTF-8 text "
                    f"(byte 0x{ord(ch) - 0xDC00:02x} at character {i + 1})")
        if 0xD800 <= ord(ch) <= 0xDFFF:
            return f"the {part} is not valid Unicode text (U+{ord(ch):04X} at character {i + 1})"
    return None


def _coerce(kind: str, raw: str) -> Any:
    """A command-line string as a value of ``kind``; the string itself when it is not one."""
    text = raw.strip()
    if kind in ("string", "file"):
        return raw
    if kind in ("integer", "number"):
        try:
            return int(text)
        except ValueError:
            pass
        try:
            value = float(text)
        except ValueError:
            return raw
        if kind == "integer" and value.is_integer():
            return int(value)
        return value
    if kind == "boolean":
        return _BOOLS.get(text.lower(), raw)
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    from .loader import parse_yaml

    try:
        value, _ = parse_yaml(text, "-i")
    except SpecError:
        return raw
    return raw if value is None else value


def _type_hint(kind: str, name: str, on_cli: bool) -> str | None:
    """How to write a value of ``kind``, on the command line or in a file."""
    if on_cli:
        return {
            "integer": f"write a whole number, e.g. -i {name}=42",
            "number": f"write a number, e.g. -i {name}=12.5 or -i {name}=1.25e3",
            "boolean": f"write -i {name}=true or -i {name}=false",
            "list": f"write a JSON or YAML list, quoted for the shell: "
                    f"-i {name}='[\"a\", \"b\"]' or -i {name}='[a, b]'",
            "object": f"write a JSON or YAML mapping, quoted for the shell: "
                      f"-i {name}='{{\"key\": \"value\"}}'",
        }.get(kind)
    return {
        "integer": "write a whole number, e.g. 42",
        "number": "write a number, e.g. 12.5 or 1.25e3",
        "boolean": "write true or false",
        "list": "write a list, e.g. [a, b] or [\"a\", \"b\"]",
        "object": "write a mapping, e.g. {key: value}",
    }.get(kind)


def _normalize(kind: str, value: Any) -> Any:
    """A whole float for an integer input (JSON ``1e3``, ``3.0``) as an int."""
    if (kind == "integer" and isinstance(value, float) and math.isfinite(value)
            and value.is_integer()):
        return int(value)
    return value


def resolve_inputs(
    flow: Flow,
    from_cli: Mapping[str, str],
    from_file: Mapping[str, Any] | None = None,
    cwd: Path | None = None,
    flow_dir: Path | None = None,
) -> dict[str, Any]:
    """The run's input values: defaults, then the file, then ``-i`` (which wins).

    A ``file`` value given on the command line or in an inputs file is relative to
    ``cwd`` (where flowrun runs); a ``file`` default is relative to ``flow_dir`` (the flow
    file's directory, where it was written). Raises :class:`UsageError` naming every
    problem, each with where the value came from and how to write it."""
    cwd = cwd or Path.cwd()
    defaulted: set[str] = set()
    problems: list[tuple[str, str | None]] = []
    values: dict[str, Any] = {}
    given: dict[str, Any] = dict(from_file or {})
    cli_names = set(from_cli)
    given.update(from_cli)

    def origin(name: str) -> str:
        if name in cli_names:
            return ""  # the message names the input; -i is where it came from
        if isinstance(from_file, InputsFile):
            return f"{from_file.origin(name)}: "
        return ""

    for name in given:
        if name not in flow.inputs:
            close = difflib.get_close_matches(str(name), list(flow.inputs), n=1)
            problems.append((
                f"unknown input {_show(name)}"
                + (f" (did you mean {close[0]!r}?)" if close else
                   f" (the flow's inputs: {', '.join(flow.inputs) or 'none'})"), None))
    for name, spec in flow.inputs.items():
        if name in given:
            value = given[name]
            if name in cli_names and isinstance(value, str):
                value = _coerce(spec.type, value)
            value = _normalize(spec.type, value)
        elif spec.default is not None:
            value = spec.default
            defaulted.add(name)
        elif spec.is_required:
            problems.append((f"missing input {name!r} ({spec.type})"
                             + (f": {spec.description}" if spec.description else ""), None))
            continue
        else:
            values[name] = None
            continue
        bad = first_bad_text(value)
        if bad:
            where = "".join(f"[{k!r}]" for k in bad[0])
            problems.append((f"{origin(name)}input {name!r} is not valid Unicode text "
                             f"(a lone surrogate {bad[1]}{' at ' + _argv_text(where) if where else ''})",
                             "give the text as UTF-8 characters; a \\uXXXX escape of a "
                             "surrogate must be half of a pair"))
            continue
        if not check_input_value(spec.type, value):
            problems.append((f"{origin(name)}input {name!r} must be {type_phrase(spec.type)}, "
                             f"got {_show(value)}", _type_hint(spec.type, name, name in cli_names)))
            continue
        if spec.type == "number" and isinstance(value, float) and not math.isfinite(value):
            problems.append((f"{origin(name)}input {name!r} must be a finite number, "
                             f"got {_show(value)}", _type_hint(spec.type, name, name in cli_names)))
            continue
        if spec.enum is not None and value not in spec.enum:
            problems.append((f"{origin(name)}input {name!r} must be one of {spec.enum}, "
                             f"got {_show(value)}", None))
            continue
        if spec.type == "file":
            path = Path(value)
            base = flow_dir if name in defaulted and flow_dir is not None else cwd
            path = path if path.is_absolute() else base / path
            if not path.is_file():
                problems.append((f"{origin(name)}input {name!r}: file not found: {value} "
                                 f"(looked in {base})", None))
                continue
            value = str(path.resolve())
        values[name] = value
    if problems:
        raise _usage_error(problems)
    return values


def _usage_error(problems: list[tuple[str, str | None]]) -> UsageError:
    if len(problems) == 1:
        message, hint = problems[0]
        return UsageError(message, hint=hint or _GENERIC_HINT)
    lines = [m + (f"\n    hint: {h}" if h else "") for m, h in problems]
    return UsageError("\n".join(lines), hint=_GENERIC_HINT)
