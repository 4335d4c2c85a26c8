"""Credentials, checked when the emulator is given a key (``flowrun emulator --api-key KEY``,
``Emulator(api_key=...)``); without one every request is let in.

As the services do: OpenAI-style paths (``/v1/...``) take ``Authorization: Bearer KEY``;
Azure v1-style paths (``/openai/v1/...``) take the ``api-key`` header or a bearer token.
A missing or wrong key is a 401 in the OpenAI error envelope (``invalid_api_key``); the
message never repeats the key that was sent.
"""

from __future__ import annotations

import hmac
from typing import Any, Mapping

from .errors import APIError

AZURE_PREFIX = "/openai/"


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def check_credentials(api_key: str | None, path: str, headers: Mapping[str, Any]) -> None:
    """Raise a 401 :class:`APIError` unless the request carries ``api_key``."""
    if not api_key:
        return
    azure = path.startswith(AZURE_PREFIX)
    offered = [_bearer(headers)]
    if azure:
        offered.append(headers.get("api-key"))
    if any(o and hmac.compare_digest(o.encode(), api_key.encode()) for o in offered):
        return
    if not any(offered):
        how = "an 'api-key' header or 'Authorization: Bearer KEY'" if azure else "'Authorization: Bearer KEY'"
        raise APIError(401, f"You didn't provide an API key. Send it as {how}.",
                       type="invalid_request_error", code="invalid_api_key")
    raise APIError(401, "Incorrect API key provided.", type="invalid_request_error", code="invalid_api_key")
