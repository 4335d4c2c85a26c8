"""``allowed_domains``: which hosts a computer-use browser may reach."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import ExecutionError


@dataclass(frozen=True)
class AllowedHost:
    """One ``allowed_domains`` entry: a host (its subdomains too), optionally one port."""

    host: str
    port: int | None = None

    def allows(self, host: str, port: int | None) -> bool:
        if self.port is not None and port != self.port:
            return False
        return host == self.host or host.endswith("." + self.host)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}" if self.port is not None else self.host


def parse_allowed(entries: list[str], start_url: str | None) -> list[AllowedHost]:
    """``allowed_domains`` as hosts; by default the start URL's host. An entry may be a
    host (``example.com``: the host and its subdomains, any port), ``host:port``, or a
    URL (its host and port)."""
    out: list[AllowedHost] = []
    for raw in entries:
        text = str(raw).strip().lower()
        if not text:
            continue
        if "://" in text:
            parts = urlsplit(text)
            host, port = parts.hostname or "", parts.port
        else:
            parts = urlsplit("//" + text)
            try:
                host, port = parts.hostname or "", parts.port
            except ValueError:
                raise ExecutionError(f"allowed_domains: {raw!r} is not a host") from None
        host = host.lstrip("*.").rstrip(".")
        if not host:
            raise ExecutionError(f"allowed_domains: {raw!r} is not a host")
        out.append(AllowedHost(host, port))
    if not entries and start_url:
        host = urlsplit(start_url).hostname
        if host:
            out.append(AllowedHost(host.lower()))
    return out


def _port(parts: Any) -> int | None:
    try:
        port = parts.port
    except ValueError:
        return -1
    if port is None:
        return {"http": 80, "ws": 80, "https": 443, "wss": 443}.get(parts.scheme)
    return port


_AMBIGUOUS = re.compile(r"[\\\x00-\x20\x7f]")


def url_allowed(url: str, allowed: list[AllowedHost]) -> bool:
    """True for an http(s) / ws(s) URL whose host is allowed.

    Python and the browser must agree on the host, so anything they may read differently
    is refused: backslashes and control characters or spaces anywhere (browsers treat
    ``\\`` as ``/`` and drop tabs and newlines), and userinfo or percent-escapes in the
    authority (``http://allowed\\@other/``, ``http://a%2eb/``)."""
    if _AMBIGUOUS.search(url):
        return False
    parts = urlsplit(url)
    if "@" in parts.netloc or "%" in parts.netloc:
        return False
    if parts.scheme not in ("http", "https", "ws", "wss"):
        return False
    host = (parts.hostname or "").lower().rstrip(".")
    port = _port(parts)
    return bool(host) and port != -1 and any(a.allows(host, port) for a in allowed)


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what the model is told about a blocked one."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname:
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        try:
            port = f":{parts.port}" if parts.port is not None else ""
        except ValueError:
            port = ""
        return f"{parts.scheme}://{host}{port}"
    return (parts.scheme or "url") + ":"
