"""Files of a run made fit for one self-contained page: images as ``data:`` URIs (up to a
size cap each, else a note saying what was left out), text files as masked previews, and
only files inside the run directory (a record naming ``/etc/passwd`` shows a note, never
the file)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import media
from ..secrets import Redactor

MAX_IMAGE_BYTES = 2 * 1024 * 1024
"""Default cap on one inlined image (``--max-image-bytes``)."""
MAX_TEXT_PREVIEW = 20_000
"""Characters of a text file shown inline."""
TEXT_SUFFIXES = (".txt", ".csv", ".tsv", ".json", ".jsonl", ".md", ".log", ".py", ".yaml",
                 ".yml", ".html", ".xml", ".diff", ".patch", ".sql", ".js", ".ts", ".sh")


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


def png_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's header (no decoding)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None


@dataclass
class Embedder:
    """Reads a run's files for the page; counts what it left out."""

    run_dir: Path
    redactor: Redactor
    max_image_bytes: int = MAX_IMAGE_BYTES
    notes: list[str] = field(default_factory=list)
    images: int = 0
    bytes_inlined: int = 0

    def locate(self, path: str | None) -> Path | None:
        """The file ``path`` names inside the run directory (absolute paths from where
        the run was, or relative to it; a moved run directory still works), else None."""
        if not path:
            return None
        root = self.run_dir.resolve()
        p = Path(path)
        candidates = [p] if p.is_absolute() else [root / p]
        parts = p.parts
        for marker in ("artifacts", "rows"):
            if marker in parts:
                candidates.append(root.joinpath(*parts[parts.index(marker):]))
        for cand in candidates:
            try:
                resolved = cand.resolve()
            except OSError:
                continue
            if (resolved == root or root in resolved.parents) and resolved.is_file():
                return resolved
        return None

    def image(self, path: str | None, caption: str | None = None) -> dict[str, Any]:
        """``{name, src, width, height, caption}`` or ``{name, note}`` when left out."""
        name = Path(path or "image").name
        found = self.locate(path)
        if found is None:
            return {"name": name, "caption": caption, "note": "not in the run directory"}
        size = found.stat().st_size
        if size > self.max_image_bytes:
            note = f"{name} left out: {_mb(size)}, over the cap of {_mb(self.max_image_bytes)} per image"
            self.notes.append(note)
            return {"name": name, "caption": caption, "note": note, "path": str(found)}
        data = found.read_bytes()
        mime = media.sniff(data)
        if mime not in media.IMAGE_MIMES:
            return {"name": name, "caption": caption, "note": f"not an image ({mime or 'unknown type'})"}
        return self._inline(name, mime, data, caption)

    def data_url(self, url: str, caption: str | None = None) -> dict[str, Any]:
        """An image sent as a data URL (an input image)."""
        try:
            mime, data = media.parse_data_url(url)
        except media.MediaError as exc:
            return {"name": "input image", "caption": caption, "note": str(exc)}
        mime = media.sniff(data) or mime
        if mime not in media.IMAGE_MIMES:
            return {"name": "input image", "caption": caption, "note": f"not an image ({mime})"}
        if len(data) > self.max_image_bytes:
            note = f"an input image left out: {_mb(len(data))}, over the cap of {_mb(self.max_image_bytes)}"
            self.notes.append(note)
            return {"name": "input image", "caption": caption, "note": note}
        return self._inline("input image", mime, data, caption)

    def _inline(self, name: str, mime: str, data: bytes, caption: str | None) -> dict[str, Any]:
        self.images += 1
        self.bytes_inlined += len(data)
        out: dict[str, Any] = {"name": name, "caption": caption,
                               "src": f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"}
        size = png_size(data)
        if size:
            out["width"], out["height"] = size
        return out

    def file(self, path: str | None) -> dict[str, Any]:
        """``{name, size, preview?, src?, note?}``: text shown (masked), small files also
        as a download link."""
        name = Path(path or "file").name
        found = self.locate(path)
        if found is None:
            return {"name": name, "note": "not in the run directory"}
        size = found.stat().st_size
        out: dict[str, Any] = {"name": name, "size": _mb(size) if size >= 1024 else f"{size} B"}
        if found.suffix.lower() in TEXT_SUFFIXES:
            with open(found, "rb") as fh:
                head = fh.read(MAX_TEXT_PREVIEW * 4)
            text = self.redactor.truncate(head.decode("utf-8", "replace"), MAX_TEXT_PREVIEW,
                                          marker="\n... [cut]")
            out["preview"] = text
            if size <= self.max_image_bytes:
                masked = self.redactor.text(found.read_text(encoding="utf-8", errors="replace"))
                out["src"] = "data:text/plain;charset=utf-8;base64," + \
                    base64.b64encode(masked.encode("utf-8")).decode("ascii")
        elif media.sniff_path(found) in media.IMAGE_MIMES:
            out["image"] = self.image(str(found))
        else:
            out["note"] = "binary file, not inlined"
        return out
