"""The hosted file search tool: files in, a vector store ready, ``vector_store_ids`` out.

``{file_search: {files, vector_store, keep, expires_after, max_num_results, filters,
ranking_options}}`` in a step's (or the flow's) ``tools``:

1. **Files.** Each entry of ``files`` is rendered (a template may give a list) and is a
   local path or glob - relative ones from the directory flowrun runs in, then the flow
   file's - or an uploaded file id; ``{file, attributes}`` gives the files attributes
   that ``filters`` test. Local files are uploaded (purpose ``assistants``) once per run.
2. **The store**, once per run for each file set and store setting (steps, tools and
   ``for_each`` items share it):

   - no ``vector_store``: a new store named ``flowrun RUN_ID TOOL``;
   - ``vector_store: vs_...``: that existing store; the files, if any, are added to it;
   - ``vector_store: NAME``: the newest store with that name. If its ``flowrun_files``
     metadata (a digest of the files' names, contents and attributes) matches, it is used
     as it is - nothing is uploaded; otherwise its files are replaced by these. No such
     store: one is created with that name.

   A store flowrun creates gets ``expires_after`` (``last_active_at`` + ``expires_after``
   days, default 7), so a crashed run leaves nothing behind for long, and is deleted at
   the end of the run - with the files flowrun uploaded for it - unless ``keep: true``.
   Stores flowrun found (by id or name) are never deleted.
3. **Ready.** flowrun polls the file batch until no file is in progress, reporting
   ``N/M files ready`` through the step status; a file the service could not index fails
   the step, naming it and the service's reason.

The request's tool is ``{"type": "file_search", "vector_store_ids": [id], ...}`` with
``max_num_results``, ``filters`` and ``ranking_options`` as given (templates rendered).
``file_search_call`` items are recorded under ``file_search`` in the run record (queries,
and the results when the step's ``include`` has ``file_search_call.results``); the
answer's ``file_citation`` annotations are ``steps.X.citations`` (:mod:`flowrun.citations`).
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import json
from pathlib import Path
from typing import Any

from .. import vector_stores as vs
from ..errors import ClientError, ExecutionError
from ..retry import with_retries
from . import register_event, register_item, register_tool

RECORD_KEY = "file_search"
PURPOSE = "assistants"
FILE_ID = ("file-", "assistant-")
UPLOADS_AT_ONCE = 8
POLL_FIRST, POLL_MAX = 0.05, 2.0


class _Source:
    """One file of the tool: a local path or an uploaded id, and its attributes."""

    def __init__(self, path: Path | None, file_id: str | None, attributes: dict[str, Any]):
        self.path, self.file_id, self.attributes = path, file_id, attributes

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else str(self.file_id)

    def digest(self) -> str:
        body = self.path.read_bytes() if self.path is not None else str(self.file_id).encode()
        return f"{self.name}:{hashlib.sha256(body).hexdigest()}:{json.dumps(self.attributes, sort_keys=True)}"


def _record(sc: Any) -> dict[str, Any]:
    return sc.result.extra.setdefault(RECORD_KEY, {"vector_stores": [], "calls": []})


async def _retrying(sc: Any, what: str, operation: Any) -> Any:
    def on_retry(n: int, err: Exception, wait: float) -> None:
        sc.status("retrying", f"{what}: retry {n} in {wait:.1f}s: {err}")

    try:
        return await with_retries(operation, sc.retries, on_retry)
    except ClientError as exc:
        raise ExecutionError(f"file search: {what}: {exc}", sc.step_id) from None


# --------------------------------------------------------------------------- files


def _expand(sc: Any, ref: str) -> list[Path] | None:
    """Local files for ``ref`` (a path or a glob), or None when nothing local matches."""
    from ..parts import local_file

    if any(ch in ref for ch in "*?["):
        base = Path(ref).expanduser()
        roots = [Path("")] if base.is_absolute() else [sc.run.cwd, sc.base_dir]
        for root in roots:
            found = sorted(Path(p) for p in glob.glob(str(root / base), recursive=True) if Path(p).is_file())
            if found:
                return [p.resolve() for p in found]
        return None
    path = local_file(sc, ref)
    return [path] if path is not None else None


def sources(sc: Any, options: Any) -> list[_Source]:
    """The tool's files, resolved (module docstring, 1)."""
    out: list[_Source] = []
    for entry in options.files:
        raw, attributes = (entry, {}) if isinstance(entry, str) else (entry.file, dict(entry.attributes))
        value = sc.evaluate(raw)
        for v in value if isinstance(value, (list, tuple)) else [value]:
            ref = "" if v is None else str(v).strip()
            if not ref:
                raise ExecutionError(f"file_search: files: {raw!r} gave an empty path", sc.step_id)
            paths = _expand(sc, ref)
            if paths is not None:
                out.extend(_Source(p, None, attributes) for p in paths)
            elif ref.startswith(FILE_ID):
                out.append(_Source(None, ref, attributes))
            else:
                raise ExecutionError(f"file_search: files: {ref}: no such file (looked in {sc.run.cwd} "
                                     f"and {sc.base_dir})", sc.step_id)
    return out


