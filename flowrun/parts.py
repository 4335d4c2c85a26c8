"""A step's ``input`` -> the Responses input message (text, image and file parts).

Building the message takes three passes, so that nothing is sent (no upload, no model
request) for an input that breaks a rule:

1. **resolve** every part (:func:`resolve_part`): render its template, decide what it
   refers to - a local file, an http(s) URL, a data URL or a file id - and check its type
   from the content (magic bytes, then Pillow), never from the extension alone:
   ``image`` takes png / jpeg / webp / gif, ``file`` takes PDF;
2. **check the request limits** over all file parts (Azure guide: at most 32 MB and
   100 pages per request across all files; pages counted with pypdf);
3. **build** each part with its builder from :data:`PART_BUILDERS`
   (``async (sc, part, source) -> content dict``, registered with :func:`register_part`):
   local files become base64 data URLs, or with ``upload: true`` are uploaded (files API)
   and sent by id. PDFs are uploaded with the provider's purpose (``assistants`` on
   Azure, ``user_data`` elsewhere), images with ``vision``. One file is uploaded once per
   run, however many steps send it.

Paths: absolute paths (``file`` flow inputs, earlier steps' ``images``) are used as they
are; a relative path is looked up in the directory flowrun runs in, then beside the flow
file. Anything matching ``file-...`` / ``assistant-...`` that is not a local file is an
uploaded file id; it is sent as is (its pages and size cannot be counted).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from . import media
from .errors import ExecutionError

FILE_ID = re.compile(r"^(?:file|assistant)-[A-Za-z0-9_-]+$")
URL = ("http://", "https://")
IMAGE_UPLOAD_PURPOSE = "vision"


@dataclass
class Source:
    """What one input part refers to, resolved and checked before anything is sent."""

    kind: str  # text, image or file
    ref: str  # the rendered value
    path: Path | None = None  # a local file
    url: str | None = None  # an http(s) or data URL, sent as is
    file_id: str | None = None  # an uploaded file
    mime: str | None = None
    size: int = 0
    pages: int | None = None

    @property
    def name(self) -> str:
        if self.path is not None:
            return str(self.path)
        if self.file_id:
            return self.file_id
        if self.url and self.url.startswith("data:"):
            return f"data URL ({self.mime})"
        return self.ref


PartBuilder = Callable[[Any, Any, Source], Awaitable[dict[str, Any]]]
PART_BUILDERS: dict[str, PartBuilder] = {}


def register_part(kind: str) -> Callable[[PartBuilder], PartBuilder]:
    def deco(fn: PartBuilder) -> PartBuilder:
        PART_BUILDERS[kind] = fn
        return fn

    return deco


def _fail(sc: Any, what: str, message: str) -> ExecutionError:
    return ExecutionError(f"{what}: {message}", sc.step_id)


def local_file(sc: Any, value: str) -> Path | None:
    """The local file ``value`` names, or None. Relative paths: from where flowrun runs,
    then from the flow file's directory."""
    path = Path(value).expanduser()
    candidates = [path] if path.is_absolute() else [sc.run.cwd / path, sc.base_dir / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    return None


def local_path(sc: Any, value: str) -> Path:
    """Like :func:`local_file`, but a missing file is a step error."""
    path = local_file(sc, value)
    if path is None:
        raise _fail(sc, value, "file not found")
    return path


# --------------------------------------------------------------------------- resolve


def resolve_part(sc: Any, part: Any) -> Source:
    """Pass 1 for one part (see the module docstring)."""
    kind = _kind(part)
    if kind == "text":
        return Source("text", sc.render(part.text))
    raw = sc.render(part.image if kind == "image" else part.file)
    ref = str(raw).strip()
    what = f"{kind} {ref if not ref.startswith('data:') else ref[:40] + '...'}"
    if not ref:
        raise _fail(sc, kind, "the reference is empty (a path, URL or file id was expected)")
    if ref.startswith(URL):
        return Source(kind, ref, url=ref)
    if ref.startswith("data:"):
        try:
            mime, data = media.parse_data_url(ref)
        except media.MediaError as exc:
            raise _fail(sc, what, str(exc)) from None
        src = Source(kind, ref, url=ref, mime=mime, size=len(data))
        _check_type(sc, src, media.sniff(data), what)
        if kind == "file":
            src.pages = _pages(sc, data, what)
        return src
    path = local_file(sc, ref)
    if path is None:
        if FILE_ID.match(ref):
            return Source(kind, ref, file_id=ref)
        raise _fail(sc, what, "file not found (not a local file, an http(s) URL or a file id)")
    src = Source(kind, ref, path=path, size=path.stat().st_size)
    src.mime = media.sniff_path(path)
    _check_type(sc, src, src.mime, str(path))
    return src


def _check_type(sc: Any, src: Source, actual: str | None, what: str) -> None:
    declared = src.mime
    if src.kind == "image":
        if actual not in media.IMAGE_MIMES:
            raise _fail(sc, what, f"is {media.describe_mime(actual)}, not an image the model "
                        "accepts (png, jpeg, webp or gif)")
    elif actual != media.PDF_MIME:
        raise _fail(sc, what, f"is {media.describe_mime(actual)}, not a PDF"
                    + ("; send images with an image part" if actual in media.IMAGE_MIMES else ""))
    if declared is not None and declared != actual and src.path is None:
        raise _fail(sc, what, f"the data URL says {declared} but the content is {actual}")
    src.mime = actual


def _pages(sc: Any, data: bytes, what: str) -> int:
    try:
        return media.pdf_page_count(data)[0]
    except media.MediaError as exc:
        raise _fail(sc, what, str(exc)) from None


def check_limits(sc: Any, sources: list[Source]) -> None:
    """Pass 2: the per-request limits over all file parts (bytes first: it needs no
    reading). Local PDFs are read here, to count their pages; images are decoded with
    Pillow (when installed) to catch corrupt files."""
    files = [s for s in sources if s.kind == "file" and (s.path is not None or s.url and s.size)]
    loads = [media.FileLoad(s.name, s.size, s.pages) for s in files]
    try:
        media.check_total_bytes(loads)
    except media.MediaError as exc:
        raise ExecutionError(str(exc), sc.step_id) from None
    for src, load in zip(files, loads):
        if src.path is not None and src.pages is None:
            src.pages = load.pages = _pages(sc, src.path.read_bytes(), str(src.path))
    try:
        media.check_total_pages(loads)
    except media.MediaError as exc:
        raise ExecutionError(str(exc), sc.step_id) from None
    for src in sources:
        if src.kind == "image" and src.path is not None:
            try:
                media.image_size(src.path.read_bytes())
            except media.MediaError as exc:
                raise _fail(sc, str(src.path), str(exc)) from None


# --------------------------------------------------------------------------- build


async def upload_once(sc: Any, path: Path, purpose: str) -> str:
    """Upload ``path`` with ``purpose`` (once per run and content) and return its id."""
    cache: dict[tuple[Any, ...], asyncio.Future[str]] = sc.run.__dict__.setdefault("_uploads", {})
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, purpose)
    future = cache.get(key)
    if future is None:
        future = asyncio.get_running_loop().create_future()
        cache[key] = future
        sc.status("running", f"uploading {path.name}")
        try:
            future.set_result(await sc.run.client.upload_file(path, purpose))
        except BaseException as exc:
            del cache[key]
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
    return await asyncio.shield(future)


