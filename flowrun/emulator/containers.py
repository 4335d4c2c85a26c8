"""The code interpreter in the emulator: containers, their files, and code that really runs.

Routes (under ``/v1`` and ``/openai/v1``)::

    POST   /containers                              {name, file_ids?, memory_limit?}
    GET    /containers                              ?limit&order&after&name
    GET    /containers/{id}         DELETE /containers/{id}
    POST   /containers/{id}/files                   multipart ``file``, or JSON {file_id}
    GET    /containers/{id}/files                   ?limit&order&after
    GET    /containers/{id}/files/{file_id}         DELETE likewise
    GET    /containers/{id}/files/{file_id}/content the bytes

A container is a temporary directory standing in for the hosted ``/mnt/data``; files
copied from the Files API (``file_ids``) or uploaded land there under their own (made
safe) names, with ``source: user``; files the code writes are ``source: assistant``.

**The ``code`` reply kind** (scripts): ``code: "print(1 + 1)"`` or
``code: {source: "...", text: "Answer: {logs}", timeout: 5}``. The request must offer a
``code_interpreter`` tool. Within the one response, as the hosted tool does:

1. the container: the tool's ``container`` id (it must exist), or for
   ``{"type": "auto", "file_ids": [...], "memory_limit": ...}`` the newest container of a
   ``code_interpreter_call`` earlier in the conversation (history through
   ``previous_response_id`` or resent items) that still exists, else a new one; the
   ``file_ids`` are copied in (each once per container);
2. the code runs for real in :mod:`.sandbox` (a subprocess; ``/mnt/data`` is the
   container's directory; time limit ``timeout`` or ``$FLOWRUN_EMULATOR_CODE_TIMEOUT``,
   default 30 s; memory from the container's ``memory_limit``);
3. the output is a ``code_interpreter_call`` item (``container_id``, ``code``, status
   ``completed``, or ``failed`` when the run was killed by the time limit or a signal;
   ``outputs`` only when the request's ``include`` has ``code_interpreter_call.outputs``:
   one ``logs`` entry with stdout+stderr when there was any output, then one ``image``
   entry (a ``data:`` URL) per PNG/JPEG/GIF/WebP file the code created or changed),
   followed by an assistant message: ``text`` with ``{logs}`` replaced by the output
   (default ``[emulator] code output:`` and the output), then one line
   ``- [NAME](sandbox:/mnt/data/PATH)`` per file the code created or changed, each
   cited by a ``container_file_citation`` annotation spanning that link.

Streaming: the call streams ``response.code_interpreter_call.in_progress``,
``response.code_interpreter_call_code.delta`` × k, ``...code.done``,
``response.code_interpreter_call.interpreting`` and
``response.code_interpreter_call.completed`` between its ``output_item`` events.
"""
from __future__ import annotations

import asyncio
import base64
import mimetypes
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from . import sandbox
from .bodies import form_of
from .errors import APIError, not_found
from .events import ADDED_FORMS, ITEM_EVENTS, chunks
from .files import RawAnswer, file_store
from .model import Turn, new_id, register_kind
from .server import register_routes
from .service import RESET_HOOKS, JSONAnswer

INCLUDE_OUTPUTS = "code_interpreter_call.outputs"
DEFAULT_TIMEOUT = 30.0
EXPIRES_AFTER = {"anchor": "last_active_at", "minutes": 20}
MEMORY_LIMITS = ("1g", "4g", "16g", "64g")
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".gif": "image/gif", ".webp": "image/webp"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe_filename(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return _UNSAFE.sub("_", base).strip("._") or "file"


def default_timeout() -> float:
    raw = os.environ.get("FLOWRUN_EMULATOR_CODE_TIMEOUT")
    try:
        return float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        return DEFAULT_TIMEOUT


# --------------------------------------------------------------------------- state


@dataclass
class ContainerFile:
    id: str
    container_id: str
    rel: str  # path below the data directory, with "/" separators
    source: str  # "user" or "assistant"
    size: int
    signature: tuple[int, int]  # (size, mtime_ns) when last seen
    created_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def path(self) -> str:
        return f"{sandbox.MOUNT}/{self.rel}"

    @property
    def name(self) -> str:
        return self.rel.rsplit("/", 1)[-1]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "object": "container.file", "created_at": self.created_at,
                "bytes": self.size, "container_id": self.container_id, "path": self.path,
                "source": self.source}


