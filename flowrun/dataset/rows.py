"""Reading a dataset as a stream of rows: JSONL, a JSON array, or CSV / TSV.

Rows are read one at a time (a JSON array through ``json.JSONDecoder.raw_decode`` over
64 KiB chunks), so a file of any size is read in the same memory. Each :class:`Row`
knows its number (1-based) and the line it starts on. A row that cannot be read as an
object (bad JSON on a JSONL line, a number in a JSON array) carries its error and fails
alone; a JSON array whose syntax breaks ends the dataset there (:class:`DatasetError`).

:func:`row_inputs` turns a row into the flow's inputs: ``--map INPUT=COLUMN`` first, then
columns named as inputs; CSV cells are typed by the flow's input types (``integer``,
``number``, ``boolean`` as true/false/yes/no/1/0, ``list`` / ``object`` as JSON, ``file``
relative to the dataset's directory); an empty cell is a missing value. Columns that are
not inputs are ignored.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..errors import UsageError

FORMATS = ("jsonl", "json", "csv", "tsv")
CHUNK = 65536
_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off"}


class DatasetError(UsageError):
    """The dataset file cannot be read (from some row on)."""


@dataclass
class Row:
    """One row: its number, the line it starts on, and its values or why it has none."""

    number: int
    line: int
    values: dict[str, Any] | None = None
    error: str | None = None


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson"):
        return "jsonl"
    if suffix in ("csv", "tsv"):
        return suffix
    if suffix == "json":
        with open(path, encoding="utf-8-sig") as fh:
            head = fh.read(4096).lstrip()
        return "json" if head.startswith("[") else "jsonl"
    raise UsageError(f"--dataset {path}: unknown format {path.suffix or '(no extension)'!r}",
                     hint="use a .jsonl, .json (an array of objects), .csv or .tsv file")


def read_rows(path: Path, fmt: str | None = None) -> Iterator[Row]:
    """The rows of ``path``, one at a time."""
    fmt = fmt or detect_format(path)
    try:
        if fmt == "jsonl":
            yield from _jsonl(path)
        elif fmt == "json":
            yield from _json_array(path)
        else:
            yield from _csv(path, "\t" if fmt == "tsv" else ",")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})",
                           hint="save the file as UTF-8") from None
    except OSError as exc:
        raise DatasetError(f"--dataset {path}: {exc.strerror or exc}") from None


def _object(value: Any, where: str) -> tuple[dict[str, Any] | None, str | None]:
    if isinstance(value, dict):
        return value, None
    return None, f"{where}: expected a JSON object of input values, got {type(value).__name__}"


def _jsonl(path: Path) -> Iterator[Row]:
    number = 0
    with open(path, encoding="utf-8-sig") as fh:
        for lineno, text in enumerate(fh, 1):
            if not text.strip():
                continue
            number += 1
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield Row(number, lineno, error=f"{path}:{lineno}:{exc.colno}: not valid JSON: {exc.msg}")
                continue
            values, error = _object(value, f"{path}:{lineno}")
            yield Row(number, lineno, values, error)


def _json_array(path: Path) -> Iterator[Row]:
    decoder = json.JSONDecoder()
    with open(path, encoding="utf-8-sig") as fh:
        buf, pos, line, eof = "", 0, 1, False

        def more() -> bool:
            nonlocal buf, pos, eof
            chunk = fh.read(CHUNK)
            if not chunk:
                eof = True
                return False
            buf = buf[pos:] + chunk
            pos = 0
            return True

        def skip_ws() -> str:
            nonlocal pos, line
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n":
                    if buf[pos] == "\n":
                        line += 1
                    pos += 1
                if pos < len(buf) or not more():
                    return buf[pos] if pos < len(buf) else ""

        def fail(what: str) -> DatasetError:
            return DatasetError(f"{path}:{line}: {what}", hint="fix the file; rows before this one were read")

        if skip_ws() != "[":
            raise fail("expected a JSON array of objects ('[' first)")
        pos += 1
        number = 0
        if skip_ws() == "]":
            return
        while True:
            skip_ws()
            while True:
                try:
                    value, end = decoder.raw_decode(buf, pos)
                    break
                except json.JSONDecodeError as exc:
                    if eof or not more():
                        col = exc.pos - (buf.rfind("\n", 0, exc.pos) + 1) + 1
                        raise fail(f"column {col}: not valid JSON: {exc.msg}") from None
            number += 1
            start = line
            line += buf.count("\n", pos, end)
            pos = end
            values, error = _object(value, f"{path}:{start}")
            yield Row(number, start, values, error)
            sep = skip_ws()
            if sep == ",":
                pos += 1
            elif sep == "]":
                return
            else:
                raise fail(f"expected ',' or ']' after row {number}, got {sep or 'the end of the file'!r}")


def _csv(path: Path, delimiter: str) -> Iterator[Row]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DatasetError(f"{path}:1: {exc}") from None
        names = [h.strip() for h in header]
        number, last = 0, reader.line_num
        while True:
            start = last + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise DatasetError(f"{path}:{start}: {exc}", hint="fix the quoting of this row") from None
            last = reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue
            number += 1
            if len(cells) > len(names):
                yield Row(number, start, error=f"{path}:{start}: {len(cells)} cells, the header has {len(names)}")
                continue
            yield Row(number, start, {n: c for n, c in zip(names, cells)})


def csv_header(path: Path, fmt: str) -> list[str] | None:
    """The column names of a CSV / TSV file (None for JSON formats)."""
    if fmt not in ("csv", "tsv"):
        return None
    with open(path, encoding="utf-8-sig", newline="") as fh:
        try:
            return [h.strip() for h in next(csv.reader(fh, delimiter="\t" if fmt == "tsv" else ","))]
        except (StopIteration, csv.Error):
            return []


def typed_cell(kind: str, text: str) -> Any:
    """A CSV cell as a value of input type ``kind``; ValueError says what was expected."""
    value = text.strip()
    if kind in ("string", "file"):
        return text
    if kind == "integer":
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"must be an integer, got {text!r}") from None
    if kind == "number":
        try:
            return int(value) if value.lstrip("+-").isdigit() else float(value)
        except ValueError:
            raise ValueError(f"must be a number, got {text!r}") from None
    if kind == "boolean":
        low = value.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"must be a boolean (true/false, yes/no, 1/0), got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        raise ValueError(f"must be a {kind} written as JSON, got {text!r}") from None
    if not isinstance(parsed, list if kind == "list" else dict):
        raise ValueError(f"must be a {kind} written as JSON, got {text!r}")
    return parsed


def row_inputs(row: Row, flow: Any, mapping: Mapping[str, str], typed: bool) -> dict[str, Any]:
    """The input values a row gives (before defaults and ``-i``). ``typed``: the row's
    values are JSON (else CSV text, converted here). ValueError names the bad input."""
    assert row.values is not None
    out: dict[str, Any] = {}
    problems = []
    for name, spec in flow.inputs.items():
        column = mapping.get(name, name)
        if column not in row.values:
            continue
        value = row.values[column]
        if value is None:
            continue  # JSON null: the default, or missing
        if not typed:
            if value.strip() == "":
                continue  # an empty cell: the default, or missing
            try:
                value = typed_cell(spec.type, value)
            except ValueError as exc:
                problems.append(f"input {name!r}" + (f" (column {column!r})" if column != name else "")
                                + f" {exc}")
                continue
        out[name] = value
    if problems:
        raise ValueError("; ".join(problems))
    return out


def parse_mapping(pairs: tuple[str, ...] | list[str], flow: Any) -> dict[str, str]:
    """``--map INPUT=COLUMN`` pairs, checked against the flow's inputs."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, column = pair.partition("=")
        name, column = name.strip(), column.strip()
        if not sep or not name or not column:
            raise UsageError(f"--map {pair!r}: expected INPUT=COLUMN", hint="for example --map ticket=body")
        if name not in flow.inputs:
            raise UsageError(f"--map {pair!r}: the flow has no input {name!r}",
                             hint=f"its inputs: {', '.join(flow.inputs) or 'none'}")
        out[name] = column
    return out
