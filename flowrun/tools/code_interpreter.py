"""The hosted code interpreter: container set-up, files in, files out.

The service runs the code; flowrun configures the tool, feeds it the step's files and
brings back what the code produced.

**Request.** ``tools: [code_interpreter]`` or ``{code_interpreter: {container, memory_limit}}``:

- ``container: auto`` (the default) sends ``{"type": "code_interpreter", "container":
  {"type": "auto", "file_ids": [...], "memory_limit": ...}}``: the step's ``files``
  (templates; local paths - relative ones from the directory flowrun runs in, then the
  flow file's - or uploaded ``file-...`` ids; a template may give a list) are uploaded
  with the files API (purpose ``user_data``, ``assistants`` on Azure; once per run) and
  listed as ``file_ids``;
- any other value (usually ``{{ steps.a.container }}``) is an existing container id, sent
  as the string; the step's files are put straight into that container
  (``POST /containers/{id}/files``) before the first request. ``memory_limit`` only
  applies to ``auto``.

``code_interpreter_call.outputs`` is added to the step's ``include`` so the service
returns the code's logs and images.

**Result.** For every response of the step that has ``code_interpreter_call`` items:

- ``steps.X.container`` is the container id of the last call (an explicit container id
  from the start);
- downloaded into ``artifacts/<step>/`` (safe names, never outside the run directory) and
  listed in ``steps.X.files`` (image files also in ``steps.X.images``): the files cited by
  ``container_file_citation`` annotations, then every other file in the containers used
  whose ``source`` is not ``user`` (so the step's own input files never come back) and
  that was neither there before the step (explicit containers are listed first) nor
  already brought back by another step of the run, then images in the calls' ``outputs``
  (``data:`` URLs) whose bytes are not already among the downloaded files. A file is
  downloaded once per run: citing a file an earlier step downloaded reuses that path;
- the run record keeps, under ``code_interpreter``, each call's ``id``,
  ``container_id``, ``status``, ``code`` and ``logs`` (and ``images``), and each
  downloaded file's container, id, name and local path. A cited file that no longer
  exists is listed under ``missing`` instead of failing the step. Image outputs given as
  http(s) URLs are recorded, not fetched.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from ..errors import ClientError, ExecutionError
from ..retry import with_retries
from . import register_event, register_item, register_tool

INCLUDE_OUTPUTS = "code_interpreter_call.outputs"
RECORD_KEY = "code_interpreter"
MAX_FILE_IDS = 50
FILE_ID = re.compile(r"^(?:file|assistant)-[A-Za-z0-9_-]+$")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


def _state(sc: Any) -> dict[str, Any]:
    """Per step run: uploads, containers prepared, what was seen and downloaded."""
    return sc.state.setdefault(RECORD_KEY, {
        "file_ids": None,  # uploaded ids of the step's files (auto containers)
        "prepared": set(),  # explicit containers that got the step's files
        "before": {},  # container id -> file ids present before this step
        "responses": set(),  # response ids already processed
        "have": set(),  # (container id, file id) this step has in its files
        "hashes": set(),  # sha256 of the bytes this step saved
    })


def _downloads(sc: Any) -> dict[tuple[str, str], tuple[str, str]]:
    """Per run: (container id, file id) -> (step key, local path) of every download."""
    return sc.run.__dict__.setdefault("_container_downloads", {})


def _record(sc: Any) -> dict[str, Any]:
    return sc.result.extra.setdefault(RECORD_KEY, {"calls": [], "files": []})


async def _retrying(sc: Any, what: str, operation: Any) -> Any:
    def on_retry(n: int, err: Exception, wait: float) -> None:
        sc.status("retrying", f"{what}: retry {n} in {wait:.1f}s: {err}")

    try:
        return await with_retries(operation, sc.retries, on_retry)
    except ClientError as exc:
        raise ExecutionError(f"code interpreter: {what}: {exc}", sc.step_id) from None


# --------------------------------------------------------------------------- request


def _step_files(sc: Any) -> list[tuple[Path | None, str | None]]:
    """The step's ``files``: (local path, None) or (None, uploaded file id)."""
    from ..parts import local_file

    refs: list[str] = []
    for entry in sc.step.files:
        value = sc.evaluate(entry)
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            ref = "" if v is None else str(v).strip()
            if not ref:
                raise ExecutionError(f"files: {entry!r} gave an empty path", sc.step_id)
            refs.append(ref)
    out: list[tuple[Path | None, str | None]] = []
    for ref in refs:
        path = local_file(sc, ref)
        if path is not None:
            out.append((path, None))
        elif FILE_ID.match(ref):
            out.append((None, ref))
        else:
            raise ExecutionError(
                f"files: {ref}: file not found (looked in {sc.run.cwd} and {sc.base_dir})",
                sc.step_id,
            )
    return out


