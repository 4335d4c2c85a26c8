"""Read a flow file: YAML (ruamel, keeping line and column) -> validated :class:`Flow`.

Every problem becomes a :class:`~flowrun.errors.Problem` with ``file:line:col``, the key
path, what was expected and a hint. Nothing but :class:`SpecError` leaves this module.
"""

from __future__ import annotations

import difflib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Problem, SpecError

Path_ = tuple[Any, ...]


@dataclass
class Source:
    """Where each value and key of a flow document sits in its file (1-based)."""

    file: str
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    text: str = ""

    def locate(self, path: Path_, key: bool = False) -> tuple[int | None, int | None]:
        """Position of ``path``, or of its nearest ancestor that has one."""
        table = self.keys if key else self.values
        p = tuple(path)
        if p in table:
            return table[p]
        while p:
            if p in self.values:
                return self.values[p]
            p = p[:-1]
        return self.values.get((), (None, None))

    def problem(
        self,
        path: Path_,
        message: str,
        hint: str | None = None,
        key: bool = False,
        offset: tuple[int, int] | None = None,
    ) -> Problem:
        line, col = self.locate(path, key=key)
        if offset and line is not None:
            dline, dcol = offset
            line, col = line + dline, (dcol if dline else (col or 1) + dcol)
        return Problem(message, self.file, line, col, tuple(path), hint)


@dataclass
class FlowFile:
    """A loaded flow: the model, the plain document, and where each value came from."""

    flow: Any  # spec.Flow
    data: dict[str, Any]
    source: Source
    path: Path | None
    base_dir: Path

    @property
    def text(self) -> str:
        return self.source.text


def display_path(path: Path | str) -> str:
    """A path as users typed it: relative to the working directory when possible."""
    return str(path)


# --------------------------------------------------------------------------- YAML


def parse_yaml(text: str, file: str) -> tuple[Any, Source]:
    """Parse YAML into plain Python values plus a position table.

    Refuses, with a place: characters YAML forbids, lone surrogates, nesting deeper than
    :data:`~flowrun.yaml_guard.MAX_DEPTH` and aliases that expand past the guard's limits."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError

    from .yaml_guard import (BoundedComposer, BoundedScanner, GuardError, PositionedConstructor,
                             check_characters)

    try:
        check_characters(text)
    except GuardError as exc:
        raise SpecError(Problem(exc.message, file, exc.line, exc.column, hint=exc.hint)) from None
    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    yaml.Scanner, yaml.Composer = BoundedScanner, BoundedComposer
    yaml.Constructor = PositionedConstructor
    source = Source(file=file, text=text)
    try:
        doc = yaml.load(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.context in _UNCLOSED and exc.context_mark is not None:
            mark = exc.context_mark  # the end of the file says nothing; the opening does
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message, hint = _yaml_message(exc, text, mark)
        raise SpecError(Problem(message, file, line, col, hint=hint)) from None
    except Exception as exc:  # ruamel raises plain errors for some inputs
        raise SpecError(Problem(f"not valid YAML: {exc}", file, 1, 1, hint=_YAML_HINT)) from None
    lc = getattr(doc, "lc", None)  # where the content starts, after any comments
    start = (lc.line, lc.col) if getattr(lc, "line", None) is not None else (0, 0)
    source.values[()] = (start[0] + 1, start[1] + 1)
    return _plain(doc, (), source), source


_YAML_HINT = "check indentation (spaces, not tabs), quoting, and that every key is followed by ':'"


_UNCLOSED = {
    "while scanning a quoted scalar": "unclosed quote: the string that starts here never ends",
    "while parsing a flow mapping": "unclosed '{': the mapping that starts here has no '}'",
    "while parsing a flow sequence": "unclosed '[': the list that starts here has no ']'",
}


def _yaml_message(exc: Any, text: str, mark: Any) -> tuple[str, str]:
    problem = (exc.problem or exc.context or "invalid YAML").strip()
    if hasattr(exc, "hint"):  # a yaml_guard limit: its message is complete
        return problem, exc.hint
    if exc.context in _UNCLOSED and exc.context_mark is not None:
        end = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        return _UNCLOSED[exc.context], f"close it; the YAML parser got to line {end}: {problem}"
    if "duplicate key" in problem or type(exc).__name__ == "DuplicateKeyError":
        key = problem.split('"')[1] if '"' in problem else ""
        first = exc.context_mark
        where = f" in the mapping that starts on line {first.line + 1}" if first else ""
        return (
            f"duplicate key {key!r}{where}",
            "each key may appear once in a mapping; merge or rename the entries",
        )
    if mark is not None:
        lines = text.splitlines()
        if 0 <= mark.line < len(lines) and "\t" in lines[mark.line][: mark.column + 1]:
            return (
                "tab character in indentation: " + problem,
                "YAML indents with spaces only; replace the tabs with spaces",
            )
    return f"invalid YAML: {problem}", _YAML_HINT


def _plain(node: Any, path: Path_, source: Source) -> Any:
    """Convert ruamel nodes to plain dict/list/str/int/float/bool, recording positions."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key in node:
            plain_key = _plain_scalar(key)  # a complex key ([a, b]: ...) becomes its text
            kp = path + (plain_key if not isinstance(plain_key, (list, dict)) else str(key),)
            try:
                kl, kc = node.lc.key(key)
                source.keys[kp] = (kl + 1, kc + 1)
                vl, vc = node.lc.value(key)
                source.values[kp] = (vl + 1, vc + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            if isinstance(plain_key, str) and _text(plain_key, kp, source, key=True) != plain_key:
                joined = kp[:-1] + (_text(plain_key, kp, source),)  # escaped pairs, joined
                source.keys[joined], source.values[joined] = source.locate(kp, True), source.locate(kp)
                kp = joined
            out[kp[-1]] = _plain(node[key], kp, source)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, item in enumerate(node):
            try:
                line, col = node.lc.item(i)
                source.values[path + (i,)] = (line + 1, col + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            items.append(_plain(item, path + (i,), source))
        return items
    value = _plain_scalar(node)
    return _text(value, path, source) if isinstance(value, str) else value


def _text(value: str, path: Path_, source: Source, key: bool = False) -> str:
    """A string from the document: escaped surrogate pairs joined; a lone one refused."""
    from .yaml_guard import BAD_TEXT_HINT, join_surrogate_pairs, lone_surrogate

    value = join_surrogate_pairs(value)
    code = lone_surrogate(value)
    if code:
        line, col = source.locate(path, key=key)
        shown = tuple(p.encode("utf-8", "backslashreplace").decode() if isinstance(p, str) else p
                      for p in path)
        raise SpecError(Problem(
            f"not valid Unicode: the text holds a lone surrogate ({code})", source.file, line, col,
            shown, BAD_TEXT_HINT + "; an escape such as \\udc80 must be half of a pair"))
    return value


def _plain_scalar(value: Any) -> Any:
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_plain_scalar(v) for v in value]
    if isinstance(value, dict):
        return {_plain_scalar(k): _plain_scalar(v) for k, v in value.items()}
    return str(value)  # dates, timestamps: keep the text the user wrote


# --------------------------------------------------------------------------- validation

_TYPE_NAMES = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    type(None): "nothing (null)",
}


