"""The example flows for files and images, run as users run them: `flowrun run ...
--provider emulator --json` in a subprocess, from the repository root."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from flowkit import EXAMPLES, flowrun_cli
from PIL import Image


def _run(flow: str, run_dir: Path) -> dict:
    proc = flowrun_cli("run", str(EXAMPLES / flow), "--provider", "emulator", "--json", "--run-dir", str(run_dir))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout)


def test_pdf_summary_example(tmp_path):
    out = _run("pdf-summary.yaml", tmp_path)
    assert out["status"] == "succeeded"
    pdf = (EXAMPLES / "data" / "annual-report.pdf").read_bytes()
    assert len(pdf) < 50_000
    digest = hashlib.sha256(pdf).hexdigest()[:12]
    assert f"[file annual-report.pdf: 2 pages, sha256 {digest}: Contoso Ltd - Annual Report" in out["outputs"]["summary"]
    assert out["outputs"]["figures"]["employees"] == 21400 and out["outputs"]["risk_count"] == 4


def test_image_edit_example(tmp_path):
    out = _run("image-edit.yaml", tmp_path)
    assert out["status"] == "succeeded"
    run_dir = Path(out["run_dir"]).resolve()
    for name in ("original", "edited", "variant"):
        path = Path(out["outputs"][name])
        assert run_dir in path.resolve().parents
        with Image.open(path) as img:
            assert img.format == "PNG" and img.size == (1024, 1024)
    record = json.loads((run_dir / "record.json").read_text())["steps"]
    assert len(record["generate"]["partial_images"]) == 2
    assert [s["image_generation"][0]["action"] for s in (record["generate"], record["edit"], record["variant"])] \
        == ["generate", "edit", "edit"]
    assert out["outputs"]["review"].endswith("[image]")
