"""Media helpers shared by input parts, the image tool and the emulator: MIME sniffing
from content (magic bytes, then Pillow when installed), data URLs, PDF page counting and
the request limits from the Azure guide.

Nothing here imports Pillow or pypdf at module level: both come with the ``media`` extra
(``pip install 'flowrun[media]'``). Without Pillow, images are recognised by their magic
bytes only; without pypdf, PDF pages are counted with a byte-pattern heuristic
(:func:`pdf_page_count` says which one it used).
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass
from pathlib import Path

# --------------------------------------------------------------------------- limits

MAX_PDF_PAGES = 100
"""Pages across all file inputs of one request (Azure guide: "up to 100 pages")."""
MAX_FILE_BYTES = 32 * 1024 * 1024
"""Bytes across all file inputs of one request (Azure guide: "32 MB of total content")."""

PDF_MIME = "application/pdf"
IMAGE_MIMES = ("image/png", "image/jpeg", "image/webp", "image/gif")
"""Image types the Responses API accepts as ``input_image``."""
EXTENSIONS = {
    "image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp", "image/gif": "gif",
    "application/pdf": "pdf", "image/bmp": "bmp", "image/tiff": "tiff",
}
FORMAT_MIMES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg",
                "webp": "image/webp", "gif": "image/gif"}

INSTALL_HINT = "pip install 'flowrun[media]'"


class MediaError(ValueError):
    """A file or data URL that cannot be sent: wrong type, unreadable, over a limit."""


# --------------------------------------------------------------------------- sniffing

_HEAD = 2048


def sniff(data: bytes) -> str | None:
    """The MIME type of ``data`` from its first bytes, or None when unknown.

    Knows the types flowrun sends (png, jpeg, gif, webp, pdf) plus a few it must be
    able to name when refusing them (bmp, tiff, zip, svg)."""
    head = data[:_HEAD]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    # a PDF header may follow some junk, within the first 1024 bytes
    at = head.find(b"%PDF-")
    if 0 <= at < 1024:
        return PDF_MIME
    if head.startswith(b"BM"):
        return "image/bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if head.startswith(b"PK\x03\x04"):
        return "application/zip"
    if b"<svg" in head[:512].lower():
        return "image/svg+xml"
    return None


def sniff_with_pillow(data: bytes) -> str | None:
    """The MIME type Pillow reads from ``data`` (None without Pillow or when it cannot)."""
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            return Image.MIME.get(img.format or "")
    except Exception:
        return None


def sniff_path(path: Path) -> str | None:
    """The MIME type of a file from its content (magic bytes, then Pillow)."""
    with open(path, "rb") as fh:
        head = fh.read(_HEAD)
    found = sniff(head)
    if found is None:
        found = sniff_with_pillow(path.read_bytes())
    return found


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` after Pillow fully decodes the image; None without Pillow.
    Raises :class:`MediaError` for an image Pillow cannot decode."""
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return img.size
    except Exception as exc:
        raise MediaError(f"not a readable image ({exc})") from None


def describe_mime(mime: str | None) -> str:
    return mime or "of an unknown type"


# --------------------------------------------------------------------------- data URLs

_DATA_URL = re.compile(r"^data:([^;,]*)((?:;[^;,]*)*),(.*)$", re.S)


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def parse_data_url(url: str) -> tuple[str, bytes]:
    """``(declared MIME type, decoded bytes)`` of a base64 data URL; :class:`MediaError`
    when it is not one or its base64 does not decode."""
    m = _DATA_URL.match(url)
    if not m:
        raise MediaError("not a data URL (expected data:MIME;base64,DATA)")
    mime, params, payload = m.group(1).strip().lower(), m.group(2), m.group(3)
    if ";base64" not in params.lower():
        raise MediaError("the data URL is not base64-encoded (expected ;base64,)")
    if not mime:
        raise MediaError("the data URL has no MIME type")
    return mime, b64decode(payload)


def b64decode(payload: str) -> bytes:
    """Strict base64 (whitespace allowed); :class:`MediaError` otherwise."""
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MediaError(f"the base64 data does not decode ({exc})") from None


# --------------------------------------------------------------------------- PDFs

_PAGE_OBJ = re.compile(rb"/Type\s*/Page(?![A-Za-z])")


def pdf_page_count(data: bytes) -> tuple[int, str]:
    """``(pages, method)``: with pypdf (``"pypdf"``) when installed, else by counting
    ``/Type /Page`` objects (``"pattern"``, approximate for PDFs with compressed object
    streams). :class:`MediaError` when pypdf cannot read the file."""
    try:
        import pypdf  # noqa: F401
    except ImportError:
        return len(_PAGE_OBJ.findall(data)), "pattern"
    return len(_reader(data).pages), "pypdf"


def _reader(data: bytes):  # -> pypdf.PdfReader
    import logging

    import pypdf

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            reader.decrypt("")
        len(reader.pages)  # parses the page tree now, inside this try
        return reader
    except Exception as exc:
        raise MediaError(f"not a readable PDF ({type(exc).__name__}: {exc})") from None


def pdf_text(data: bytes) -> list[str]:
    """The text of every page (pypdf required; :class:`ImportError` otherwise)."""
    import pypdf  # noqa: F401  (a clear ImportError when missing)

    reader = _reader(data)
    out = []
    for page in reader.pages:
        try:
            out.append(page.extract_text() or "")
        except Exception:
            out.append("")
    return out


# --------------------------------------------------------------------------- request limits


@dataclass
class FileLoad:
    """One file input of a request, as counted against the limits."""

    name: str
    size: int
    pages: int | None = None  # None: not counted yet (or not countable: a file id)


def check_total_bytes(files: list[FileLoad], limit: int = MAX_FILE_BYTES) -> None:
    total = sum(f.size for f in files)
    if total > limit:
        detail = ", ".join(f"{f.name} ({_mb(f.size)})" for f in files)
        raise MediaError(
            f"the files of this request total {_mb(total)}, over the limit of {_mb(limit)} "
            f"per request: {detail}"
        )


def check_total_pages(files: list[FileLoad], limit: int = MAX_PDF_PAGES) -> None:
    total = sum(f.pages or 0 for f in files)
    if total > limit:
        detail = ", ".join(f"{f.name} ({f.pages} pages)" for f in files if f.pages is not None)
        raise MediaError(
            f"the PDFs of this request have {total} pages, over the limit of {limit} pages "
            f"per request: {detail}"
        )


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"
