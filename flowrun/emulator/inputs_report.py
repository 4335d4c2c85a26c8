"""What the emulator's model received: the images and files of every request, checked,
described and reported.

**Checks** (on the new input of each ``POST /responses``, in ``message`` content and in
list-valued ``function_call_output``): an ``input_image`` needs ``image_url`` or
``file_id``; a data URL must be base64 that decodes, of a declared type png / jpeg /
webp / gif that matches the content's magic bytes; an ``input_file``'s ``file_data``
(a data URL or plain base64) must decode, and when it declares PDF / png / jpeg /
webp / gif the content must be that type; every ``file_id`` must exist in the Files API
store (:mod:`.files`), and an image's must hold an image. Anything else is answered with
400 naming the offending ``input[i].content[j]`` path, before any reply is chosen.
http(s) URLs are accepted unchecked (the emulator does not fetch them).

**What the model sees**: a readable PDF part reads
``[file NAME: N pages, sha256 HEX12: first words of its text…]`` in the default rule's
echo (HEX12: the first 12 hex digits of the file's sha256; at most 12 words), so a flow
run on the emulator shows that the PDF arrived. An unreadable PDF, or any other file,
keeps the plain ``[file NAME]``.

**The report** - :func:`inputs_report` ``(emulator)`` lists, oldest first, one entry per
image or file received: ``step``, ``item`` (from ``metadata.flowrun_step`` /
``flowrun_item``), ``kind`` (image / file), ``source`` (data_url / file_id / url),
``filename``, ``file_id``, ``mime`` (sniffed from the content), ``bytes``, ``sha256``;
for PDFs ``pages`` and ``text`` (one string per page, by pypdf); for images ``width``
and ``height`` (by Pillow). Without pypdf / Pillow those fields are absent and ``note``
says what to install. It is cleared by a reset.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

from ..media import IMAGE_MIMES, INSTALL_HINT, PDF_MIME, MediaError, b64decode, image_size, parse_data_url, pdf_text, sniff
from .errors import APIError
from .files import file_store
from .model import PART_DESCRIBERS, TURN_CHECKS, Turn
from .service import RESET_HOOKS

SNIFFABLE = (PDF_MIME, *IMAGE_MIMES)
DESCRIBED_WORDS = 12


def inputs_report(emulator: Any) -> list[dict[str, Any]]:
    """Every image and file the emulator received, oldest first (see the module docstring)."""
    with _lock:
        return [dict(e) for e in getattr(emulator, "_inputs_report", [])]


_lock = threading.Lock()


def _append(emulator: Any, entries: list[dict[str, Any]]) -> None:
    with _lock:
        if not hasattr(emulator, "_inputs_report"):
            emulator._inputs_report = []
        emulator._inputs_report.extend(entries)


def _reset(emulator: Any) -> None:
    with _lock:
        emulator._inputs_report = []


RESET_HOOKS.append(_reset)


# ---------------------------------------------------------------- content analysis

_PDF_INFO: OrderedDict[str, dict[str, Any]] = OrderedDict()  # sha256 -> pages/text
_FILE_IDS: dict[str, tuple[str, str]] = {}  # file id -> (sha256, filename), once seen in a request


def pdf_info(data: bytes, digest: str | None = None) -> dict[str, Any]:
    """``{"pages", "text"}`` of a PDF, or ``{"note"}`` when it cannot be read (cached)."""
    digest = digest or hashlib.sha256(data).hexdigest()
    with _lock:
        if digest in _PDF_INFO:
            _PDF_INFO.move_to_end(digest)
            return _PDF_INFO[digest]
    try:
        pages = pdf_text(data)
        info: dict[str, Any] = {"pages": len(pages), "text": pages}
    except ImportError:
        info = {"note": f"PDF not read: pypdf is not installed ({INSTALL_HINT})"}
    except MediaError as exc:
        info = {"note": str(exc)}
    with _lock:
        _PDF_INFO[digest] = info
        while len(_PDF_INFO) > 64:
            _PDF_INFO.popitem(last=False)
    return info


def describe(data: bytes, mime: str | None) -> dict[str, Any]:
    """Report fields for content: mime, bytes, sha256, and pages/text or width/height."""
    digest = hashlib.sha256(data).hexdigest()
    out: dict[str, Any] = {"mime": mime, "bytes": len(data), "sha256": digest}
    if mime == PDF_MIME:
        out.update(pdf_info(data, digest))
    elif mime in IMAGE_MIMES:
        try:
            size = image_size(data)
        except MediaError as exc:
            out["note"] = str(exc)
        else:
            if size is None:
                out["note"] = f"image not decoded: Pillow is not installed ({INSTALL_HINT})"
            else:
                out["width"], out["height"] = size
    return out


def image_bytes(emulator: Any, part: dict[str, Any]) -> bytes | None:
    """The bytes of an ``input_image`` part (data URL or stored file); None for an http(s)
    URL or anything unreadable. For the image tool's edits."""
    url = part.get("image_url")
    try:
        if isinstance(url, str) and url.startswith("data:"):
            return parse_data_url(url)[1]
    except MediaError:
        return None
    file_id = part.get("file_id")
    if file_id and emulator is not None:
        stored = file_store(emulator).get(file_id)
        return stored.data if stored is not None else None
    return None