@register_part("text")
async def _text(sc: Any, part: Any, src: Source) -> dict[str, Any]:
    return {"type": "input_text", "text": src.ref}


@register_part("image")
async def _image(sc: Any, part: Any, src: Source) -> dict[str, Any]:
    content: dict[str, Any] = {"type": "input_image", "detail": part.detail}
    if src.url is not None:
        content["image_url"] = src.url
    elif src.file_id is not None:
        content["file_id"] = src.file_id
    elif getattr(part, "upload", False):
        content["file_id"] = await upload_once(sc, src.path, IMAGE_UPLOAD_PURPOSE)
    else:
        content["image_url"] = media.data_url(src.mime or "image/png", src.path.read_bytes())
    return content


@register_part("file")
async def _file(sc: Any, part: Any, src: Source) -> dict[str, Any]:
    content: dict[str, Any] = {"type": "input_file"}
    if src.url is not None and not src.url.startswith("data:"):
        content["file_url"] = src.url
    elif src.file_id is not None:
        content["file_id"] = src.file_id
    elif src.path is not None and part.upload:
        content["file_id"] = await upload_once(sc, src.path, sc.run.client.provider.file_purpose)
    else:
        content["filename"] = part.filename or (src.path.name if src.path else "file.pdf")
        content["file_data"] = src.url or media.data_url(media.PDF_MIME, src.path.read_bytes())
        return content
    if part.filename:
        content["filename"] = part.filename
    return content


def _kind(part: Any) -> str:
    from .spec import FilePart, ImagePart

    if isinstance(part, ImagePart):
        return "image"
    if isinstance(part, FilePart):
        return "file"
    return "text"


async def build_input(sc: Any) -> list[dict[str, Any]]:
    """The new user message of a step (one item)."""
    raw = sc.step.input
    if isinstance(raw, str):
        return [{"type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": sc.render(raw)}]}]
    sources = [resolve_part(sc, p) for p in raw]
    check_limits(sc, sources)
    content = [await PART_BUILDERS[src.kind](sc, p, src) for p, src in zip(raw, sources)]
    return [{"type": "message", "role": "user", "content": content}]
