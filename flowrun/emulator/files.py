"""The Files API of the emulator: ``POST /files`` (multipart upload), ``GET /files``,
``GET /files/{id}``, ``GET /files/{id}/content``, ``DELETE /files/{id}``.

Other emulator modules read uploads with :func:`file_store` (``store.get(file_id)``) to
check file ids in requests and to feed files to hosted tools.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .bodies import form_of
from .errors import APIError, not_found
from .server import register_routes
from .service import RESET_HOOKS, JSONAnswer

UPLOAD_CHECKS: dict[str, Any] = {}
"""purpose -> ``check(emulator, data, filename)`` run on an upload with that purpose; it
raises :class:`~.errors.APIError` (400) to refuse the file (:mod:`.batches`: ``batch``)."""
PURPOSES = (
    "assistants", "assistants_output", "batch", "batch_output", "fine-tune",
    "fine-tune-results", "vision", "user_data", "evals",
)


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int = field(default_factory=lambda: int(time.time()))
    expires_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        out = {
            "id": self.id, "object": "file", "bytes": len(self.data),
            "created_at": self.created_at, "filename": self.filename,
            "purpose": self.purpose, "status": "processed",
        }
        if self.expires_at is not None:
            out["expires_at"] = self.expires_at
        return out


class FileStore:
    """Uploaded files, by id (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, StoredFile] = {}

    def add(self, data: bytes, filename: str, purpose: str, expires_after: int | None = None) -> StoredFile:
        """``expires_after``: seconds from now to the file's ``expires_at`` (none: it stays;
        the emulator does not delete expired files)."""
        f = StoredFile("file-" + uuid.uuid4().hex[:24], filename, purpose, data)
        if expires_after is not None:
            f.expires_at = f.created_at + expires_after
        with self._lock:
            self._files[f.id] = f
        return f

    def get(self, file_id: str) -> StoredFile | None:
        with self._lock:
            return self._files.get(file_id)

    def require(self, file_id: str) -> StoredFile:
        found = self.get(file_id)
        if found is None:
            raise not_found("file", file_id, "file_id")
        return found

    def delete(self, file_id: str) -> bool:
        with self._lock:
            return self._files.pop(file_id, None) is not None

    def all(self) -> list[StoredFile]:
        with self._lock:
            return list(self._files.values())

    def clear(self) -> None:
        with self._lock:
            self._files.clear()


def file_store(emulator: Any) -> FileStore:
    """The emulator's file store (created on first use)."""
    store = getattr(emulator, "_file_store", None)
    if store is None:
        store = FileStore()
        emulator._file_store = store
    return store


RESET_HOOKS.append(lambda emulator: file_store(emulator).clear())
BATCH_FILE_SECONDS = 30 * 24 * 3600  # batch files expire after 30 days unless told otherwise


def expiry_seconds(policy: Any, param: str) -> int:
    """The seconds of an ``expires_after`` policy ``{"anchor": "created_at", "seconds": N}``."""
    if not isinstance(policy, dict) or policy.get("anchor") != "created_at":
        raise APIError(400, f"Invalid '{param}': expected {{\"anchor\": \"created_at\", \"seconds\": N}}.",
                       param=param)
    seconds = policy.get("seconds")
    if isinstance(seconds, str) and seconds.isdigit():
        seconds = int(seconds)
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 3600 <= seconds <= 2592000:
        raise APIError(400, f"Invalid '{param}.seconds': must be between 3600 (1 hour) and 2592000 (30 days).",
                       param=f"{param}.seconds")
    return seconds


class RawAnswer:
    """Binary content, rendered as is."""

    def __init__(self, data: bytes, media_type: str = "application/octet-stream"):
        self.response = Response(data, media_type=media_type)


@register_routes
def _routes(emulator: Any, api: Any) -> list[BaseRoute]:
    store = file_store(emulator)

    async def upload(request: Request, body: Any) -> JSONAnswer:
        form = form_of(body)
        purpose = form.get("purpose")
        upload = form.get("file")
        if not isinstance(purpose, str) or purpose not in PURPOSES:
            raise APIError(400, f"Invalid 'purpose': {purpose!r}; expected one of {', '.join(PURPOSES)}.",
                           param="purpose")
        if upload is None or isinstance(upload, str):
            raise APIError(400, "Missing required parameter: 'file'.", param="file")
        data = await upload.read()
        filename = upload.filename or "upload"
        expires = BATCH_FILE_SECONDS if purpose == "batch" else None
        if form.get("expires_after[anchor]") is not None or form.get("expires_after[seconds]") is not None:
            expires = expiry_seconds({"anchor": form.get("expires_after[anchor]"),
                                      "seconds": form.get("expires_after[seconds]")}, "expires_after")
        check = UPLOAD_CHECKS.get(purpose)
        if check is not None:
            check(emulator, data, filename)
        return JSONAnswer(store.add(data, filename, purpose, expires).to_json())

    def listing(request: Request, body: Any) -> JSONAnswer:
        purpose = request.query_params.get("purpose")
        files = [f.to_json() for f in store.all() if not purpose or f.purpose == purpose]
        return JSONAnswer({"object": "list", "data": files, "has_more": False,
                           "first_id": files[0]["id"] if files else None,
                           "last_id": files[-1]["id"] if files else None})

    def retrieve(request: Request, body: Any) -> JSONAnswer:
        return JSONAnswer(store.require(request.path_params["file_id"]).to_json())

    def content(request: Request, body: Any) -> Any:
        return RawAnswer(store.require(request.path_params["file_id"]).data)

    def delete(request: Request, body: Any) -> JSONAnswer:
        fid = request.path_params["file_id"]
        store.require(fid)
        store.delete(fid)
        return JSONAnswer({"id": fid, "object": "file", "deleted": True})

    return [
        Route("/files", api(upload), methods=["POST"]),
        Route("/files", api(listing), methods=["GET"]),
        Route("/files/{file_id}", api(retrieve), methods=["GET"]),
        Route("/files/{file_id}", api(delete), methods=["DELETE"]),
        Route("/files/{file_id}/content", api(content), methods=["GET"]),
    ]