class Container:
    """One container: a data directory (``/mnt/data``), a temp directory, its files."""

    def __init__(self, root: Path, name: str, memory_limit: str | None) -> None:
        self.id = "cntr_" + uuid.uuid4().hex + uuid.uuid4().hex[:16]
        self.name = name
        self.memory_limit = memory_limit or "1g"
        self.created_at = self.last_active_at = int(time.time())
        self.root = root / self.id
        self.data = self.root / "data"
        self.tmp = self.root / "tmp"
        self.data.mkdir(parents=True)
        self.tmp.mkdir()
        self.files: dict[str, ContainerFile] = {}
        self.copied: dict[str, str] = {}  # Files API id -> container file id
        self.lock = asyncio.Lock()

    def touch(self) -> None:
        self.last_active_at = int(time.time())

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "object": "container", "name": self.name,
                "created_at": self.created_at, "status": "running",
                "expires_after": dict(EXPIRES_AFTER), "last_active_at": self.last_active_at,
                "memory_limit": self.memory_limit}

    # -- files -------------------------------------------------------------------------
    def _by_rel(self, rel: str) -> ContainerFile | None:
        return next((f for f in self.files.values() if f.rel == rel), None)

    def add(self, filename: str, data: bytes, source: str = "user") -> ContainerFile:
        """Write ``data`` into ``/mnt/data`` under a safe, unused name."""
        name = _safe_filename(filename)
        stem, dot, ext = name.rpartition(".")
        if not dot:
            stem, ext = name, ""
        candidate, n = name, 1
        while (self.data / candidate).exists():
            candidate = f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}"
            n += 1
        target = self.data / candidate
        target.write_bytes(data)
        st = target.stat()
        entry = ContainerFile("cfile_" + uuid.uuid4().hex, self.id, candidate, source, st.st_size,
                              (st.st_size, st.st_mtime_ns))
        self.files[entry.id] = entry
        self.touch()
        return entry

    def copy_uploaded(self, file_id: str, stored: Any) -> ContainerFile:
        """Copy a Files API upload in (once per container)."""
        existing = self.copied.get(file_id)
        if existing in self.files:
            return self.files[existing]
        entry = self.add(stored.filename, stored.data, "user")
        self.copied[file_id] = entry.id
        return entry

    def scan(self) -> list[ContainerFile]:
        """Bring the index up to date with the directory; returns the files that are new
        or changed since the last scan (registered as ``source: assistant`` when new).
        Symlinks and anything that is not a regular file are ignored."""
        seen: dict[str, tuple[int, int]] = {}
        for dirpath, dirnames, filenames in os.walk(self.data, followlinks=False):
            for fname in filenames:
                full = Path(dirpath) / fname
                try:
                    st = full.lstat()
                except OSError:
                    continue
                if not full.is_symlink() and full.is_file():
                    seen[full.relative_to(self.data).as_posix()] = (st.st_size, st.st_mtime_ns)
        changed: list[ContainerFile] = []
        for entry in list(self.files.values()):
            if entry.rel not in seen:
                del self.files[entry.id]
        for rel, signature in sorted(seen.items()):
            entry = self._by_rel(rel)
            if entry is None:
                entry = ContainerFile("cfile_" + uuid.uuid4().hex, self.id, rel, "assistant",
                                      signature[0], signature)
                self.files[entry.id] = entry
                changed.append(entry)
            elif entry.signature != signature:
                entry.signature, entry.size = signature, signature[0]
                changed.append(entry)
        self.copied = {k: v for k, v in self.copied.items() if v in self.files}
        return changed

    def read(self, entry: ContainerFile) -> bytes:
        path = (self.data / entry.rel).resolve()
        if self.data.resolve() not in path.parents or path.is_symlink() or not path.is_file():
            raise not_found("Container file", entry.id)
        return path.read_bytes()

    def require_file(self, file_id: str) -> ContainerFile:
        self.scan()
        entry = self.files.get(file_id)
        if entry is None:
            raise not_found("Container file", file_id)
        return entry

    def delete_file(self, file_id: str) -> None:
        entry = self.require_file(file_id)
        try:
            (self.data / entry.rel).unlink()
        except OSError:
            pass
        del self.files[file_id]

    async def run(self, code: str, timeout: float) -> tuple[sandbox.CodeResult, list[ContainerFile]]:
        """Run a cell in this container; returns its result and the files it wrote."""
        async with self.lock:
            self.scan()
            self.touch()
            result = await sandbox.run_code(code, self.data, self.tmp, timeout=timeout,
                                            memory=sandbox.memory_bytes(self.memory_limit))
            self.touch()
            return result, self.scan()


