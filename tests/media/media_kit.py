"""Helpers for the media tests (the emulator handle and running flows are in flowkit):
small media makers, raw POSTs, and the check that a run failed before sending anything."""

from __future__ import annotations

import hashlib
import io
import json
import os
import urllib.request
from pathlib import Path
from typing import Any

from flowkit import Emu, step_error

from flowrun.runner import RunResult


def assert_rejected_before_any_request(result: RunResult, emu: Emu, step: str, *needles: str) -> None:
    """The run failed, ``step``'s error names every needle, and nothing was sent (no
    upload, no model request)."""
    assert result.status == "failed"
    error = step_error(result, step)
    for needle in needles:
        assert needle in error, error
    assert emu.journal() == []


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- makers


def make_pdf(path: Path, pages: list[str]) -> Path:
    """A real PDF (fpdf2), one page per text."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=14)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 10, text)
    path.write_bytes(bytes(pdf.output()))
    return path


def make_big_pdf(path: Path, megabytes: float) -> Path:
    """A valid one-page PDF made large by an incompressible embedded file."""
    import pypdf

    writer = pypdf.PdfWriter()
    writer.add_blank_page(200, 200)
    writer.add_attachment("blob.bin", os.urandom(int(megabytes * 1024 * 1024)))
    with open(path, "wb") as fh:
        writer.write(fh)
    return path


def make_image(path: Path | None, fmt: str = "PNG", size: tuple[int, int] = (64, 48),
               colour: tuple[int, int, int] = (200, 30, 60)) -> bytes:
    """A small real image in ``fmt``; written to ``path`` when given."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, fmt)
    data = out.getvalue()
    if path is not None:
        path.write_bytes(data)
    return data


def post_raw(emu: Emu, body: dict[str, Any]) -> Any:
    """POST /v1/responses with plain urllib: the JSON answer, or the list of SSE events
    when ``stream`` is set - exactly as the emulator sent them."""
    req = urllib.request.Request(emu.base_url + "/responses", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(req) as resp:
        text = resp.read().decode()
    if not body.get("stream"):
        return json.loads(text)
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