def digest(files: list[_Source]) -> str:
    return hashlib.sha256("\n".join(sorted(f.digest() for f in files)).encode()).hexdigest()[:32]


async def _upload(sc: Any, files: list[_Source]) -> list[tuple[str, dict[str, Any]]]:
    """``(file_id, attributes)`` for every file, uploading the local ones (a few at once)."""
    from ..parts import upload_once

    gate = asyncio.Semaphore(UPLOADS_AT_ONCE)

    async def one(f: _Source) -> tuple[str, dict[str, Any]]:
        if f.path is None:
            return str(f.file_id), f.attributes
        async with gate:
            fid = await _retrying(sc, f"uploading {f.name}", lambda: upload_once(sc, f.path, PURPOSE))
        return fid, f.attributes

    return list(await asyncio.gather(*(one(f) for f in files)))


# --------------------------------------------------------------------------- the store


async def _wait(sc: Any, store: dict[str, Any], batch: dict[str, Any], names: dict[str, str]) -> None:
    client, label = sc.run.client, store.get("name") or store["id"]
    delay, shown = POLL_FIRST, None
    while True:
        counts = batch.get("file_counts") or {}
        progress = (counts.get("completed", 0) + counts.get("failed", 0), counts.get("total", 0))
        if progress != shown:
            sc.status("running", f"vector store {label}: {progress[0]}/{progress[1]} files ready")
            shown = progress
        if batch.get("status") != "in_progress":
            break
        await asyncio.sleep(delay)
        delay = min(POLL_MAX, delay * 1.5)
        batch = await _retrying(sc, f"checking vector store {label}",
                                lambda: vs.batch(client, store["id"], batch["id"]))
    if batch.get("status") == "cancelled":
        raise ExecutionError(f"file search: the file batch of vector store {label} was cancelled", sc.step_id)
    if (batch.get("file_counts") or {}).get("failed"):
        failed = await _retrying(sc, f"listing failed files of {label}",
                                 lambda: vs.failed_in_batch(client, store["id"], batch["id"]))
        why = "; ".join(f"{names.get(f['id'], f['id'])}: {(f.get('last_error') or {}).get('message', 'failed')}"
                        for f in failed)
        raise ExecutionError(f"file search: {len(failed)} file(s) could not be indexed in vector store "
                             f"{label}: {why}", sc.step_id)


async def _fill(sc: Any, store: dict[str, Any], files: list[_Source]) -> list[str]:
    """Upload ``files``, add them to ``store`` in batches and wait; returns the uploaded ids."""
    entries = await _upload(sc, files)
    names = {fid: f.name for (fid, _), f in zip(entries, files)}
    for start in range(0, len(entries), vs.BATCH_LIMIT):
        part = entries[start:start + vs.BATCH_LIMIT]
        batch = await _retrying(sc, f"adding files to vector store {store['id']}",
                                lambda p=part: vs.add_batch(sc.run.client, store["id"], p))
        await _wait(sc, store, batch, names)
    return [fid for (fid, _), f in zip(entries, files) if f.path is not None]


async def _await_ready(sc: Any, store: dict[str, Any]) -> None:
    """A reused store that is still processing: wait until it is not."""
    delay = POLL_FIRST
    while store.get("status") == "in_progress":
        counts = store.get("file_counts") or {}
        sc.status("running", f"vector store {store.get('name') or store['id']}: "
                             f"{counts.get('completed', 0)}/{counts.get('total', 0)} files ready")
        await asyncio.sleep(delay)
        delay = min(POLL_MAX, delay * 1.5)
        store = await _retrying(sc, "checking the vector store", lambda: vs.retrieve(sc.run.client, store["id"]))
    if store.get("status") == "expired":
        raise ExecutionError(f"file search: vector store {store['id']} has expired", sc.step_id)