# ---------------------------------------------------------------- checks


def _bad(where: str, message: str) -> APIError:
    return APIError(400, f"Invalid value for '{where}': {message}", param=where, code="invalid_value")


def _parts(raw: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(path, part)`` for every content part of the request's new input."""
    if not isinstance(raw, list):
        return []
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message" and isinstance(item.get("content"), list):
            out.extend((f"input[{i}].content[{j}]", p) for j, p in enumerate(item["content"]) if isinstance(p, dict))
        elif kind in ("function_call_output", "custom_tool_call_output") and isinstance(item.get("output"), list):
            out.extend((f"input[{i}].output[{j}]", p) for j, p in enumerate(item["output"]) if isinstance(p, dict))
    return out


def _stored(turn: Turn, file_id: str, where: str) -> Any:
    stored = file_store(turn.emulator).get(file_id)
    if stored is None:
        raise _bad(where, f"no file with id '{file_id}' (upload it with POST /files first).")
    return stored


def _check_image(turn: Turn, where: str, part: dict[str, Any]) -> dict[str, Any] | None:
    url, file_id = part.get("image_url"), part.get("file_id")
    if isinstance(url, str) and url:
        if url.startswith(("http://", "https://")):
            return {"source": "url", "url": url}
        if not url.startswith("data:"):
            raise _bad(f"{where}.image_url", "expected an http(s) URL or a base64 data URL.")
        try:
            declared, data = parse_data_url(url)
        except MediaError as exc:
            raise _bad(f"{where}.image_url", f"{exc}.") from None
        if declared not in IMAGE_MIMES:
            raise _bad(f"{where}.image_url", f"unsupported image type '{declared}'; expected one of "
                       f"{', '.join(IMAGE_MIMES)}.")
        actual = sniff(data)
        if actual != declared:
            raise _bad(f"{where}.image_url", f"the data URL says '{declared}' but the data is "
                       f"{actual or 'not a recognised image'}.")
        return {"source": "data_url", **describe(data, actual)}
    if file_id:
        stored = _stored(turn, file_id, f"{where}.file_id")
        actual = sniff(stored.data)
        if actual not in IMAGE_MIMES:
            raise _bad(f"{where}.file_id", f"file '{file_id}' is not an image "
                       f"({actual or 'unknown type'}).")
        return {"source": "file_id", "file_id": file_id, "filename": stored.filename,
                **describe(stored.data, actual)}
    raise _bad(where, "an input_image needs 'image_url' or 'file_id'.")


def _check_file(turn: Turn, where: str, part: dict[str, Any]) -> dict[str, Any] | None:
    data_field, file_id = part.get("file_data"), part.get("file_id")
    if isinstance(data_field, str) and data_field:
        try:
            if data_field.startswith("data:"):
                declared, data = parse_data_url(data_field)
            else:
                declared, data = None, b64decode(data_field)
        except MediaError as exc:
            raise _bad(f"{where}.file_data", f"{exc}.") from None
        actual = sniff(data)
        if declared in SNIFFABLE and actual != declared:
            raise _bad(f"{where}.file_data", f"the data URL says '{declared}' but the data is "
                       f"{actual or 'of another type'}.")
        return {"source": "data_url", "filename": part.get("filename"),
                **describe(data, actual or declared)}
    if file_id:
        stored = _stored(turn, file_id, f"{where}.file_id")
        info = {"source": "file_id", "file_id": file_id, "filename": part.get("filename") or stored.filename,
                **describe(stored.data, sniff(stored.data))}
        with _lock:
            _FILE_IDS[file_id] = (info["sha256"], stored.filename)
        return info
    if part.get("file_url"):
        return {"source": "url", "url": part["file_url"], "filename": part.get("filename")}
    raise _bad(where, "an input_file needs 'file_data', 'file_id' or 'file_url'.")


def check_and_record(turn: Turn) -> None:
    """The TURN_CHECK: validate the request's new images and files, then report them."""
    entries = []
    for where, part in _parts(turn.request.get("input")):
        kind = part.get("type")
        if kind == "input_image":
            info = _check_image(turn, where, part)
        elif kind == "input_file":
            info = _check_file(turn, where, part)
        else:
            continue
        entries.append({"step": turn.step, "item": turn.item,
                        "kind": "image" if kind == "input_image" else "file", **(info or {})})
    if entries:
        _append(turn.emulator, entries)


TURN_CHECKS.append(check_and_record)


# ---------------------------------------------------------------- what the model "sees"

_DESCRIPTIONS: OrderedDict[tuple[int, int], str | None] = OrderedDict()


def _summary(name: str | None, info: dict[str, Any], digest: str) -> str | None:
    if "pages" not in info:
        return None
    words = " ".join(info["text"]).split()
    head = " ".join(words[:DESCRIBED_WORDS]) + ("…" if len(words) > DESCRIBED_WORDS else "")
    pages = f"{info['pages']} page" + ("" if info["pages"] == 1 else "s")
    label = f"file {name}" if name else "file"
    return f"[{label}: {pages}, sha256 {digest[:12]}: {head}]" if head else f"[{label}: {pages}, sha256 {digest[:12]}]"


def describe_file_part(part: dict[str, Any]) -> str | None:
    """PART_DESCRIBERS["input_file"]: the PDF summary, or None for the plain text."""
    data_field, file_id = part.get("file_data"), part.get("file_id")
    if isinstance(data_field, str) and data_field:
        key = (len(data_field), hash(data_field))  # no reference kept to the (large) string
        with _lock:
            if key in _DESCRIPTIONS:
                return _DESCRIPTIONS[key]
        text = None
        try:
            data = parse_data_url(data_field)[1] if data_field.startswith("data:") else b64decode(data_field)
        except MediaError:
            data = b""
        if sniff(data) == PDF_MIME:
            digest = hashlib.sha256(data).hexdigest()
            text = _summary(part.get("filename"), pdf_info(data, digest), digest)
        with _lock:
            _DESCRIPTIONS[key] = text
            while len(_DESCRIPTIONS) > 256:
                _DESCRIPTIONS.popitem(last=False)
        return text
    if file_id:
        with _lock:
            digest, stored_name = _FILE_IDS.get(file_id, ("", ""))
            info = _PDF_INFO.get(digest) if digest else None
        if info is not None:
            return _summary(part.get("filename") or stored_name or file_id, info, digest)
    return None


PART_DESCRIBERS["input_file"] = describe_file_part
