"""Vector store operations on the endpoint, through the client seam
(:class:`~flowrun.client.ResponsesClient`: its SDK, its error mapping). Plain dicts in
and out; every SDK error becomes a :mod:`flowrun.errors` class."""

from __future__ import annotations

from typing import Any

from .client import _dump

BATCH_LIMIT = 500
"""Files per batch request (the API allows 2,000; smaller batches show progress sooner)."""


def _sdk(client: Any) -> Any:
    return client.sdk.vector_stores


async def create(client: Any, name: str, expires_days: int, metadata: dict[str, str]) -> dict[str, Any]:
    return _dump(await client._call(_sdk(client).create(
        name=name, metadata=metadata, expires_after={"anchor": "last_active_at", "days": expires_days})))


async def retrieve(client: Any, store_id: str) -> dict[str, Any]:
    return _dump(await client._call(_sdk(client).retrieve(store_id)))


async def update_metadata(client: Any, store_id: str, metadata: dict[str, str]) -> dict[str, Any]:
    return _dump(await client._call(_sdk(client).update(store_id, metadata=metadata)))


async def delete(client: Any, store_id: str) -> None:
    await client._call(_sdk(client).delete(store_id))


async def find(client: Any, name: str) -> dict[str, Any] | None:
    """The newest store named ``name`` that has not expired, or None (all pages)."""
    page = await client._call(_sdk(client).list(order="desc", limit=100))
    while True:
        for store in page.data:
            data = _dump(store)
            if data.get("name") == name and data.get("status") != "expired":
                return data
        if not getattr(page, "has_more", False) or not page.data:
            return None
        page = await client._call(_sdk(client).list(order="desc", limit=100, after=page.data[-1].id))


async def files(client: Any, store_id: str, status: str | None = None) -> list[dict[str, Any]]:
    """The store's files (all pages), optionally only those with ``status``."""
    extra = {"filter": status} if status else {}
    page = await client._call(_sdk(client).files.list(store_id, order="asc", limit=100, **extra))
    out = [_dump(f) for f in page.data]
    while getattr(page, "has_more", False) and page.data:
        page = await client._call(_sdk(client).files.list(store_id, order="asc", limit=100,
                                                           after=page.data[-1].id, **extra))
        out.extend(_dump(f) for f in page.data)
    return out


async def remove_file(client: Any, store_id: str, file_id: str) -> None:
    await client._call(_sdk(client).files.delete(file_id, vector_store_id=store_id))


async def add_batch(client: Any, store_id: str, entries: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One file batch of ``(file_id, attributes)``; per-file attributes only when any is set."""
    batches = _sdk(client).file_batches
    if any(attrs for _, attrs in entries):
        files = [{"file_id": fid, **({"attributes": attrs} if attrs else {})} for fid, attrs in entries]
        return _dump(await client._call(batches.create(store_id, files=files)))
    return _dump(await client._call(batches.create(store_id, file_ids=[fid for fid, _ in entries])))


async def batch(client: Any, store_id: str, batch_id: str) -> dict[str, Any]:
    return _dump(await client._call(_sdk(client).file_batches.retrieve(batch_id, vector_store_id=store_id)))


async def failed_in_batch(client: Any, store_id: str, batch_id: str) -> list[dict[str, Any]]:
    page = await client._call(_sdk(client).file_batches.list_files(
        batch_id, vector_store_id=store_id, filter="failed", limit=100))
    return [_dump(f) for f in page.data]


async def delete_file(client: Any, file_id: str) -> None:
    """Delete an uploaded file (files API)."""
    await client._call(client.sdk.files.delete(file_id))