class ContainerStore:
    """All containers of one emulator, under one temporary directory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._containers: dict[str, Container] = {}
        self._root: Path | None = None

    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="flowrun-emulator-containers-"))
            weakref.finalize(self, shutil.rmtree, str(self._root), True)
        return self._root

    def create(self, name: str, memory_limit: str | None = None) -> Container:
        container = Container(self.root, name, memory_limit)
        with self._lock:
            self._containers[container.id] = container
        return container

    def get(self, container_id: str) -> Container | None:
        with self._lock:
            return self._containers.get(container_id)

    def require(self, container_id: str) -> Container:
        found = self.get(container_id)
        if found is None:
            raise not_found("Container", container_id, "container_id")
        return found

    def all(self) -> list[Container]:
        with self._lock:
            return list(self._containers.values())

    def delete(self, container_id: str) -> None:
        with self._lock:
            container = self._containers.pop(container_id, None)
        if container is not None:
            shutil.rmtree(container.root, ignore_errors=True)

    def clear(self) -> None:
        for container in self.all():
            self.delete(container.id)


def container_store(emulator: Any) -> ContainerStore:
    """The emulator's containers (created on first use)."""
    store = getattr(emulator, "_container_store", None)
    if store is None:
        store = ContainerStore()
        emulator._container_store = store
    return store


RESET_HOOKS.append(lambda emulator: container_store(emulator).clear())


# --------------------------------------------------------------------------- routes


def _page(request: Request, items: list[Any]) -> dict[str, Any]:
    """A cursor page (``limit``, ``order`` by creation, ``after``) of objects with ids."""
    order = request.query_params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise APIError(400, f"Invalid value for 'order': {order!r}; expected 'asc' or 'desc'.", param="order")
    raw = request.query_params.get("limit") or "20"
    try:
        limit = int(raw)
    except ValueError:
        raise APIError(400, f"Invalid value for 'limit': expected an integer, got {raw!r}.", param="limit") from None
    if not 1 <= limit <= 100:
        raise APIError(400, "Invalid value for 'limit': must be between 1 and 100.", param="limit")
    ordered = list(items) if order == "asc" else list(reversed(items))
    start = 0
    after = request.query_params.get("after")
    if after:
        ids = [obj["id"] for obj in ordered]
        if after not in ids:
            raise APIError(400, f"Invalid value for 'after': no object with id '{after}'.", param="after")
        start = ids.index(after) + 1
    page = ordered[start:start + limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else "",
            "last_id": page[-1]["id"] if page else "", "has_more": start + limit < len(ordered)}