async def _upload_all(sc: Any) -> list[str]:
    state = _state(sc)
    if state["file_ids"] is None:
        from ..parts import upload_once

        sources = _step_files(sc)
        if len(sources) > MAX_FILE_IDS:
            raise ExecutionError(
                f"files: {len(sources)} files, but a container takes at most {MAX_FILE_IDS}",
                sc.step_id,
            )
        purpose = sc.run.client.provider.file_purpose
        ids = []
        for path, file_id in sources:
            if path is not None:
                ids.append(await _retrying(sc, f"uploading {path.name}",
                                           lambda p=path: upload_once(sc, p, purpose)))
            else:
                ids.append(file_id)
        state["file_ids"] = ids
    return list(state["file_ids"])


async def _prepare_container(sc: Any, container: str) -> None:
    """An explicit container: note what it holds, then put the step's files in."""
    state = _state(sc)
    if container in state["prepared"]:
        return
    client = sc.run.client
    existing = await _retrying(sc, f"listing container {container}",
                               lambda: client.container_files(container))
    state["before"][container] = {f["id"] for f in existing}
    for path, file_id in _step_files(sc):
        sc.status("running", f"adding {path.name if path else file_id} to the container")
        await _retrying(sc, f"adding {path.name if path else file_id} to container {container}",
                        lambda p=path, f=file_id: client.add_container_file(container, p, f))
    state["prepared"].add(container)


def _ask_for_outputs(sc: Any) -> None:
    """Add ``code_interpreter_call.outputs`` to this step run's ``include``. The step
    model is frozen, so this run gets its own copy (the plan's step is untouched)."""
    if INCLUDE_OUTPUTS not in sc.step.include:
        sc.step = sc.step.model_copy(update={"include": [*sc.step.include, INCLUDE_OUTPUTS]})


@register_tool("code_interpreter")
async def build(sc: Any, name: str, tool: Any) -> list[dict[str, Any]]:
    from ..spec import CodeInterpreterOptions

    options = tool.code_interpreter or CodeInterpreterOptions()
    container = str(sc.render(options.container)).strip()
    _ask_for_outputs(sc)
    if container == "auto":
        spec: dict[str, Any] = {"type": "auto"}
        file_ids = await _upload_all(sc)
        if file_ids:
            spec["file_ids"] = file_ids
        if options.memory_limit:
            spec["memory_limit"] = options.memory_limit
        return [{"type": "code_interpreter", "container": spec}]
    if not container or container.lower() in ("none", "null"):
        raise ExecutionError(
            f"tool {name!r}: the container is empty (from {options.container!r}); the step it "
            "names has no container - did it run code?",
            sc.step_id,
        )
    if options.memory_limit:
        raise ExecutionError(
            f"tool {name!r}: memory_limit applies to container: auto; the existing container "
            f"{container} keeps its own",
            sc.step_id,
        )
    await _prepare_container(sc, container)
    sc.result.container = container
    return [{"type": "code_interpreter", "container": container}]


# --------------------------------------------------------------------------- result


