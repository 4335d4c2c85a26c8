"""Request bodies: the one place the emulator parses what a client sent.

:func:`read_body` serves every API and control route. A JSON body (``application/json``
or no content type) must be strict JSON: UTF-8, no ``NaN``/``Infinity``, numbers that
fit a double, at most :data:`MAX_DEPTH` levels of nesting, and no lone UTF-16
surrogates (a ``"\\udc80"`` escape). A form body (``multipart/form-data`` or
``application/x-www-form-urlencoded``) is parsed once, here, into Starlette's
``FormData``. Anything else is passed on as ``None``. A bad body raises
:class:`~.errors.APIError` (400, OpenAI error envelope) with what was wrong and where.
"""
from __future__ import annotations

import json
import math
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import ClientDisconnect, Request

from .errors import APIError

MAX_DEPTH = 64
_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
_PREFIX = "We could not parse the JSON body of your request"


def _bad(detail: str, param: str | None = None) -> APIError:
    return APIError(400, f"{_PREFIX}: {detail}. The body must be valid JSON (UTF-8).", param=param)


def _reject_constant(name: str) -> Any:
    raise _bad(f"'{name}' is not a JSON value; send a number or null")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _bad(f"the number {text[:40]} is out of range")
    return value


def _where(path: list[str | int]) -> str | None:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or None


def _check_text(text: str, path: list[str | int], what: str = "string") -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        where = _where(path)
        raise _bad(f"the {what} at '{where or '(top level)'}' contains a lone UTF-16 surrogate "
                   f"(\\u{ord(bad):04x} at character {exc.start}); escape characters outside the "
                   f"Basic Multilingual Plane as a surrogate pair", where) from None


def validate(value: Any) -> None:
    """Check a parsed body's nesting depth and strings (iteratively: no recursion limit)."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if len(path) > MAX_DEPTH:
            where = _where(path[:MAX_DEPTH])
            raise _bad(f"it is nested more than {MAX_DEPTH} levels deep (at '{where}')", where)
        if isinstance(item, str):
            _check_text(item, path)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key, path + [key], "key")
                if isinstance(child, (dict, list, str)):
                    stack.append((child, path + [key]))
        elif isinstance(item, list):
            for index, child in enumerate(item):
                if isinstance(child, (dict, list, str)):
                    stack.append((child, path + [index]))


def parse_json(raw: bytes) -> Any:
    """Strict JSON from ``raw`` (``None`` when empty); :class:`APIError` 400 when bad."""
    if not raw:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(f"byte {exc.start} (0x{raw[exc.start]:02x}) is not valid UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except APIError:
        raise
    except json.JSONDecodeError as exc:
        raise _bad(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise _bad(f"it is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise _bad(str(exc).rstrip(".")) from None
    validate(value)
    return value


def is_form(request: Request) -> bool:
    ctype = request.headers.get("content-type", "").lower()
    return ctype.startswith(_FORM_TYPES)


async def read_body(request: Request) -> Any:
    """The request's body: parsed JSON, ``FormData`` for a form, else ``None``."""
    if is_form(request):
        try:
            return await request.form()
        except Exception as exc:  # MultiPartException or Starlette's HTTPException(400)
            detail = str(getattr(exc, "detail", None) or getattr(exc, "message", None) or exc).rstrip(".")
            raise APIError(400, f"We could not parse the multipart/form-data body of your request: "
                                f"{detail}. Send a form with a boundary, as HTTP clients do for "
                                "file uploads.") from None
    try:
        raw = await request.body()
    except ClientDisconnect:  # gone mid-body (or cut off by the body deadline): nobody to answer
        raise APIError(400, "The client disconnected before the request body was complete.") from None
    ctype = request.headers.get("content-type", "")
    if raw and ("json" in ctype.lower() or not ctype):
        return parse_json(raw)
    return None


def form_of(body: Any, expected: str = "a multipart/form-data upload") -> FormData:
    """``body`` as a form, or a 400 saying what was expected."""
    if not isinstance(body, FormData):
        raise APIError(400, f"Expected {expected}.")
    return body