@register_routes
def _routes(emulator: Any, api: Any) -> list[BaseRoute]:
    store = container_store(emulator)
    uploads = file_store(emulator)

    def cid(request: Request) -> Container:
        return store.require(request.path_params["container_id"])

    def create(request: Request, body: Any) -> JSONAnswer:
        if not isinstance(body, dict):
            raise APIError(400, "The request body must be a JSON object.")
        name = body.get("name")
        if not isinstance(name, str):
            raise APIError(400, "Missing required parameter: 'name'.", param="name",
                           code="missing_required_parameter")
        memory = body.get("memory_limit")
        if memory is not None and memory not in MEMORY_LIMITS:
            raise APIError(400, f"Invalid 'memory_limit': {memory!r}; expected one of "
                           f"{', '.join(MEMORY_LIMITS)}.", param="memory_limit")
        file_ids = body.get("file_ids") or []
        if not isinstance(file_ids, list) or not all(isinstance(f, str) for f in file_ids):
            raise APIError(400, "Invalid 'file_ids': expected an array of file ids.", param="file_ids")
        stored = [uploads.require(f) for f in file_ids]
        container = store.create(name, memory)
        for fid, upload in zip(file_ids, stored):
            container.copy_uploaded(fid, upload)
        return JSONAnswer(container.to_json())

    def listing(request: Request, body: Any) -> JSONAnswer:
        name = request.query_params.get("name")
        items = [c.to_json() for c in sorted(store.all(), key=lambda c: c.created_at)
                 if name is None or c.name == name]
        return JSONAnswer(_page(request, items))

    def retrieve(request: Request, body: Any) -> JSONAnswer:
        return JSONAnswer(cid(request).to_json())

    def delete(request: Request, body: Any) -> JSONAnswer:
        container = cid(request)
        store.delete(container.id)
        return JSONAnswer({"id": container.id, "object": "container.deleted", "deleted": True})

    async def add_file(request: Request, body: Any) -> JSONAnswer:
        container = cid(request)
        if isinstance(body, dict):
            fid = body.get("file_id")
            if not isinstance(fid, str):
                raise APIError(400, "Expected 'file_id' (JSON) or a multipart 'file'.", param="file_id")
            return JSONAnswer(container.copy_uploaded(fid, uploads.require(fid)).to_json())
        form = form_of(body, "a JSON body with 'file_id' or a multipart/form-data upload")
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise APIError(400, "Missing required parameter: 'file'.", param="file")
        data = await upload.read()
        return JSONAnswer(container.add(upload.filename or "upload", data, "user").to_json())

    def files(request: Request, body: Any) -> JSONAnswer:
        container = cid(request)
        container.scan()
        items = [f.to_json() for f in sorted(container.files.values(), key=lambda f: (f.created_at, f.rel))]
        return JSONAnswer(_page(request, items))

    def file_info(request: Request, body: Any) -> JSONAnswer:
        return JSONAnswer(cid(request).require_file(request.path_params["file_id"]).to_json())

    def file_delete(request: Request, body: Any) -> JSONAnswer:
        fid = request.path_params["file_id"]
        cid(request).delete_file(fid)
        return JSONAnswer({"id": fid, "object": "container.file.deleted", "deleted": True})

    def content(request: Request, body: Any) -> RawAnswer:
        container = cid(request)
        entry = container.require_file(request.path_params["file_id"])
        mime = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
        return RawAnswer(container.read(entry), mime)

    base, one = "/containers", "/containers/{container_id}"
    return [
        Route(base, api(create), methods=["POST"]),
        Route(base, api(listing), methods=["GET"]),
        Route(one, api(retrieve), methods=["GET"]),
        Route(one, api(delete), methods=["DELETE"]),
        Route(one + "/files", api(add_file), methods=["POST"]),
        Route(one + "/files", api(files), methods=["GET"]),
        Route(one + "/files/{file_id}", api(file_info), methods=["GET"]),
        Route(one + "/files/{file_id}", api(file_delete), methods=["DELETE"]),
        Route(one + "/files/{file_id}/content", api(content), methods=["GET"]),
    ]


# --------------------------------------------------------------------------- the reply kind


class CodeSpec(BaseModel):
    """A scripted code interpreter call: the code, and the message that follows it."""

    model_config = ConfigDict(extra="forbid")
    source: str
    text: str | None = None
    timeout: float | None = Field(None, gt=0, le=3600)


def _as_spec(value: Union[str, CodeSpec]) -> CodeSpec:
    return CodeSpec(source=value) if isinstance(value, str) else value