async def _prepare(sc: Any, name: str, options: Any, files: list[_Source]) -> dict[str, Any]:
    """Find or make the store (module docstring, 2-3); returns what the record keeps."""
    client, wanted = sc.run.client, options.vector_store
    files_digest = digest(files) if files else ""
    meta = {"flowrun_files": files_digest, "flowrun_run": sc.run.store.run_id}
    if wanted and wanted.startswith("vs_"):
        store = await _retrying(sc, f"opening vector store {wanted}", lambda: vs.retrieve(client, wanted))
        await _await_ready(sc, store)
        if files:
            await _fill(sc, store, files)
        return {"id": store["id"], "name": store.get("name"), "created": False, "files": len(files)}
    store = None
    if wanted:
        store = await _retrying(sc, f"looking for vector store {wanted!r}", lambda: vs.find(client, wanted))
    if store is not None:
        if (store.get("metadata") or {}).get("flowrun_files") == files_digest:
            await _await_ready(sc, store)
            return {"id": store["id"], "name": wanted, "created": False, "reused": True, "files": len(files)}
        for old in await _retrying(sc, f"listing vector store {wanted!r}", lambda: vs.files(client, store["id"])):
            await _retrying(sc, f"removing {old['id']} from vector store {wanted!r}",
                            lambda o=old: vs.remove_file(client, store["id"], o["id"]))
        await _fill(sc, store, files)
        await _retrying(sc, f"updating vector store {wanted!r}", lambda: vs.update_metadata(client, store["id"], meta))
        return {"id": store["id"], "name": wanted, "created": False, "refreshed": True, "files": len(files)}
    label = wanted or f"flowrun {sc.run.store.run_id} {name}"
    store = await _retrying(sc, f"creating vector store {label!r}",
                            lambda: vs.create(client, label, options.expires_after, meta))
    uploaded: list[str] = []
    if not options.keep:
        sc.run.at_end(lambda: _delete(sc.run, store["id"], uploaded))
    uploaded.extend(await _fill(sc, store, files))
    return {"id": store["id"], "name": label, "created": True, "kept": options.keep, "files": len(files)}


async def _delete(run: Any, store_id: str, uploaded: list[str]) -> None:
    """End of run: delete the store flowrun created, then the files it uploaded for it."""
    await vs.delete(run.client, store_id)
    for file_id in uploaded:
        await vs.delete_file(run.client, file_id)


async def ensure_store(sc: Any, name: str, options: Any) -> dict[str, Any]:
    """The tool's store for this run, prepared once (the first step to ask does it)."""
    files = sources(sc, options)
    key = (options.vector_store, options.keep, options.expires_after, tuple(sorted(f.digest() for f in files)))
    cache: dict[Any, asyncio.Future[dict[str, Any]]] = sc.run.__dict__.setdefault("_vector_stores", {})
    future = cache.get(key)
    if future is None:
        future = asyncio.get_running_loop().create_future()
        cache[key] = future
        try:
            future.set_result(await _prepare(sc, name, options, files))
        except BaseException as exc:
            del cache[key]
            future.set_exception(exc)
            future.exception()
            raise
    return dict(await asyncio.shield(future))


@register_tool("file_search")
async def build(sc: Any, name: str, tool: Any) -> list[dict[str, Any]]:
    options = tool.file_search
    store = await ensure_store(sc, name, options)
    _record(sc)["vector_stores"].append(store)
    entry: dict[str, Any] = {"type": "file_search", "vector_store_ids": [store["id"]]}
    if options.max_num_results is not None:
        entry["max_num_results"] = options.max_num_results
    if options.filters is not None:
        entry["filters"] = sc.render_deep(options.filters)
    if options.ranking_options is not None:
        entry["ranking_options"] = options.ranking_options.model_dump(exclude_none=True)
    return [entry]


# --------------------------------------------------------------------------- result


@register_item("file_search_call")
async def on_call(sc: Any, item: dict[str, Any], response: dict[str, Any]) -> None:
    """Keep the call (queries, results) in the record; the service already searched."""
    entry = {"id": item.get("id"), "status": item.get("status"), "queries": item.get("queries") or []}
    if item.get("results") is not None:
        entry["results"] = item["results"]
    _record(sc)["calls"].append(entry)
    return None


@register_event("response.file_search_call.searching")
def on_searching(sc: Any, event: dict[str, Any]) -> None:
    sc.status("running", "file search: searching")