def describe(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_SHALLOW = set(_EXPECTED) | {"literal_error", "none_required"}


def validate_document(data: Any, source: Source) -> Any:
    """Validate a plain document against :class:`flowrun.spec.Flow`."""
    from pydantic import ValidationError

    from .spec import Flow

    if data is None:
        raise SpecError(
            Problem(
                "the file is empty",
                source.file,
                1,
                1,
                hint="a flow needs at least 'name' and 'steps'; see `flowrun schema`",
            )
        )
    if not isinstance(data, dict):
        raise SpecError(
            source.problem(
                (),
                f"expected a mapping at the top level, found {describe(data)}",
                hint="a flow file is a mapping with keys such as name, inputs, steps, outputs",
            )
        )
    from .requires import check_requires

    check_requires(data, source)  # before the schema: a newer flow may use newer keys
    try:
        return Flow.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_problems_from(exc.errors(), data, source)) from None


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], bool]:
    """Map a pydantic ``loc`` onto the document, skipping union labels.

    Returns the path that exists in the document and whether the full loc was found
    (False means the last element names a missing key).
    """
    from .spec import UNION_TAGS

    path: list[Any] = []
    node = data
    for i, part in enumerate(loc):
        if part in UNION_TAGS and i + 1 < len(loc) and not _contains(node, part, loc[i + 1]):
            continue  # a tagged union's tag (the key that chose the branch), not a step down
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part in _ALIASES and _ALIASES[part] in node:
            path.append(_ALIASES[part])
            node = node[_ALIASES[part]]
    return tuple(path), True


_ALIASES = {"with_": "with", "continue_": "continue", "if_": "if"}


def _contains(node: Any, key: Any, child: Any) -> bool:
    """Whether ``node[key][child]`` exists (or could: ``node[key]`` is a mapping or list)."""
    inner = node.get(key) if isinstance(node, dict) else None
    if isinstance(inner, dict):
        return child in inner
    return isinstance(inner, list) and isinstance(child, int)


