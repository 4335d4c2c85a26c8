"""The request journal: the HTTP requests the emulator received, oldest first.

``GET /_emulator/requests`` serves :meth:`Journal.entries`. Each entry is
``{"method", "path", "query", "body", "time", "headers", "status"}`` where ``status`` is
the HTTP status it was answered with (None while it is being answered), ``body`` is the parsed
JSON body (or ``null``), ``time`` the arrival time in epoch seconds, and ``headers`` the
values of an allowlist of non-credential headers (:data:`ALLOWED_HEADERS`, plus the
openai SDK's ``x-stainless-*``); every other header is left out, name and value.
Credential-looking values inside MCP tool definitions in a body (``tools[].headers``,
``tools[].authorization``) are replaced by ``"<redacted>"``.

The journal is bounded (:class:`JournalLimits`): a long string keeps its head, a long
list its first items, and the entry then carries ``"truncated": [{"path", ...}]`` saying
what was cut; past ``max_entries`` or ``max_total_chars`` the oldest entries go
(:attr:`Journal.dropped` counts them).
"""
from __future__ import annotations

import copy
import re
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

# Names that may carry credentials; matched anywhere in the lower-cased name.
_SECRET_NAME = re.compile(r"auth|key|token|secret|cookie|passw|credential|signature|session")
# The only headers whose values the journal keeps (lower-case).
ALLOWED_HEADERS = frozenset({
    "accept", "content-type", "user-agent", "openai-beta", "idempotency-key",
    "x-ms-client-request-id", "x-ms-oai-image-generation-deployment",
})
_ALLOWED_PREFIXES = ("x-stainless-",)  # the openai SDK's platform and retry headers
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
        if low in ALLOWED_HEADERS or (low.startswith(_ALLOWED_PREFIXES) and not is_secret_name(low)):
            out[low] = value[:JournalLimits.header_chars]
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


@dataclass(frozen=True)
class JournalLimits:
    """How much the journal keeps. Sizes are in characters of JSON text (about bytes)."""

    max_entries: int = 1000
    max_total_chars: int = 64 * 2**20
    max_entry_chars: int = 8 * 2**20
    max_string_chars: int = 4 * 2**20
    head_chars: int = 1024       # what a cut string keeps
    max_depth: int = 64          # deeper values become a marker
    header_chars: int = 512


def _clean(text: str) -> str:
    """``text`` with lone surrogates replaced, so the journal always serialises."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


class _Bounder:
    """A bounded copy of one body, and the list of what was cut."""

    def __init__(self, limits: JournalLimits) -> None:
        self.limits = limits
        self.left = limits.max_entry_chars
        self.cuts: list[dict[str, Any]] = []

    def copy(self, value: Any, path: str, depth: int) -> Any:
        lim = self.limits
        if isinstance(value, str):
            value = _clean(value)
            if len(value) > lim.max_string_chars or len(value) > self.left:
                keep = min(lim.head_chars, max(self.left, 0))
                self.cuts.append({"path": path or "(body)", "chars": len(value), "kept": keep})
                value = value[:keep]
            self.left -= len(value) + 2
            return value
        if not isinstance(value, (dict, list)):
            self.left -= 8
            return value
        if depth >= lim.max_depth:
            self.cuts.append({"path": path or "(body)", "depth": depth})
            return None
        if isinstance(value, list):
            out: list[Any] = []
            for index, item in enumerate(value):
                if self.left <= 0:
                    self.cuts.append({"path": path or "(body)", "items": len(value), "kept": index})
                    break
                out.append(self.copy(item, f"{path}[{index}]", depth + 1))
            return out
        obj: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if self.left <= 0:
                self.cuts.append({"path": path or "(body)", "keys": len(value), "kept": index})
                break
            key = _clean(str(key))[:lim.head_chars]
            self.left -= len(key) + 4
            obj[key] = self.copy(item, f"{path}.{key}" if path else key, depth + 1)
        return obj


class Journal:
    """Thread-safe bounded list of received requests (see the module docstring)."""

    def __init__(self, limits: JournalLimits | None = None) -> None:
        self.limits = limits or JournalLimits()
        self._lock = threading.Lock()
        self._entries: deque[tuple[int, dict[str, Any]]] = deque()
        self._total = 0
        self.dropped = 0

    def record(self, method: str, path: str, body: Any, headers: Any, time: float,
               query: str = "") -> dict[str, Any]:
        bounder = _Bounder(self.limits)
        kept = bounder.copy(body, "", 0)
        entry = {"method": method, "path": _clean(path)[:4096], "query": _clean(query)[:4096],
                 "body": redact_body(kept), "time": time, "headers": safe_headers(headers), "status": None}
        if bounder.cuts:
            entry["truncated"] = bounder.cuts
        size = self.limits.max_entry_chars - bounder.left + len(entry["path"]) + len(entry["query"])
        with self._lock:
            self._entries.append((size, entry))
            self._total += size
            while len(self._entries) > 1 and (len(self._entries) > self.limits.max_entries
                                              or self._total > self.limits.max_total_chars):
                old, _ = self._entries.popleft()
                self._total -= old
                self.dropped += 1
        return entry

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for _, entry in self._entries]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._total = 0
            self.dropped = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
