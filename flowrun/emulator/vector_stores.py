"""The Vector stores API of the emulator, over uploaded files (:mod:`.files`)::

    POST   /vector_stores                      create (file_ids, name, expires_after, ...)
    GET    /vector_stores                      list   ?limit&order&after&before
    GET    /vector_stores/{id}                 POST: update (name, expires_after, metadata)
    DELETE /vector_stores/{id}
    POST   /vector_stores/{id}/files           add one file (file_id, attributes, chunking_strategy)
    GET    /vector_stores/{id}/files           list   ?filter=in_progress|completed|failed|cancelled
    GET    /vector_stores/{id}/files/{fid}     POST: update attributes; DELETE: remove
    GET    /vector_stores/{id}/files/{fid}/content
    POST   /vector_stores/{id}/file_batches    add files (file_ids or files), one batch
    GET    /vector_stores/{id}/file_batches/{bid}     POST .../cancel; GET .../files
    POST   /vector_stores/{id}/search          query, filters, max_num_results, ranking_options

Request bodies are checked against the spec's schemas (400 naming the path), and so
are the answers in the tests. Adding a file reads its text (:func:`.fulltext.document_text`),
chunks it (``chunking_strategy``: ``auto`` is 800 tokens with 400 overlap, ``static``
as given) and indexes the chunks in SQLite FTS5; a file that cannot be read is
``failed`` with ``last_error`` ``unsupported_file``. Processing takes time as on the
service: the files of one request become ``completed`` one after another within
:data:`PROCESSING_S` (a store, batch or file is ``in_progress`` until then), and only
completed files are searched.

Search ranks chunks by bm25 (:mod:`.fulltext`), keeps those whose file attributes pass
``filters`` (:func:`matches`: ``eq ne gt gte lt lte in nin`` and ``and`` / ``or``
compounds, nested) and whose score reaches ``ranking_options.score_threshold``, and
returns at most ``max_num_results`` (default 10). ``rewrite_query: true`` drops stop
words from ``search_query``. A store whose ``expires_after`` has passed (days after
``last_active_at``) is ``expired`` and can no longer be searched.
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from .conformance import check_body
from .errors import APIError, not_found
from .files import file_store
from .fulltext import FullTextIndex, Hit, UnsupportedDocument, chunk_text, document_text, query_terms
from .server import register_routes
from .service import RESET_HOOKS, JSONAnswer

PROCESSING_S = 0.15
DAY = 86400
AUTO_CHUNKING = {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}
_ORDERED = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
            "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


@dataclass
class StoreFile:
    id: str  # the uploaded file's id
    vector_store_id: str
    filename: str
    usage_bytes: int
    ready_at: float
    chunking: dict[str, int]
    attributes: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    cancelled: bool = False
    created_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def status(self) -> str:
        if self.error is not None:
            return "failed"
        if time.time() >= self.ready_at:
            return "completed"
        return "cancelled" if self.cancelled else "in_progress"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "object": "vector_store.file", "usage_bytes": self.usage_bytes,
                "created_at": self.created_at, "vector_store_id": self.vector_store_id,
                "status": self.status, "last_error": self.error,
                "chunking_strategy": {"type": "static", "static": dict(self.chunking)},
                "attributes": self.attributes}


def _counts(files: list[StoreFile]) -> dict[str, int]:
    counts = {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": len(files)}
    for f in files:
        counts[f.status] += 1
    return counts


@dataclass
class Batch:
    id: str
    vector_store_id: str
    file_ids: list[str]
    created_at: int = field(default_factory=lambda: int(time.time()))
    cancelled: bool = False


@dataclass
class VectorStore:
    id: str
    name: str
    metadata: dict[str, str]
    expires_after: dict[str, Any] | None
    description: str | None = None
    created_at: int = field(default_factory=lambda: int(time.time()))
    last_active_at: int = field(default_factory=lambda: int(time.time()))
    files: dict[str, StoreFile] = field(default_factory=dict)
    batches: dict[str, Batch] = field(default_factory=dict)

    @property
    def expires_at(self) -> int | None:
        if not self.expires_after:
            return None
        return self.last_active_at + int(self.expires_after["days"]) * DAY

    @property
    def status(self) -> str:
        if self.expires_at is not None and time.time() >= self.expires_at:
            return "expired"
        return "in_progress" if any(f.status == "in_progress" for f in self.files.values()) else "completed"

    def to_json(self) -> dict[str, Any]:
        out = {"id": self.id, "object": "vector_store", "created_at": self.created_at, "name": self.name,
               "usage_bytes": sum(f.usage_bytes for f in self.files.values() if f.status == "completed"),
               "file_counts": _counts(list(self.files.values())), "status": self.status,
               "expires_at": self.expires_at, "last_active_at": self.last_active_at,
               "metadata": dict(self.metadata)}
        if self.expires_after:
            out["expires_after"] = dict(self.expires_after)
        return out

    def batch_json(self, batch: Batch) -> dict[str, Any]:
        files = [self.files[f] for f in batch.file_ids if f in self.files]
        counts = _counts(files)
        status = "cancelled" if batch.cancelled else ("in_progress" if counts["in_progress"] else "completed")
        if not batch.cancelled and files and counts["failed"] == len(files):
            status = "failed"
        return {"id": batch.id, "object": "vector_store.files_batch", "created_at": batch.created_at,
                "vector_store_id": self.id, "status": status, "file_counts": counts}


# --------------------------------------------------------------------------- filters


def matches(rule: dict[str, Any] | None, attributes: dict[str, Any] | None) -> bool:
    """Whether a file's ``attributes`` pass a ComparisonFilter or CompoundFilter.
    A comparison on a missing key is false (``ne`` and ``nin`` too, as on the service)."""
    if not rule:
        return True
    kind = rule.get("type")
    if kind in ("and", "or"):
        results = (matches(sub, attributes) for sub in rule.get("filters") or [])
        return all(results) if kind == "and" else any(results)
    attrs = attributes or {}
    key, want = rule.get("key"), rule.get("value")
    if key not in attrs:
        return False
    have = attrs[key]
    if kind == "eq":
        return have == want
    if kind == "ne":
        return have != want
    if kind in ("in", "nin"):
        if not isinstance(want, list):
            raise APIError(400, f"Filter '{kind}' on '{key}' needs a list value.", param="filters")
        return (have in want) == (kind == "in")
    if kind in _ORDERED:
        if isinstance(want, bool) or isinstance(have, bool) or type(want) is not type(have) and not (
                isinstance(want, (int, float)) and isinstance(have, (int, float))):
            return False  # ordering across types (or booleans) never matches
        return bool(_ORDERED[kind](have, want))
    raise APIError(400, f"Invalid filter type {kind!r}.", param="filters")


# --------------------------------------------------------------------------- state


class VectorStores:
    """Every vector store of one emulator, with the shared full-text index."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stores: dict[str, VectorStore] = {}
        self.index = FullTextIndex()

    def clear(self) -> None:
        with self.lock:
            self.stores.clear()
            self.index.clear()

    def require(self, store_id: str) -> VectorStore:
        with self.lock:
            store = self.stores.get(store_id)
        if store is None:
            raise not_found("Vector store", store_id, "vector_store_id")
        return store

    def create(self, emulator: Any, body: dict[str, Any]) -> VectorStore:
        store = VectorStore(_id("vs"), body.get("name") or "", dict(body.get("metadata") or {}),
                            body.get("expires_after"), body.get("description"))
        with self.lock:
            self.stores[store.id] = store
        if body.get("file_ids"):
            self.add_files(emulator, store, [{"file_id": f} for f in body["file_ids"]],
                           body.get("chunking_strategy"))
        return store

    def delete(self, store_id: str) -> None:
        self.require(store_id)
        with self.lock:
            self.stores.pop(store_id, None)
        self.index.remove(store_id)

    def add_files(self, emulator: Any, store: VectorStore, entries: list[dict[str, Any]],
                  chunking: dict[str, Any] | None, attributes: dict[str, Any] | None = None) -> list[str]:
        """Read, chunk and index each file; they complete one by one within PROCESSING_S."""
        uploads = file_store(emulator)
        found = [(e, uploads.require(e["file_id"])) for e in entries]  # 404 before any change
        start, added = time.time(), []
        for n, (entry, upload) in enumerate(found, 1):
            sizes = _chunking(entry.get("chunking_strategy") or chunking)
            self.index.remove(store.id, upload.id)
            record = StoreFile(upload.id, store.id, upload.filename, 0,
                               start + PROCESSING_S * n / len(found), sizes,
                               entry.get("attributes", attributes))
            try:
                text = document_text(upload.data, upload.filename)
            except UnsupportedDocument as exc:
                record.error = {"code": "unsupported_file", "message": str(exc)}
            else:
                chunks = chunk_text(text, sizes["max_chunk_size_tokens"], sizes["chunk_overlap_tokens"])
                if not chunks:
                    record.error = {"code": "invalid_file", "message": f"{upload.filename} has no text."}
                self.index.add(store.id, upload.id, chunks)
                record.usage_bytes = len(text.encode())
            store.files[upload.id] = record
            added.append(upload.id)
        store.last_active_at = int(time.time())
        return added

    def search(self, store_ids: list[str], query: str | list[str], *, filters: dict[str, Any] | None = None,
               max_results: int = 10, threshold: float = 0.0) -> list[tuple[Hit, StoreFile]]:
        """The best chunks of the completed files of ``store_ids`` (module docstring)."""
        stores = [self.require(s) for s in store_ids]
        for store in stores:
            if store.status == "expired":
                raise APIError(400, f"Vector store {store.id} has expired.", param="vector_store_ids")
            store.last_active_at = int(time.time())
        texts = [query] if isinstance(query, str) else list(query)
        terms = list(dict.fromkeys(t for q in texts for t in query_terms(q)))
        files = {(s.id, f.id): f for s in stores for f in s.files.values()}
        out: list[tuple[Hit, StoreFile]] = []
        for hit in self.index.search(terms, [s.id for s in stores]):
            record = files.get((hit.scope, hit.doc))
            if record is None or record.status != "completed" or hit.score < threshold:
                continue
            if matches(filters, record.attributes):
                out.append((hit, record))
                if len(out) >= max_results:
                    break
        return out


