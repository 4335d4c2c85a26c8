"""The emulator's hosted image generation tool: real images drawn with Pillow, fully
determined by the prompt, so tests and offline runs can check what came back.

**When it draws (default rule, after the forced-function rule).** A request whose
``tools`` include ``{"type": "image_generation"}`` and whose ``tool_choice`` is not
``none`` (nor forces another tool) gets one image for the last user message's text (its ``input_text`` parts) -
unless the conversation ends with function outputs or the request asks for structured
output. The reply is an ``image_generation_call`` item followed by an assistant message
``[emulator] generated image: PROMPT`` (or ``[emulator] edited image: PROMPT``).

**Generate vs edit.** With no image in the conversation, the image is *generated*: the
background colour comes from ``sha256(prompt)`` (bytes 0-2), a centred ellipse /
rectangle / triangle (byte 3 mod 3) in a second colour (bytes 4-6), and the prompt
written across the top. If the conversation holds an image - an ``input_image``
(data URL or uploaded ``file_id``) or an earlier ``image_generation_call`` result,
the most recent one wins, history via ``previous_response_id`` included - the image is
an *edit* of it: the input image (resized to the requested size if one is set), with a
band across the bottom sixth in the new prompt's colour holding the new prompt. The
rest of the input image is kept pixel for pixel, so a test can tell an edit from a
fresh generation. The item's ``action`` says ``generate`` or ``edit``.

**Options** from the request's tool: ``size`` (``WxH``; ``auto`` or unset: 1024x1024, or
the input image's size for an edit), ``output_format`` (png / jpeg / webp; default png),
``background`` (``transparent`` gives a generated image a transparent background - not
with jpeg, which is a 400; an edit keeps its input's pixels), ``output_compression``
(jpeg / webp quality), ``quality`` (echoed; ``auto`` reads ``medium``). The item carries
``revised_prompt`` (the prompt itself, unless scripted), ``size``, ``quality``,
``background`` (``transparent`` when the result has transparent pixels),
``output_format`` and ``action``.

**Streaming** (SSE): ``response.image_generation_call.in_progress`` → ``.generating`` →
``partial_images`` × ``.partial_image`` (``partial_image_index`` 0.., each the final
image pixelated, coarsest first) → ``.completed``, between the item's
``output_item.added`` (``status: in_progress``, ``result: null``) and ``.done``.

**Scripted reply kind** ``image``: ``image: "a red fox"`` or ``image: {prompt, revised_prompt,
id, edit (true/false; default: edit when there is an image), size, output_format,
background, count (1-4), text (an assistant message after the images), status
(completed / failed)}``. A scripted image needs the ``image_generation`` tool in the
request (400 otherwise, as a real model could not call it).

Pillow is needed (``pip install 'flowrun[media]'``); without it image requests get a
400 saying so.
"""
from __future__ import annotations

import base64
import hashlib
import io
import re
import textwrap
import threading
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from ..media import INSTALL_HINT, b64decode, MediaError
from .errors import APIError
from .events import ADDED_FORMS, ITEM_EVENTS
from .inputs_report import image_bytes
from .model import DEFAULT_RULES, Turn, message_item, new_id, register_kind

DEFAULT_SIZE = (1024, 1024)
_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")
_PARTIALS: dict[str, list[str]] = {}  # item id -> partial images (base64), for the SSE events
_lock = threading.Lock()


def _require_pillow() -> None:
    try:
        from PIL import Image, ImageDraw, ImageFont  # noqa: F401
    except ImportError:
        raise APIError(400, "The flowrun emulator needs Pillow to generate images: "
                       f"{INSTALL_HINT}.", param="tools") from None


# ---------------------------------------------------------------- drawing


def _colours(prompt: str) -> tuple[tuple[int, int, int], tuple[int, int, int], int]:
    h = hashlib.sha256(prompt.encode("utf-8")).digest()
    return (h[0], h[1], h[2]), (h[4], h[5], h[6]), h[3] % 3


def prompt_colour(prompt: str) -> tuple[int, int, int]:
    """The background colour of a generated image (and the band colour of an edit)."""
    return _colours(prompt)[0]