def _citations(response: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    out = []
    for item in response.get("output") or []:
        if item.get("type") != "message":
            continue
        for part in item.get("content") or []:
            annotations = part.get("annotations") if isinstance(part, dict) else None
            for ann in annotations or []:
                if ann.get("type") == "container_file_citation" and ann.get("file_id"):
                    out.append((ann.get("container_id", ""), ann["file_id"], ann.get("filename")))
    return out


def _basename(path: str | None) -> str | None:
    return path.replace("\\", "/").rsplit("/", 1)[-1] if path else None


def _keep(sc: Any, path: str, key: tuple[str, str] | None, data: bytes | None) -> None:
    """Add a local file to the step's result (once)."""
    state = _state(sc)
    if key is not None:
        state["have"].add(key)
    if data is not None:
        state["hashes"].add(hashlib.sha256(data).hexdigest())
    if path not in sc.result.files:
        sc.result.files.append(path)
        if path.lower().endswith(IMAGE_SUFFIXES) and path not in sc.result.images:
            sc.result.images.append(path)


async def _download(sc: Any, cid: str, fid: str, name: str, why: str) -> None:
    state, registry, record = _state(sc), _downloads(sc), _record(sc)
    key = (cid, fid)
    if key in state["have"]:
        return
    if key in registry:  # another step brought it back already: same file, same path
        _keep(sc, registry[key][1], key, None)
        return
    sc.status("running", f"downloading {name}")
    client = sc.run.client
    try:
        data = await with_retries(lambda: client.container_file_content(cid, fid), sc.retries)
    except ClientError as exc:
        if getattr(exc, "status", None) == 404 and why == "cited":
            record.setdefault("missing", []).append(
                {"container_id": cid, "file_id": fid, "name": name, "error": str(exc)})
            return
        raise ExecutionError(f"code interpreter: downloading {name} ({fid}): {exc}",
                             sc.step_id) from None
    path = str(sc.run.store.save_artifact(sc.key, name, data))
    registry[key] = (sc.key, path)
    _keep(sc, path, key, data)
    record["files"].append({"container_id": cid, "file_id": fid, "name": name, "path": path,
                            "bytes": len(data), "from": why})


def _image_outputs(sc: Any, item: dict[str, Any]) -> list[str]:
    """Save the call's image outputs that are new bytes; returns paths or URLs."""
    from .. import media

    state, saved = _state(sc), []
    images = [o for o in item.get("outputs") or [] if o.get("type") == "image" and o.get("url")]
    for n, output in enumerate(images, 1):
        url = output["url"]
        if not url.startswith("data:"):
            saved.append(url)
            continue
        try:
            _, data = media.parse_data_url(url)
        except media.MediaError as exc:
            raise ExecutionError(f"code interpreter image output: {exc}", sc.step_id) from None
        digest = hashlib.sha256(data).hexdigest()
        if digest in state["hashes"]:
            continue  # the same image came back as a container file
        ext = media.EXTENSIONS.get(media.sniff(data) or "", "png")
        path = str(sc.run.store.save_artifact(sc.key, f"{item.get('id') or 'image'}-{n}.{ext}", data))
        _keep(sc, path, None, data)
        _record(sc)["files"].append({"container_id": item.get("container_id"), "name": Path(path).name,
                                     "path": path, "bytes": len(data), "from": "image_output"})
        saved.append(path)
    return saved


async def _collect(sc: Any, response: dict[str, Any]) -> None:
    """Everything a response's code interpreter calls produced (module docstring)."""
    state, registry, record = _state(sc), _downloads(sc), _record(sc)
    calls = [i for i in response.get("output") or [] if i.get("type") == "code_interpreter_call"]
    containers: list[str] = []
    for item in calls:
        cid = item.get("container_id")
        if cid:
            sc.result.container = cid
            if cid not in containers:
                containers.append(cid)
    citations = _citations(response)
    for cid, _, _ in citations:
        if cid and cid not in containers:
            containers.append(cid)
    client = sc.run.client
    listing: dict[str, dict[str, dict[str, Any]]] = {}
    for cid in containers:
        files = await _retrying(sc, f"listing container {cid}", lambda c=cid: client.container_files(c))
        listing[cid] = {f["id"]: f for f in files}
    for cid, fid, filename in citations:
        meta = listing.get(cid, {}).get(fid)
        if meta is not None and meta.get("source") == "user":
            continue  # an input file, not something the code made
        name = filename or _basename((meta or {}).get("path")) or fid
        await _download(sc, cid, fid, name, "cited")
    for cid in containers:
        before = state["before"].get(cid, set())
        for fid, meta in listing[cid].items():
            owner = registry.get((cid, fid), (sc.key,))[0]
            if meta.get("source") == "user" or fid in before or owner != sc.key:
                continue
            await _download(sc, cid, fid, _basename(meta.get("path")) or fid, "container")
    for item in calls:
        logs = "".join(o.get("logs") or "" for o in item.get("outputs") or []
                       if o.get("type") == "logs")
        entry = {"id": item.get("id"), "container_id": item.get("container_id"),
                 "status": item.get("status"), "code": item.get("code"), "logs": logs}
        images = _image_outputs(sc, item)
        if images:
            entry["images"] = images
        record["calls"].append(entry)


@register_item("code_interpreter_call")
async def on_call(sc: Any, item: dict[str, Any], response: dict[str, Any]) -> None:
    """Process the whole response once, at its first code interpreter call; the service
    already ran the code, so nothing goes back to the model."""
    state = _state(sc)
    rid = response.get("id") or id(response)
    if rid not in state["responses"]:
        state["responses"].add(rid)
        await _collect(sc, response)
    return None


@register_event("response.code_interpreter_call.interpreting")
def on_interpreting(sc: Any, event: dict[str, Any]) -> None:
    sc.status("running", "code interpreter: running code")
