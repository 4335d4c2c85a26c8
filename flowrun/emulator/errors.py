"""HTTP errors in the OpenAI error envelope ``{"error": {"message", "type", "param", "code"}}``."""
from __future__ import annotations

import math
from typing import Any

DEFAULT_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "invalid_request_error", 409: "invalid_request_error",
                 422: "invalid_request_error", 429: "rate_limit_error"}
DEFAULT_CODES = {429: "rate_limit_exceeded", 500: "server_error", 502: "server_error",
                 503: "service_unavailable", 504: "timeout"}


class APIError(Exception):
    """An error answer. Raised anywhere in the emulator; the server renders it."""

    def __init__(self, status: int, message: str, *, type: str | None = None,
                 param: str | None = None, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or DEFAULT_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        self.param = param
        self.code = code if code is not None else DEFAULT_CODES.get(status)
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}

    def headers(self) -> dict[str, str]:
        """``Retry-After`` in whole seconds (at least 1, as the spec says) plus the
        millisecond-precise ``retry-after-ms`` the openai SDK prefers."""
        if self.retry_after is None:
            return {}
        return {"retry-after": str(max(1, math.ceil(self.retry_after))),
                "retry-after-ms": str(int(self.retry_after * 1000))}


def not_found(what: str, ident: str, param: str | None = None) -> APIError:
    return APIError(404, f"{what} with id '{ident}' not found.", param=param, code="not_found")