def _chunking(strategy: dict[str, Any] | None) -> dict[str, int]:
    if not strategy or strategy.get("type") == "auto":
        return dict(AUTO_CHUNKING)
    static = strategy["static"]
    size, overlap = static["max_chunk_size_tokens"], static["chunk_overlap_tokens"]
    if overlap < 0 or overlap > size // 2:
        raise APIError(400, "chunk_overlap_tokens must be between 0 and half of max_chunk_size_tokens.",
                       param="chunking_strategy")
    return {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap}


def vector_stores(emulator: Any) -> VectorStores:
    """The emulator's vector stores (created on first use)."""
    state = getattr(emulator, "_vector_stores", None)
    if state is None:
        state = VectorStores()
        emulator._vector_stores = state
    return state


RESET_HOOKS.append(lambda emulator: vector_stores(emulator).clear())


# --------------------------------------------------------------------------- routes


def _page(items: list[dict[str, Any]], request: Request) -> dict[str, Any]:
    q = request.query_params
    order = q.get("order", "desc")
    if order not in ("asc", "desc"):
        raise APIError(400, f"Invalid value for 'order': {order!r}; expected 'asc' or 'desc'.", param="order")
    try:
        limit = int(q.get("limit") or 20)
    except ValueError:
        raise APIError(400, "Invalid value for 'limit': expected an integer.", param="limit") from None
    if not 1 <= limit <= 100:
        raise APIError(400, "Invalid value for 'limit': must be between 1 and 100.", param="limit")
    if order == "desc":
        items = items[::-1]
    ids = [i["id"] for i in items]
    for cursor, shift in (("after", 1), ("before", 0)):
        value = q.get(cursor)
        if value:
            if value not in ids:
                raise APIError(400, f"Invalid value for '{cursor}': no object with id '{value}'.", param=cursor)
            at = ids.index(value)
            items, ids = (items[at + shift:], ids[at + shift:]) if shift else (items[:at], ids[:at])
    page = items[:limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else "",
            "last_id": page[-1]["id"] if page else "", "has_more": len(items) > limit}


