"""What the step-cache tests share: which steps a run asked the emulator for, rows of
the run store and of the cache database, and a real PDF to upload."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def step_key(body: dict[str, Any]) -> str:
    """The step key (``ID`` or ``ID.N``) a request body was sent for."""
    meta = body.get("metadata") or {}
    item = meta.get("flowrun_item")
    return meta.get("flowrun_step", "") + (f".{item}" if item is not None else "")


def posted(emu: Any) -> list[str]:
    """The step keys of every ``POST /responses`` the emulator received, sorted."""
    return sorted(step_key(b) for b in emu.bodies())


def rows(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows of a query on an SQLite file (a fresh read-only connection)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, args).fetchall()]
    finally:
        conn.close()


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
