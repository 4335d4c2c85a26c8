"""A step's ``input`` -> Responses input items (text, image and file parts).

Each part kind has a builder ``async (sc, part) -> content dict``, registered with
:func:`register_part`, so a media module can replace the simple built-ins.
"""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path
from typing import Any, Awaitable, Callable

from .errors import ExecutionError

PartBuilder = Callable[[Any, Any], Awaitable[dict[str, Any]]]
PART_BUILDERS: dict[str, PartBuilder] = {}


def register_part(kind: str) -> Callable[[PartBuilder], PartBuilder]:
    def deco(fn: PartBuilder) -> PartBuilder:
        PART_BUILDERS[kind] = fn
        return fn

    return deco


def local_path(sc: Any, value: str) -> Path:
    """A path from a flow input or template: relative paths are taken from where flowrun
    runs (flow inputs are already absolute)."""
    path = Path(value)
    if not path.is_absolute():
        path = sc.run.cwd / path
    if not path.is_file():
        raise ExecutionError(f"file not found: {value}", sc.step_id)
    return path


def data_url(path: Path, default_mime: str = "application/octet-stream") -> str:
    mime = mimetypes.guess_type(path.name)[0] or default_mime
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


@register_part("text")
async def _text(sc: Any, part: Any) -> dict[str, Any]:
    return {"type": "input_text", "text": sc.render(part.text)}


@register_part("image")
async def _image(sc: Any, part: Any) -> dict[str, Any]:
    ref = sc.render(part.image)
    content: dict[str, Any] = {"type": "input_image", "detail": part.detail}
    if ref.startswith(("http://", "https://", "data:")):
        content["image_url"] = ref
    elif ref.startswith("file-"):
        content["file_id"] = ref
    else:
        content["image_url"] = data_url(local_path(sc, ref), "image/png")
    return content


@register_part("file")
async def _file(sc: Any, part: Any) -> dict[str, Any]:
    ref = sc.render(part.file)
    if ref.startswith("file-"):
        return {"type": "input_file", "file_id": ref}
    path = local_path(sc, ref)
    return {
        "type": "input_file",
        "filename": part.filename or path.name,
        "file_data": data_url(path, "application/pdf"),
    }


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
        content = [{"type": "input_text", "text": sc.render(raw)}]
    else:
        content = [await PART_BUILDERS[_kind(p)](sc, p) for p in raw]
    return [{"type": "message", "role": "user", "content": content}]
