"""The Files and Batches APIs a batch run uses, over the run's
:class:`~flowrun.client.ResponsesClient` (same SDK client, same error mapping); every call
is retried on 429 / 5xx / connection errors with the default policy."""

from __future__ import annotations

from typing import Any

from ..client import _dump
from ..errors import RequestRejected
from ..retry import with_retries
from .lines import ENDPOINT

COMPLETION_WINDOW = "24h"


class BatchService:
    """Upload, create, poll, cancel, list and download, for one provider."""

    def __init__(self, client: Any, on_retry: Any = None):
        self.client = client
        self.sdk = client.sdk
        self.on_retry = on_retry

    async def _retrying(self, make: Any) -> Any:
        return await with_retries(lambda: self.client._call(make()), None, self.on_retry)

    async def upload(self, name: str, data: bytes) -> str:
        """A JSONL input file, purpose ``batch``; its file id."""
        try:
            created = await self._retrying(lambda: self.sdk.files.create(file=(name, data), purpose="batch"))
        except RequestRejected as exc:
            raise _no_batch_api(exc, "POST /files") from None
        return created.id

    async def create(self, input_file_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        try:
            return _dump(await self._retrying(lambda: self.sdk.batches.create(
                input_file_id=input_file_id, endpoint=ENDPOINT, completion_window=COMPLETION_WINDOW,
                metadata=metadata)))
        except RequestRejected as exc:
            raise _no_batch_api(exc, "POST /batches") from None

    async def retrieve(self, batch_id: str) -> dict[str, Any]:
        return _dump(await self._retrying(lambda: self.sdk.batches.retrieve(batch_id)))

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        return _dump(await self._retrying(lambda: self.sdk.batches.cancel(batch_id)))

    async def find_by_file(self, input_file_id: str) -> dict[str, Any] | None:
        """The batch made from this input file, if there is one (newest first, every page)."""
        page = await self._retrying(lambda: self.sdk.batches.list(limit=100))
        while True:
            for batch in page.data:
                if batch.input_file_id == input_file_id:
                    return _dump(batch)
            if not getattr(page, "has_more", False) or not page.data:
                return None
            after = page.data[-1].id
            page = await self._retrying(lambda: self.sdk.batches.list(limit=100, after=after))

    async def content(self, file_id: str) -> bytes:
        return await with_retries(lambda: self.client.file_content(file_id), None, self.on_retry)


def _no_batch_api(exc: RequestRejected, what: str) -> RequestRejected:
    """A 404 / 405 where the Batch API should be: say so, and what to do."""
    if exc.status not in (404, 405):
        return exc
    return RequestRejected(f"{exc}; the endpoint has no Batch API ({what} answered {exc.status}): run without "
                           "--batch, or use an OpenAI or Azure OpenAI endpoint", exc.status)