def _problems_from(errors: list[dict[str, Any]], data: Any, source: Source,
                   model: Any = None) -> list[Problem]:
    """Positioned problems from pydantic errors; ``model`` (default :class:`~flowrun.spec.Flow`)
    is the document's root model, for "did you mean" on unknown keys."""
    from .spec import Flow, model_fields_at

    root = model or Flow

    grouped: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for err in errors:
        path, _ = _data_path(data, err["loc"])
        err["_path"] = path
        grouped.setdefault(path, []).append(err)

    problems: list[Problem] = []
    seen: set[tuple[Any, ...]] = set()
    for err in errors:
        path = err["_path"]
        kind = err["type"]
        # union noise: a shallow type mismatch in one branch while another branch went deeper
        if kind in _SHALLOW and any(
            o is not err
            and o["_path"][: len(path)] == path
            and (o["type"] not in _SHALLOW or len(o["_path"]) > len(path))
            for o in errors
        ):
            continue
        siblings = [o for o in grouped[path] if o["type"] in _SHALLOW]
        if kind in _SHALLOW and len(siblings) > 1:
            if path in seen:
                continue
            seen.add(path)
            wanted = sorted({_expected_text(o) for o in siblings})
            value = _lookup(data, path)
            problems.append(
                source.problem(path, f"expected {' or '.join(wanted)}, found {describe(value)}")
            )
            continue
        if err["loc"][-1] == "[key]" or kind == "invalid_key":
            key = path[-1] if path else None
            msg = _message(err, data, path)
            if kind in ("string_type", "invalid_key"):
                msg = f"a key must be a string, found {describe(key)} ({key!r}); quote it"
            problems.append(source.problem(path, msg, key=True))
            continue
        if kind == "extra_forbidden":
            key = err["loc"][-1]
            allowed = model_fields_at(root, tuple(err["loc"][:-1])) or []
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else None
            if allowed and not close:
                hint = "allowed keys: " + ", ".join(sorted(allowed))
            problems.append(source.problem(path, f"unknown key {key!r}", hint=hint, key=True))
            continue
        if kind == "missing":
            key = err["loc"][-1]
            problems.append(
                source.problem(path, f"missing required key {key!r}", hint=_missing_hint(key))
            )
            continue
        message = _message(err, data, path)
        if kind == "tool_kind" and isinstance(_lookup(data, path), dict):
            from .spec import TOOL_KINDS

            found = [k for k in TOOL_KINDS if k in _lookup(data, path)]
            message += f"; it has {' and '.join(found)}" if found else ""
        problems.append(source.problem(path, message))
    problems.sort(key=lambda p: (p.line or 0, p.column or 0))
    return _dedupe(problems)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    out, seen = [], set()
    for p in problems:
        k = (p.line, p.column, p.message)
        if k not in seen:
            seen.add(k)
            out.append(p)
    return out


def _lookup(data: Any, path: tuple[Any, ...]) -> Any:
    node = data
    for p in path:
        node = node[p]
    return node


def _expected_text(err: dict[str, Any]) -> str:
    if err["type"] == "literal_error":
        return "one of " + err.get("ctx", {}).get("expected", "the allowed values")
    if err["type"] == "none_required":
        return "null"
    return _EXPECTED.get(err["type"], err["msg"])


def _message(err: dict[str, Any], data: Any, path: tuple[Any, ...]) -> str:
    kind = err["type"]
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, found {describe(_lookup(data, path))}"
    if kind == "literal_error":
        return f"expected one of {err['ctx']['expected']}, found {_lookup(data, path)!r}"
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    return msg


def _missing_hint(key: Any) -> str | None:
    return {
        "name": "give the flow a short name, e.g. `name: my-flow`",
        "steps": "add a `steps:` mapping with at least one step",
        "task": "say what the agent should do, e.g. `task: find the latest release`",
    }.get(str(key))


# --------------------------------------------------------------------------- entry points


def load_text(text: str, file: str = "<flow>", base_dir: Path | None = None) -> FlowFile:
    """Parse and validate flow text (no template or plan checks)."""
    data, source = parse_yaml(text, file)
    flow = validate_document(data, source)
    return FlowFile(flow, data, source, None, base_dir or Path.cwd())


def read_text(path: Path, what: str = "a flow file is YAML text") -> str:
    """Read a flow file (or another text file: ``what`` names it in hints) as UTF-8,
    with a clear error for anything else."""
    shown = display_path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(Problem("no such file", shown, hint="check the path")) from None
    except IsADirectoryError:
        raise SpecError(Problem("is a directory, not a flow file", shown)) from None
    except OSError as exc:
        raise SpecError(Problem(f"cannot read: {exc.strerror}", shown)) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise SpecError(
            Problem(
                f"not UTF-8 text (byte 0x{raw[exc.start]:02x})",
                shown,
                line,
                col,
                hint=f"{what} saved as UTF-8",
            )
        ) from None
    return text


def load_file(path: str | Path) -> FlowFile:
    """Read, parse and validate a flow file (no template or plan checks)."""
    p = Path(path)
    text = read_text(p)
    data, source = parse_yaml(text, display_path(p))
    flow = validate_document(data, source)
    return FlowFile(flow, data, source, p, p.resolve().parent)