def _tool(turn: Turn) -> dict[str, Any]:
    for tool in turn.request.get("tools") or []:
        if tool.get("type") == "code_interpreter":
            return tool
    raise APIError(400, "The script answers this request with a code interpreter call, but the "
                   "request has no code_interpreter tool.", param="tools")


def _container_for(turn: Turn, tool: dict[str, Any]) -> Container:
    store = container_store(turn.emulator)
    spec = tool.get("container")
    if isinstance(spec, str):
        container = store.get(spec)
        if container is None:
            raise APIError(400, f"Container with id '{spec}' not found.", param="tools", code="not_found")
        return container
    uploads = file_store(turn.emulator)
    file_ids = list((spec or {}).get("file_ids") or [])
    stored = []
    for fid in file_ids:
        found = uploads.get(fid)
        if found is None:
            raise APIError(400, f"File with id '{fid}' not found.", param="tools", code="not_found")
        stored.append(found)
    container = None
    for item in reversed(turn.conversation):
        if item.get("type") == "code_interpreter_call" and item.get("container_id"):
            container = store.get(item["container_id"])
            if container is not None:
                break
    if container is None:
        container = store.create("auto", (spec or {}).get("memory_limit"))
    for fid, upload in zip(file_ids, stored):
        container.copy_uploaded(fid, upload)
    return container


def _data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _message(text: str, container: Container, written: list[ContainerFile]) -> dict[str, Any]:
    annotations = []
    if written:
        text = text.rstrip("\n") + "\n\n"
        for entry in written:
            link = f"[{entry.name}](sandbox:{entry.path})"
            start = len(text) + 2
            text += f"- {link}\n"
            annotations.append({"type": "container_file_citation", "container_id": container.id,
                                "file_id": entry.id, "filename": entry.name,
                                "start_index": start, "end_index": start + len(link)})
        text = text.rstrip("\n")
    return {"id": new_id("msg"), "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": annotations, "logprobs": []}]}


async def code_reply(value: Union[str, CodeSpec], turn: Turn) -> list[dict[str, Any]]:
    """The ``code`` reply kind (module docstring)."""
    spec = _as_spec(value)
    container = _container_for(turn, _tool(turn))
    result, written = await container.run(spec.source, spec.timeout or default_timeout())
    failed = result.timed_out or (result.exit_code is not None and result.exit_code < 0)
    outputs: list[dict[str, Any]] | None = None
    if INCLUDE_OUTPUTS in (turn.request.get("include") or []):
        outputs = [{"type": "logs", "logs": result.logs}] if result.logs else []
        for entry in written:
            mime = IMAGE_TYPES.get(Path(entry.name).suffix.lower())
            if mime:
                outputs.append({"type": "image", "url": _data_url(container.read(entry), mime)})
    call = {"id": new_id("ci"), "type": "code_interpreter_call",
            "status": "failed" if failed else "completed", "container_id": container.id,
            "code": spec.source, "outputs": outputs}
    logs = result.logs.strip()
    if spec.text is not None:
        text = spec.text.replace("{logs}", logs)
    else:
        text = f"[emulator] code output:\n{logs}" if logs else "[emulator] the code ran without output"
    return [call, _message(text, container, written)]


register_kind("code", code_reply, Union[str, CodeSpec])


# --------------------------------------------------------------------------- streaming


def _call_events(item: dict[str, Any], index: int) -> list[dict[str, Any]]:
    base = {"item_id": item["id"], "output_index": index}
    code = item.get("code") or ""
    events: list[dict[str, Any]] = [{"type": "response.code_interpreter_call.in_progress", **base}]
    events += [{"type": "response.code_interpreter_call_code.delta", **base, "delta": piece}
               for piece in chunks(code)]
    events.append({"type": "response.code_interpreter_call_code.done", **base, "code": code})
    events.append({"type": "response.code_interpreter_call.interpreting", **base})
    events.append({"type": "response.code_interpreter_call.completed", **base})
    return events


def _added(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "status": "in_progress", "code": "", "outputs": None}


ITEM_EVENTS["code_interpreter_call"] = _call_events
ADDED_FORMS["code_interpreter_call"] = _added
