"""Flow inputs from ``-i NAME=VALUE`` and ``--inputs FILE``: parsed, typed, checked."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Mapping

from .errors import UsageError
from .spec import Flow, check_input_value


def parse_assignments(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"-i {pair!r}: expected NAME=VALUE", hint="for example -i company=Contoso")
        out[name.strip()] = value
    return out


def read_inputs_file(path: str) -> dict[str, Any]:
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--inputs {path}: no such file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UsageError(f"--inputs {path}: not valid YAML/JSON: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"--inputs {path}: expected a mapping of input names to values")
    return data


def _coerce(kind: str, raw: str) -> Any:
    """A command-line string as a value of ``kind``."""
    if kind in ("string", "file"):
        return raw
    import yaml

    try:
        return yaml.safe_load(raw) if kind != "object" and kind != "list" else json.loads(raw)
    except (ValueError, yaml.YAMLError):
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError:
            return raw


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
    file's directory, where it was written)."""
    cwd = cwd or Path.cwd()
    defaulted: set[str] = set()
    problems: list[str] = []
    values: dict[str, Any] = {}
    given: dict[str, Any] = dict(from_file or {})
    cli_names = set(from_cli)
    given.update(from_cli)
    for name in given:
        if name not in flow.inputs:
            close = difflib.get_close_matches(name, list(flow.inputs), n=1)
            problems.append(
                f"unknown input {name!r}"
                + (f" (did you mean {close[0]!r}?)" if close else
                   f" (the flow's inputs: {', '.join(flow.inputs) or 'none'})")
            )
    for name, spec in flow.inputs.items():
        if name in given:
            value = given[name]
            if name in cli_names and isinstance(value, str):
                value = _coerce(spec.type, value)
        elif spec.default is not None:
            value = spec.default
            defaulted.add(name)
        elif spec.is_required:
            problems.append(f"missing input {name!r} ({spec.type})"
                            + (f": {spec.description}" if spec.description else ""))
            continue
        else:
            values[name] = None
            continue
        if not check_input_value(spec.type, value):
            problems.append(f"input {name!r} must be a {spec.type}, got {value!r}")
            continue
        if spec.enum is not None and value not in spec.enum:
            problems.append(f"input {name!r} must be one of {spec.enum}, got {value!r}")
            continue
        if spec.type == "file":
            path = Path(value)
            base = flow_dir if name in defaulted and flow_dir is not None else cwd
            path = path if path.is_absolute() else base / path
            if not path.is_file():
                problems.append(f"input {name!r}: file not found: {value} (looked in {base})")
                continue
            value = str(path.resolve())
        values[name] = value
    if problems:
        raise UsageError(
            "; ".join(problems),
            hint="give inputs as -i NAME=VALUE or --inputs FILE.yaml",
        )
    return values