def _status_filter(request: Request, files: list[StoreFile]) -> list[StoreFile]:
    wanted = request.query_params.get("filter")
    if wanted and wanted not in ("in_progress", "completed", "failed", "cancelled"):
        raise APIError(400, f"Invalid value for 'filter': {wanted!r}.", param="filter")
    return [f for f in files if not wanted or f.status == wanted]


def result_item(hit: Hit, record: StoreFile) -> dict[str, Any]:
    return {"file_id": record.id, "filename": record.filename, "score": hit.score,
            "attributes": record.attributes, "content": [{"type": "text", "text": hit.text}]}


@register_routes
def _routes(emulator: Any, api: Any) -> list[BaseRoute]:
    state = vector_stores(emulator)

    def sid(request: Request) -> VectorStore:
        return state.require(request.path_params["vector_store_id"])

    def file_of(request: Request) -> tuple[VectorStore, StoreFile]:
        store, fid = sid(request), request.path_params["file_id"]
        if fid not in store.files:
            raise not_found("Vector store file", fid, "file_id")
        return store, store.files[fid]

    def create(request: Request, body: Any) -> JSONAnswer:
        check_body("CreateVectorStoreRequest", body)
        return JSONAnswer(state.create(emulator, body).to_json())

    def listing(request: Request, body: Any) -> JSONAnswer:
        with state.lock:
            stores = sorted(state.stores.values(), key=lambda s: s.created_at)
        return JSONAnswer(_page([s.to_json() for s in stores], request))

    def update(request: Request, body: Any) -> JSONAnswer:
        check_body("UpdateVectorStoreRequest", body)
        store = sid(request)
        if body.get("name") is not None:
            store.name = body["name"]
        if "expires_after" in body:
            store.expires_after = body["expires_after"]
        if body.get("metadata") is not None:
            store.metadata = dict(body["metadata"])
        store.last_active_at = int(time.time())
        return JSONAnswer(store.to_json())

    def delete(request: Request, body: Any) -> JSONAnswer:
        state.delete(request.path_params["vector_store_id"])
        return JSONAnswer({"id": request.path_params["vector_store_id"], "object": "vector_store.deleted",
                           "deleted": True})

    def add_file(request: Request, body: Any) -> JSONAnswer:
        check_body("CreateVectorStoreFileRequest", body)
        store = sid(request)
        state.add_files(emulator, store, [body], None)
        return JSONAnswer(store.files[body["file_id"]].to_json())

    def list_files(request: Request, body: Any) -> JSONAnswer:
        files = sorted(sid(request).files.values(), key=lambda f: f.created_at)
        return JSONAnswer(_page([f.to_json() for f in _status_filter(request, files)], request))

    def update_file(request: Request, body: Any) -> JSONAnswer:
        check_body("UpdateVectorStoreFileAttributesRequest", body)
        _, record = file_of(request)
        record.attributes = body.get("attributes")
        return JSONAnswer(record.to_json())

    def delete_file(request: Request, body: Any) -> JSONAnswer:
        store, record = file_of(request)
        store.files.pop(record.id, None)
        state.index.remove(store.id, record.id)
        return JSONAnswer({"id": record.id, "object": "vector_store.file.deleted", "deleted": True})

    def file_content(request: Request, body: Any) -> JSONAnswer:
        _, record = file_of(request)
        upload = file_store(emulator).require(record.id)
        try:
            text = document_text(upload.data, upload.filename)
        except UnsupportedDocument:
            text = ""
        return JSONAnswer({"object": "vector_store.file_content.page", "data": [{"type": "text", "text": text}],
                           "has_more": False, "next_page": None})

    def create_batch(request: Request, body: Any) -> JSONAnswer:
        check_body("CreateVectorStoreFileBatchRequest", body)
        store = sid(request)
        if bool(body.get("file_ids")) == bool(body.get("files")):
            raise APIError(400, "Provide exactly one of 'file_ids' or 'files'.", param="file_ids")
        entries = body.get("files") or [{"file_id": f} for f in body["file_ids"]]
        added = state.add_files(emulator, store, entries, body.get("chunking_strategy"), body.get("attributes"))
        batch = Batch(_id("vsfb"), store.id, added)
        store.batches[batch.id] = batch
        return JSONAnswer(store.batch_json(batch))

    def batch_of(request: Request) -> tuple[VectorStore, Batch]:
        store, bid = sid(request), request.path_params["batch_id"]
        if bid not in store.batches:
            raise not_found("Vector store file batch", bid, "batch_id")
        return store, store.batches[bid]

    def get_batch(request: Request, body: Any) -> JSONAnswer:
        store, batch = batch_of(request)
        return JSONAnswer(store.batch_json(batch))

    def cancel_batch(request: Request, body: Any) -> JSONAnswer:
        store, batch = batch_of(request)
        pending = [store.files[f] for f in batch.file_ids if store.files[f].status == "in_progress"]
        for record in pending:
            record.cancelled, record.ready_at = True, float("inf")
            state.index.remove(store.id, record.id)
        batch.cancelled = bool(pending)
        return JSONAnswer(store.batch_json(batch))

    def batch_files(request: Request, body: Any) -> JSONAnswer:
        store, batch = batch_of(request)
        files = [store.files[f] for f in batch.file_ids if f in store.files]
        return JSONAnswer(_page([f.to_json() for f in _status_filter(request, files)], request))

    def search(request: Request, body: Any) -> JSONAnswer:
        check_body("VectorStoreSearchRequest", body)
        store = sid(request)
        query = body["query"]
        ranking = body.get("ranking_options") or {}
        found = state.search([store.id], query, filters=body.get("filters"),
                             max_results=body.get("max_num_results", 10),
                             threshold=ranking.get("score_threshold", 0.0))
        queries = [query] if isinstance(query, str) else list(query)
        if body.get("rewrite_query"):
            queries = [" ".join(query_terms(q)) for q in queries]
        return JSONAnswer({"object": "vector_store.search_results.page", "search_query": queries,
                           "data": [result_item(h, r) for h, r in found], "has_more": False, "next_page": None})

    base, one, files, batch = ("/vector_stores", "/vector_stores/{vector_store_id}",
                               "/vector_stores/{vector_store_id}/files/{file_id}",
                               "/vector_stores/{vector_store_id}/file_batches")
    return [
        Route(base, api(create), methods=["POST"]),
        Route(base, api(listing), methods=["GET"]),
        Route(one, api(lambda r, b: JSONAnswer(sid(r).to_json())), methods=["GET"]),
        Route(one, api(update), methods=["POST"]),
        Route(one, api(delete), methods=["DELETE"]),
        Route(one + "/files", api(add_file), methods=["POST"]),
        Route(one + "/files", api(list_files), methods=["GET"]),
        Route(files, api(lambda r, b: JSONAnswer(file_of(r)[1].to_json())), methods=["GET"]),
        Route(files, api(update_file), methods=["POST"]),
        Route(files, api(delete_file), methods=["DELETE"]),
        Route(files + "/content", api(file_content), methods=["GET"]),
        Route(batch, api(create_batch), methods=["POST"]),
        Route(batch + "/{batch_id}", api(get_batch), methods=["GET"]),
        Route(batch + "/{batch_id}/cancel", api(cancel_batch), methods=["POST"]),
        Route(batch + "/{batch_id}/files", api(batch_files), methods=["GET"]),
        Route(one + "/search", api(search), methods=["POST"]),
    ]
