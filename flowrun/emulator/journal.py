"""The request journal: every HTTP request the emulator received, oldest first.

``GET /_emulator/requests`` serves :meth:`Journal.entries`. Each entry is
``{"method", "path", "query", "body", "time", "headers", "status"}`` where ``status``
is the HTTP status it was answered with (None while it is being answered), ``body`` is the parsed
JSON body (or ``null``), ``time`` the arrival time in epoch seconds, and ``headers`` a
selection of non-credential headers. Credentials never enter the journal:
``Authorization``, ``api-key`` and any header whose name looks like a secret are
dropped, and credential-looking values inside MCP tool definitions in a body
(``tools[].headers``, ``tools[].authorization``) are replaced by ``"<redacted>"``.
"""
from __future__ import annotations

import copy
import re
import threading
from typing import Any

# Header names that may carry credentials; matched anywhere in the lower-cased name.
_SECRET_NAME = re.compile(r"auth|key|token|secret|cookie|passw|credential|signature|session")
# Transport-level headers with no diagnostic value.
_SKIP = {"host", "content-length", "connection", "accept-encoding", "transfer-encoding"}
REDACTED = "<redacted>"


def is_secret_name(name: str) -> bool:
    """True when a header or field name looks like it carries a credential."""
    return bool(_SECRET_NAME.search(name.lower()))


def safe_headers(headers: Any) -> dict[str, str]:
    """The journal-safe subset of ``headers`` (an iterable of name/value pairs or a mapping)."""
    items = headers.items() if hasattr(headers, "items") else headers
    out: dict[str, str] = {}
    for name, value in items:
        low = name.lower()
        if low in _SKIP or is_secret_name(low):
            continue
        out[low] = value
    return out


def redact_body(body: Any) -> Any:
    """A copy of a request body with credential-looking MCP tool settings masked."""
    if not isinstance(body, dict) or not isinstance(body.get("tools"), list):
        return body
    if not any(isinstance(t, dict) and ("headers" in t or "authorization" in t) for t in body["tools"]):
        return body
    body = copy.deepcopy(body)
    for tool in body["tools"]:
        if not isinstance(tool, dict):
            continue
        if tool.get("authorization") is not None:
            tool["authorization"] = REDACTED
        headers = tool.get("headers")
        if isinstance(headers, dict):
            for name in headers:
                if is_secret_name(name):
                    headers[name] = REDACTED
    return body


class Journal:
    """Thread-safe append-only list of received requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []

    def record(self, method: str, path: str, body: Any, headers: Any, time: float,
               query: str = "") -> dict[str, Any]:
        entry = {"method": method, "path": path, "query": query, "body": redact_body(body),
                 "time": time, "headers": safe_headers(headers), "status": None}
        with self._lock:
            self._entries.append(entry)
        return entry

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._entries]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