def _ink(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = rgb
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _write(draw: Any, box: tuple[int, int, int, int], text: str, fill: Any) -> None:
    x0, y0, x1, y1 = box
    size = max(12, (y1 - y0) // 5)
    font = _font(size)
    per_line = max(8, int((x1 - x0) / (size * 0.47)))
    lines = textwrap.wrap(text, per_line)[: max(1, (y1 - y0) // (size + 4))]
    y = y0
    for line in lines:
        draw.text((x0, y), line, fill=fill, font=font)
        y += size + 4


def generate(prompt: str, size: tuple[int, int], background: str = "opaque") -> Any:
    """A new image for ``prompt`` (a PIL image, RGBA)."""
    from PIL import Image, ImageDraw

    w, h = size
    bg, fg, shape = _colours(prompt)
    alpha = 0 if background == "transparent" else 255
    img = Image.new("RGBA", size, (*bg, alpha))
    draw = ImageDraw.Draw(img)
    cx, cy, r = w // 2, h // 2 + h // 12, min(w, h) // 4
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == 0:
        draw.ellipse(box, fill=(*fg, 255))
    elif shape == 1:
        draw.rectangle(box, fill=(*fg, 255))
    else:
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=(*fg, 255))
    margin = max(8, w // 40)
    _write(draw, (margin, margin, w - margin, h // 5), prompt, (*_ink(bg), 255))
    return img


def edit(base: bytes, prompt: str, size: tuple[int, int] | None) -> Any:
    """``base`` with the new prompt in a band across its bottom sixth (a PIL image, RGBA)."""
    from PIL import Image, ImageDraw

    try:
        with Image.open(io.BytesIO(base)) as opened:
            img = opened.convert("RGBA")
    except Exception as exc:
        raise APIError(400, f"The input image cannot be decoded: {exc}", param="input") from None
    if size is not None and img.size != size:
        img = img.resize(size)
    w, h = img.size
    band = _colours(prompt)[0]
    draw = ImageDraw.Draw(img)
    top = h - max(16, h // 6)
    draw.rectangle((0, top, w, h), fill=(*band, 255))
    margin = max(4, w // 40)
    _write(draw, (margin, top + 4, w - margin, h), prompt, (*_ink(band), 255))
    return img


def encode(img: Any, fmt: str, compression: int | None = None) -> bytes:
    out = io.BytesIO()
    if fmt == "jpeg":
        img.convert("RGB").save(out, "JPEG", quality=compression if compression is not None else 90)
    elif fmt == "webp":
        img.save(out, "WEBP", quality=compression if compression is not None else 90)
    else:
        img.save(out, "PNG")
    return out.getvalue()


def partials(img: Any, count: int, fmt: str, compression: int | None) -> list[bytes]:
    """``count`` previews of ``img``: pixelated, coarsest first."""
    from PIL import Image

    w, h = img.size
    out = []
    for n in range(count):
        factor = 2 ** (count - n + 2)
        small = img.resize((max(1, w // factor), max(1, h // factor)), Image.NEAREST)
        out.append(encode(small.resize((w, h), Image.NEAREST), fmt, compression))
    return out


# ---------------------------------------------------------------- the tool


def image_tool(request: dict[str, Any]) -> dict[str, Any] | None:
    return next((t for t in request.get("tools") or []
                 if isinstance(t, dict) and t.get("type") == "image_generation"), None)


def _size(value: Any, where: str) -> tuple[int, int] | None:
    if value in (None, "auto"):
        return None
    m = _SIZE.match(str(value))
    if not m or not all(16 <= int(v) <= 4096 for v in m.groups()):
        raise APIError(400, f"Invalid value for '{where}': {value!r}; expected WIDTHxHEIGHT (16-4096) or auto.",
                       param=where, code="invalid_value")
    return int(m.group(1)), int(m.group(2))


def user_prompt(turn: Turn) -> str:
    """The text parts of the last user message (its images are not part of the prompt)."""
    users = turn.user_messages
    content = users[-1].get("content") if users else ""
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content or []
                    if isinstance(p, dict) and p.get("type") == "input_text").strip()


def latest_image(turn: Turn) -> bytes | None:
    """The most recent image in the conversation (input image or generated image)."""
    for item in reversed(turn.conversation):
        kind = item.get("type", "message")
        if kind == "image_generation_call" and isinstance(item.get("result"), str):
            try:
                return b64decode(item["result"])
            except MediaError:
                continue
        if kind == "message" and isinstance(item.get("content"), list):
            for part in reversed(item["content"]):
                if isinstance(part, dict) and part.get("type") == "input_image":
                    data = image_bytes(turn.emulator, part)
                    if data is not None:
                        return data
    return None


class ImageSpec(BaseModel):
    """The scripted ``image`` reply (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")
    prompt: str | None = None
    revised_prompt: str | None = None
    id: str | None = None
    edit: bool | None = None
    size: str | None = None
    output_format: Literal["png", "jpeg", "webp"] | None = None
    background: Literal["transparent", "opaque", "auto"] | None = None
    count: int = Field(1, ge=1, le=4)
    text: str | None = None
    status: Literal["completed", "failed"] = "completed"


def make_images(turn: Turn, tool: dict[str, Any], spec: ImageSpec) -> list[dict[str, Any]]:
    """The ``image_generation_call`` items for ``spec`` under the request's ``tool``."""
    _require_pillow()
    prompt = spec.prompt if spec.prompt is not None else user_prompt(turn)
    fmt = spec.output_format or tool.get("output_format") or "png"
    background = spec.background or tool.get("background") or "auto"
    if background == "transparent" and fmt == "jpeg":
        raise APIError(400, "A transparent background needs output_format png or webp.",
                       param="tools", code="invalid_value")
    size = _size(spec.size or tool.get("size"), "size")
    compression = tool.get("output_compression")
    base = latest_image(turn) if spec.edit is not False else None
    if spec.edit and base is None:
        raise APIError(400, "Scripted image edit, but the conversation holds no image to edit.")
    quality = tool.get("quality") or "auto"
    streaming = bool(turn.request.get("stream"))
    wanted_partials = int(tool.get("partial_images") or 0) if streaming else 0
    items = []
    for n in range(spec.count):
        item_id = spec.id if spec.id and n == 0 else (f"{spec.id}_{n + 1}" if spec.id else new_id("ig"))
        item = {"id": item_id, "type": "image_generation_call", "status": spec.status, "result": None,
                "action": "edit" if base is not None else "generate",
                "output_format": fmt, "quality": "medium" if quality == "auto" else quality,
                "revised_prompt": spec.revised_prompt if spec.revised_prompt is not None else prompt}
        if spec.status == "completed":
            text = prompt if n == 0 else f"{prompt} ({n + 1})"
            img = edit(base, text, size) if base is not None else generate(text, size or DEFAULT_SIZE, background)
            item["result"] = base64.b64encode(encode(img, fmt, compression)).decode("ascii")
            item["size"] = f"{img.size[0]}x{img.size[1]}"
            item["background"] = "transparent" if fmt != "jpeg" and img.getextrema()[3][0] < 255 else "opaque"
            if wanted_partials:
                with _lock:
                    _PARTIALS[item_id] = [base64.b64encode(p).decode("ascii")
                                          for p in partials(img, wanted_partials, fmt, compression)]
        else:
            item["background"] = "transparent" if background == "transparent" else "opaque"
        items.append(item)
    return items


def _default_rule(turn: Turn) -> list[dict[str, Any]] | None:
    tool = image_tool(turn.request)
    choice = turn.request.get("tool_choice")
    if tool is None or choice == "none":
        return None
    if isinstance(choice, dict) and choice.get("type") != "image_generation":
        return None
    if turn.trailing_tool_outputs or turn.text_format.get("type") == "json_schema":
        return None
    items = make_images(turn, tool, ImageSpec())
    verb = "edited" if items[0]["action"] == "edit" else "generated"
    return [*items, message_item(f"[emulator] {verb} image: {user_prompt(turn)}")]


def _scripted(value: Union[str, ImageSpec], turn: Turn) -> list[dict[str, Any]]:
    spec = ImageSpec(prompt=value) if isinstance(value, str) else value
    tool = image_tool(turn.request)
    if tool is None:
        raise APIError(400, "The script answers with an image, but the request has no image_generation tool.",
                       param="tools")
    items = make_images(turn, tool, spec)
    return [*items, message_item(spec.text)] if spec.text else items


# ---------------------------------------------------------------- streaming


def _events(item: dict[str, Any], index: int) -> list[dict[str, Any]]:
    base = {"item_id": item["id"], "output_index": index}
    events: list[dict[str, Any]] = [{"type": "response.image_generation_call.in_progress", **base}]
    if item.get("status") != "completed":
        return events
    events.append({"type": "response.image_generation_call.generating", **base})
    with _lock:
        previews = _PARTIALS.pop(item["id"], [])
    for n, b64 in enumerate(previews):
        events.append({"type": "response.image_generation_call.partial_image", **base,
                       "partial_image_index": n, "partial_image_b64": b64,
                       **{k: item[k] for k in ("size", "quality", "background", "output_format") if k in item}})
    events.append({"type": "response.image_generation_call.completed", **base})
    return events


def _added(item: dict[str, Any]) -> dict[str, Any]:
    return {"id": item["id"], "type": "image_generation_call", "status": "in_progress", "result": None}


ITEM_EVENTS["image_generation_call"] = _events
ADDED_FORMS["image_generation_call"] = _added
DEFAULT_RULES.append(_default_rule)
register_kind("image", _scripted, Union[str, ImageSpec])
