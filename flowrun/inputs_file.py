"""Read an ``--inputs`` file: ``.json`` as JSON, anything else as YAML (read like flow files).

Either way the result is a mapping of input names to values that knows where each value
sits (``file:line:col``), and every problem is a :class:`SpecError` with a place: text that
is not UTF-8, lone surrogates (``"\\udc80"``), nesting past the loader's limit, ``NaN``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .errors import Problem, SpecError
from .loader import describe, display_path, parse_yaml, read_text
from .yaml_guard import BAD_TEXT_HINT, MAX_DEPTH, first_bad_text, line_col

_WHAT = "an inputs file is YAML or JSON text"
_MAPPING_HINT = "an inputs file maps input names to values, e.g. {\"company\": \"Contoso\"}"


class InputsFile(dict):  # type: ignore[type-arg]
    """Input values read from a file; :meth:`origin` says where one was written."""

    def __init__(self, values: dict[Any, Any], file: str,
                 where: dict[Any, tuple[int, int]]) -> None:
        super().__init__(values)
        self.file = file
        self.where = where

    def origin(self, name: Any) -> str:
        line, col = self.where.get(name, (None, None))
        return Problem("", self.file, line, col).where


def read_inputs_file(path: str | Path) -> InputsFile:
    """The inputs in ``path``; raises :class:`SpecError` (exit 2) with a place."""
    p = Path(path)
    shown = display_path(p)
    text = read_text(p, _WHAT)
    if p.suffix.lower() == ".json":
        data, where, start = _read_json(text, shown)
    else:
        doc, source = parse_yaml(text, shown)
        start = source.locate(())
        data = {} if doc is None else doc
        where = {k: source.locate((k,)) for k in data} if isinstance(data, dict) else {}
    if not isinstance(data, dict):
        raise SpecError(Problem(f"expected a mapping of input names to values, found "
                                f"{describe(data)}", shown, *start, hint=_MAPPING_HINT))
    bad = first_bad_text(data)  # YAML strings were checked by the loader; JSON's are here
    if bad:
        keys, code = bad
        shown_keys = tuple(k.encode("utf-8", "backslashreplace").decode() if isinstance(k, str)
                           else k for k in keys)
        raise SpecError(Problem(
            f"not valid Unicode: the text holds a lone surrogate ({code})", shown,
            *where.get(keys[0], start), shown_keys,
            BAD_TEXT_HINT + "; an escape such as \\udc80 must be half of a pair"))
    return InputsFile(data, shown, where)


# JSON tokens that matter for the checks below; strings are skipped whole
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]|NaN|-?Infinity|-?\d{4000,}', re.S)


def _read_json(text: str, file: str) -> tuple[Any, dict[Any, tuple[int, int]], tuple[int, int]]:
    """Decode JSON text; the document, where each top-level value starts, where it starts."""
    if not text.strip():
        return {}, {}, (1, 1)
    _check_json_tokens(text, file)
    decoder = json.JSONDecoder()
    try:
        data = decoder.decode(text)
    except json.JSONDecodeError as exc:
        line, col = line_col(text, exc.pos)
        raise SpecError(Problem(f"not valid JSON: {exc.msg}", file, line, col,
                                hint="check commas, quotes and brackets")) from None
    except (ValueError, RecursionError) as exc:
        raise SpecError(Problem(f"not valid JSON: {exc}", file, 1, 1)) from None
    start = _skip_ws(text, 0)
    where: dict[Any, tuple[int, int]] = {}
    if isinstance(data, dict):  # valid JSON: walk the top level once more for positions
        i = start + 1
        while True:
            i = _skip_ws(text, i)
            if text[i] == "}":
                break
            key, i = json.decoder.scanstring(text, i + 1)
            i = _skip_ws(text, _skip_ws(text, i) + 1)  # past ':'
            where[key] = line_col(text, i)
            _, i = decoder.raw_decode(text, i)
            i = _skip_ws(text, i)
            if text[i] == ",":
                i += 1
    return data, where, line_col(text, start)


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\n\r":
        i += 1
    return i


def _check_json_tokens(text: str, file: str) -> None:
    """Refuse, with a place, nesting past MAX_DEPTH, NaN/Infinity and 4000-digit numbers."""
    depth = 0
    for m in _TOKENS.finditer(text):
        tok = m.group()
        if tok in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise SpecError(Problem(
                    f"nested too deeply: more than {MAX_DEPTH} levels of lists and mappings",
                    file, *line_col(text, m.start()), hint="flatten the structure"))
        elif tok in "]}":
            depth -= 1
        elif tok[0] != '"':
            what = "a number too long to read" if tok[-1].isdigit() else f"{tok} is not a JSON number"
            raise SpecError(Problem(f"not valid JSON: {what}", file, *line_col(text, m.start()),
                                    hint="write a finite number, or quote it as a string"))
