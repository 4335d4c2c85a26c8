"""Batch input files: the upload check for purpose ``batch`` and the line validation a
batch does while ``validating``.

On upload (400 when refused): the name ends in ``.jsonl``, the file is UTF-8, at most
``max_bytes`` and ``max_lines`` non-blank lines, and not empty (:mod:`.batch_settings`).

While validating, each line must be a JSON object ``{"custom_id", "method", "url",
"body"}``: ``custom_id`` a non-empty string unique in the file, ``method`` ``POST``,
``url`` the batch's ``endpoint`` (``/v1/responses``), ``body`` an object with a string
``model``, the same model on every line (one model per batch, as the service requires).
A file breaking any of these fails the batch with one ``errors.data[]`` entry per
problem (``code``, ``message``, ``param``, ``line``: 1-based, blank lines counted).
The rest of a body is checked as ``POST /responses`` checks it, when the line runs: a
non-conforming body fails that line alone (HTTP 400 in the error file).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import APIError
from .model import count_tokens, item_text

MAX_ERRORS = 1000


@dataclass
class Line:
    number: int  # 1-based line in the file
    custom_id: str
    body: dict[str, Any]


def _lines(data: bytes) -> list[tuple[int, str]]:
    text = data.decode("utf-8")
    return [(n, raw) for n, raw in enumerate(text.splitlines(), 1) if raw.strip()]


def check_upload(settings: Any, data: bytes, filename: str) -> None:
    """Raise a 400 unless ``data`` may be a batch input file."""
    if not filename.lower().endswith(".jsonl"):
        raise APIError(400, f"Invalid file format for Batch API: {filename!r} must be a .jsonl file "
                       "(one JSON request per line).", param="file", code="invalid_file_format")
    if len(data) > settings.max_bytes:
        raise APIError(400, f"The batch input file is {len(data)} bytes; at most {settings.max_bytes} bytes "
                       "are allowed. Split it into several files.", param="file", code="file_too_large")
    try:
        lines = _lines(data)
    except UnicodeDecodeError as exc:
        raise APIError(400, f"The batch input file is not UTF-8 text (byte {exc.start}).", param="file",
                       code="invalid_file_format") from None
    if not lines:
        raise APIError(400, "The batch input file is empty; it needs one JSON request per line.",
                       param="file", code="empty_file")
    if len(lines) > settings.max_lines:
        raise APIError(400, f"The batch input file has {len(lines)} requests; at most {settings.max_lines} "
                       "are allowed. Split it into several files.", param="file", code="too_many_requests")


def _error(code: str, message: str, line: int, param: str | None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def parse_lines(data: bytes, endpoint: str) -> tuple[list[Line], list[dict[str, Any]]]:
    """The file's lines, and the ``BatchError`` objects for the lines that are not valid."""
    lines: list[Line] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    model: str | None = None
    for number, raw in _lines(data):
        if len(errors) >= MAX_ERRORS:
            break
        try:
            entry = json.loads(raw)
        except ValueError as exc:
            errors.append(_error("invalid_json_line", f"This line is not valid JSON: {exc}.", number, None))
            continue
        if not isinstance(entry, dict):
            errors.append(_error("invalid_json_line", "Each line must be a JSON object with custom_id, method, "
                                 "url and body.", number, None))
            continue
        problem = _check_entry(entry, endpoint, seen)
        if problem is None:
            body_model = entry["body"]["model"]
            if model is None:
                model = body_model
            elif body_model != model:
                problem = ("mismatched_model", f"The model {body_model!r} differs from {model!r} on earlier lines; "
                           "a batch can only use one model.", "body.model")
        if problem is not None:
            errors.append(_error(problem[0], problem[1], number, problem[2]))
            continue
        seen.add(entry["custom_id"])
        lines.append(Line(number, entry["custom_id"], entry["body"]))
    return lines, errors


def _check_entry(entry: dict[str, Any], endpoint: str, seen: set[str]) -> tuple[str, str, str] | None:
    custom_id = entry.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return ("missing_required_parameter", "Each line needs a 'custom_id' string.", "custom_id")
    if custom_id in seen:
        return ("duplicate_custom_id", f"The custom_id {custom_id!r} is used on an earlier line; the custom_id "
                "of each request in a batch must be unique.", "custom_id")
    if entry.get("method") != "POST":
        return ("invalid_method", f"The method must be 'POST', got {entry.get('method')!r}.", "method")
    if entry.get("url") != endpoint:
        return ("invalid_url", f"The url {entry.get('url')!r} does not match the batch endpoint {endpoint!r}.", "url")
    body = entry.get("body")
    if not isinstance(body, dict):
        return ("invalid_request", "The 'body' must be a JSON object (the request to run).", "body")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return ("missing_required_parameter", "The body needs a 'model'.", "body.model")
    unknown = sorted(set(entry) - {"custom_id", "method", "url", "body"})
    if unknown:
        return ("invalid_request", f"Unknown parameter: {unknown[0]!r}.", unknown[0])
    return None


def first_model(data: bytes) -> str | None:
    """The model of the file's first line, when it reads (the batch's ``model``)."""
    try:
        for _, raw in _lines(data):
            body = json.loads(raw).get("body")
            model = body.get("model") if isinstance(body, dict) else None
            return model if isinstance(model, str) and model else None
    except (ValueError, AttributeError):
        return None
    return None


def estimate_tokens(body: dict[str, Any]) -> int:
    """The input tokens a line enqueues (instructions plus input text, as :mod:`.model`
    counts them; history reached through ``previous_response_id`` is not counted)."""
    instructions = body.get("instructions")
    total = count_tokens(instructions if isinstance(instructions, str) else "")
    raw = body.get("input")
    if isinstance(raw, str):
        return total + count_tokens(raw)
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict):
            try:
                total += count_tokens(item_text(item))
            except (AttributeError, TypeError):  # a malformed item: the line's run will say so
                continue
    return total
