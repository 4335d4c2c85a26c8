"""The Responses client: one seam over the official ``openai`` SDK (async).

Everything flowrun sends to an endpoint goes through :class:`ResponsesClient`, and every
SDK exception is mapped to a :mod:`flowrun.errors` class in :func:`map_sdk_error`.
The SDK's own retries are off: flowrun retries with its step policy (``retry.py``).
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import json
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from .errors import (
    ClientError,
    ConnectionFailed,
    EndpointUnreachable,
    RateLimited,
    RequestRejected,
    ServerError,
)
from .providers import ENTRA_SCOPE, ProviderConfig

TERMINAL = ("completed", "failed", "cancelled", "incomplete")


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        with contextlib.suppress(ValueError):
            return float(value) / 1000.0
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def map_sdk_error(exc: BaseException) -> ClientError:
    """The one place where openai SDK errors become flowrun errors."""
    import openai

    if isinstance(exc, ClientError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = _error_message(exc)
        headers = getattr(exc.response, "headers", None)
        if status == 429:
            return RateLimited(f"rate limited (429): {message}", 429, _retry_after(headers))
        if status >= 500:
            return ServerError(f"server error ({status}): {message}", status, _retry_after(headers))
        if status in (401, 403):
            return RequestRejected(
                f"not authorized ({status}): {message}; check the API key or Entra ID sign-in",
                status,
            )
        return RequestRejected(f"request rejected ({status}): {message}", status)
    if isinstance(exc, openai.APITimeoutError):
        return ConnectionFailed(f"request timed out: {_endpoint(exc)}")
    if isinstance(exc, openai.APIConnectionError):
        unreachable = _unreachable(exc)
        if unreachable:
            return EndpointUnreachable(unreachable)
        return ConnectionFailed(f"connection failed: {_endpoint(exc)}{_cause(exc)}")
    if isinstance(exc, openai.APIError):
        return ServerError(f"API error: {exc.message}")
    return ClientError(f"{type(exc).__name__}: {exc}")


def _endpoint(exc: Any) -> str:
    """``METHOD URL`` of the failed request, without credentials or query."""
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None)
    if url is None:
        return "(no request)"
    port = f":{url.port}" if url.port else ""
    return f"{request.method} {url.scheme}://{url.host}{port}{url.path}"


def _unreachable(exc: Any) -> str | None:
    """What to say when nothing answers at the endpoint (the connection was refused, or
    the host name does not resolve); None for other connection failures."""
    import socket

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, (ConnectionRefusedError, socket.gaierror)):
            break
        cause = cause.__cause__ or cause.__context__
    else:
        return None
    url = getattr(getattr(exc, "request", None), "url", None)
    if isinstance(cause, ConnectionRefusedError):
        why = "connection refused (is the server running, on this port?)"
    else:
        why = f"host {getattr(url, 'host', '?')} not found ({cause.strerror or cause})"
    return (f"cannot reach {_endpoint(exc)}: {why}; check the base URL (--base-url, "
            "OPENAI_BASE_URL, AZURE_OPENAI_ENDPOINT or the flow's provider:)")


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    text = str(cause).strip() if cause is not None else ""
    return f" ({text})" if text else ""


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return getattr(exc, "message", None) or str(exc)


@functools.lru_cache(maxsize=1)
def tls_context() -> Any:
    """The TLS context every client shares: the one httpx would make (the system's CA
    store; ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` honoured), built once. Loading the CA
    store costs ~40 ms, which each of a test run's many clients would pay again."""
    import httpx2

    return httpx2.create_ssl_context()


def _dump(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    return obj.model_dump(mode="json", exclude_none=True, warnings=False)


class ResponsesClient:
    """Async access to the Responses, Files and Containers APIs of one provider.

    ``budget``: a rate budget (:class:`flowrun.ratelimit.Budget`) every model request
    passes before it is sent and reports back to (usage, ``x-ratelimit-*`` headers, 429s);
    None sends at once."""

    budget: Any = None

    def __init__(self, provider: ProviderConfig, timeout: float = 600.0, credential: Any = None):
        """``credential``: an async azure-identity credential for Entra ID (default:
        ``DefaultAzureCredential``)."""
        import openai

        self.provider = provider
        api_key: Any = provider.api_key
        self._credential: Any = None
        self._sync_credential: Any = None
        if provider.kind == "azure" and provider.auth == "entra_id":
            api_key = self._entra_token_provider(credential)
        self.sdk = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=provider.base_url,
            max_retries=0,
            timeout=timeout,
            default_headers=provider.headers or None,
            # the SDK's own defaults (pool, redirects), with one TLS context per process
            http_client=openai.DefaultAsyncHttpxClient(timeout=timeout, verify=tls_context()),
        )

    def _entra_token_provider(self, credential: Any) -> Any:
        """An async bearer-token callable for the SDK. The default credential is the sync
        ``DefaultAzureCredential`` (its async twin needs aiohttp), asked in a thread."""
        import asyncio

        if credential is not None and asyncio.iscoroutinefunction(getattr(credential, "get_token", None)):
            from azure.identity.aio import get_bearer_token_provider as async_provider

            self._credential = credential
            return async_provider(credential, ENTRA_SCOPE)
        from azure.identity import DefaultAzureCredential, get_bearer_token_provider

        try:
            self._sync_credential = credential or DefaultAzureCredential()
        except Exception as exc:
            raise RequestRejected(f"Microsoft Entra ID is not available: {exc}") from None
        sync_provider = get_bearer_token_provider(self._sync_credential, ENTRA_SCOPE)

        async def token() -> str:
            return await asyncio.to_thread(sync_provider)

        return token

    async def close(self) -> None:
        await self.sdk.close()
        if self._credential is not None:
            await self._credential.close()
        if self._sync_credential is not None and hasattr(self._sync_credential, "close"):
            self._sync_credential.close()

    async def __aenter__(self) -> "ResponsesClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def _call(self, coro: Awaitable[Any]) -> Any:
        import openai

        try:
            return await coro
        except openai.OpenAIError as exc:
            raise map_sdk_error(exc) from None
        except Exception as exc:
            if type(exc).__module__.startswith("azure."):  # Entra ID token acquisition
                raise RequestRejected(
                    f"Microsoft Entra ID sign-in failed: {str(exc).splitlines()[0]}; sign in "
                    "with `az login`, use a managed identity, or set AZURE_OPENAI_API_KEY"
                ) from None
            raise

    # -- responses -------------------------------------------------------------------
    async def create(self, params: dict[str, Any]) -> dict[str, Any]:
        # the raw JSON: flowrun works on plain dicts, and building the SDK's models only
        # to dump them again costs more than the request itself on a busy run. The SDK's
        # documented ``post`` sends the (already plain JSON) params as they are: its typed
        # ``responses.create`` would walk them against its type hints first (a fifth of
        # the client's CPU per request)
        import httpx2

        ticket = await self.budget.acquire(params) if self.budget is not None else None
        try:
            raw = await self._call(self.sdk.post("/responses", cast_to=httpx2.Response, body=params))
        except ClientError as exc:
            if ticket is not None:
                self.budget.failed(ticket, exc)
            raise
        body = json.loads(raw.content)
        if ticket is not None:
            self.budget.settle(ticket, raw.headers, body.get("usage"), params)
        return body

    async def stream(
        self,
        params: dict[str, Any],
        on_event: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
    ) -> dict[str, Any]:
        """Create with ``stream: true``; returns the final response, calling ``on_event``
        for each event. A stream that ends before ``response.completed`` is a
        :class:`ConnectionFailed` whose ``details`` say where to resume."""
        ticket = await self.budget.acquire(params) if self.budget is not None else None
        try:
            stream = await self._call(self.sdk.responses.create(**params, stream=True))
        except ClientError as exc:
            if ticket is not None:
                self.budget.failed(ticket, exc)
            raise
        final = await self._consume(stream, on_event)
        if ticket is not None:
            self.budget.settle(ticket, getattr(getattr(stream, "response", None), "headers", None),
                               final.get("usage"), params)
        return final

    async def resume_stream(
        self,
        response_id: str,
        starting_after: int | None,
        on_event: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
    ) -> dict[str, Any]:
        """Resume a background response's stream after sequence number ``starting_after``
        (None: from its first event)."""
        extra = {} if starting_after is None else {"starting_after": starting_after}
        stream = await self._call(self.sdk.responses.retrieve(response_id, stream=True, **extra))
        return await self._consume(stream, on_event, response_id)

    async def _consume(self, stream: Any, on_event: Any, response_id: str | None = None) -> dict[str, Any]:
        import openai

        last_seq, count = -1, 0
        final: dict[str, Any] | None = None

        def broken(message: str) -> ConnectionFailed:
            err = ConnectionFailed(message)
            err.resume = (response_id, last_seq)  # type: ignore[attr-defined]
            return err

        try:
            async for event in _iterate(stream):
                count += 1
                data = _dump(event)
                last_seq = data.get("sequence_number", last_seq)
                resp = data.get("response")
                if isinstance(resp, dict) and resp.get("id"):
                    response_id = resp["id"]
                if on_event is not None:
                    result = on_event(data)
                    if result is not None:
                        await result
                etype = data.get("type")
                if etype in ("response.completed", "response.incomplete", "response.failed"):
                    final = data["response"]
                elif etype == "error":
                    raise ServerError(f"stream error: {data.get('message') or data}")
        except openai.APITimeoutError as exc:
            raise broken(f"stream timed out after {count} events: {_endpoint(exc)}") from None
        except openai.APIConnectionError as exc:
            raise broken(f"stream dropped after {count} events{_cause(exc)}") from None
        except openai.OpenAIError as exc:
            err = map_sdk_error(exc)
            err.resume = (response_id, last_seq)  # type: ignore[attr-defined]
            raise err from None
        except (OSError, EOFError) as exc:  # pragma: no cover - transport specific
            raise broken(f"stream dropped after {count} events ({exc})") from None
        if final is None:
            raise broken(f"stream dropped after {count} events (it ended without "
                         "response.completed)")
        return final

    async def retrieve(self, response_id: str) -> dict[str, Any]:
        raw = await self._call(self.sdk.responses.with_raw_response.retrieve(response_id))
        return json.loads(raw.content)

    async def cancel(self, response_id: str) -> dict[str, Any]:
        return _dump(await self._call(self.sdk.responses.cancel(response_id)))

    async def delete(self, response_id: str) -> None:
        await self._call(self.sdk.responses.delete(response_id))

    async def input_items(self, response_id: str) -> list[dict[str, Any]]:
        page = await self._call(self.sdk.responses.input_items.list(response_id, order="asc"))
        items = [_dump(i) for i in page.data]
        while getattr(page, "has_more", False):
            page = await self._call(page.get_next_page())
            items.extend(_dump(i) for i in page.data)
        return items

    # -- conversations -----------------------------------------------------------------
    async def create_conversation(self, metadata: dict[str, str] | None = None) -> dict[str, Any]:
        """A new, empty Conversation (``POST /conversations``)."""
        return _dump(await self._call(self.sdk.conversations.create(metadata=metadata)))

    # -- files and containers ----------------------------------------------------------
    async def upload_file(self, path: Path, purpose: str | None = None) -> str:
        with open(path, "rb") as fh:
            created = await self._call(
                self.sdk.files.create(file=(path.name, fh.read()), purpose=purpose or self.provider.file_purpose)
            )
        return created.id

    async def file_content(self, file_id: str) -> bytes:
        resp = await self._call(self.sdk.files.content(file_id))
        return resp.content if hasattr(resp, "content") else bytes(resp)

    async def container_files(self, container_id: str) -> list[dict[str, Any]]:
        """Every file in a code interpreter container, oldest first (all pages)."""
        files = self.sdk.containers.files
        page = await self._call(files.list(container_id, order="asc", limit=100))
        items = [_dump(f) for f in page.data]
        while getattr(page, "has_more", False) and page.data:
            page = await self._call(files.list(container_id, order="asc", limit=100,
                                               after=page.data[-1].id))
            items.extend(_dump(f) for f in page.data)
        return items

    async def container_file_content(self, container_id: str, file_id: str) -> bytes:
        resp = await self._call(
            self.sdk.containers.files.content.retrieve(file_id, container_id=container_id)
        )
        return resp.content if hasattr(resp, "content") else bytes(resp)

    async def add_container_file(
        self, container_id: str, path: Path | None = None, file_id: str | None = None
    ) -> dict[str, Any]:
        """Put a local file (uploaded) or an uploaded file id into a container."""
        files = self.sdk.containers.files
        if path is not None:
            created = await self._call(files.create(container_id, file=(path.name, path.read_bytes())))
        else:
            created = await self._call(files.create(container_id, file_id=file_id))
        return _dump(created)


async def _iterate(stream: Any) -> AsyncIterator[Any]:
    async with stream as s:
        async for event in s:
            yield event
