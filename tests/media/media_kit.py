"""Helpers for the media tests: the emulator handle, running flow text through flowrun's
real client (the openai SDK over HTTP) against the emulator, and small media makers."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import openai

from flowrun.client import ResponsesClient
from flowrun.emulator import EmulatorServer
from flowrun.emulator.inputs_report import inputs_report
from flowrun.plan import load_plan
from flowrun.providers import ProviderConfig, resolve_provider
from flowrun.run_inputs import resolve_inputs
from flowrun.runner import RunResult, run_plan


class Emu:
    """The test's handle on the emulator: script, journal, inputs report, SDK client."""

    def __init__(self, server: EmulatorServer):
        self.server = server
        self.base_url = server.base_url

    def reset(self) -> None:
        self.server.emulator.reset()
        self.server.emulator.load_script(None)

    def script(self, script: dict[str, Any]) -> None:
        self.server.emulator.load_script(script)

    def journal(self) -> list[dict[str, Any]]:
        """``GET /_emulator/requests``."""
        with urllib.request.urlopen(self.server.url + "/_emulator/requests") as resp:
            return json.loads(resp.read())

    def posts(self, step: str | None = None) -> list[dict[str, Any]]:
        out = []
        for e in self.journal():
            if e["method"] == "POST" and e["path"].endswith("/responses"):
                meta = (e["body"] or {}).get("metadata") or {}
                if step is None or meta.get("flowrun_step") == step:
                    out.append(e)
        return out

    def inputs(self, step: str | None = None) -> list[dict[str, Any]]:
        """What the emulator's model received (images and files), oldest first."""
        return [e for e in inputs_report(self.server.emulator) if step is None or e["step"] == step]

    def sdk(self, azure: bool = False) -> openai.OpenAI:
        url = self.server.azure_base_url if azure else self.base_url
        return openai.OpenAI(base_url=url, api_key="test", max_retries=0)

    def azure_provider(self, deployment: str | None = "gpt-image-1") -> ProviderConfig:
        """An azure-kind provider pointed at the emulator's /openai/v1, as the CLI would
        resolve it from the environment."""
        env = {"AZURE_OPENAI_API_KEY": "test-key"}
        if deployment:
            env["AZURE_OPENAI_IMAGE_DEPLOYMENT"] = deployment
        return resolve_provider("azure", None, self.server.azure_base_url, environ=env)


def run_flow(
    tmp_path: Path,
    emu: Emu,
    text: str,
    inputs: dict[str, Any] | None = None,
    provider: ProviderConfig | None = None,
    name: str = "flow.yaml",
    **kw: Any,
) -> RunResult:
    """Write ``text`` as a flow file in ``tmp_path``, run it on the emulator."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    plan = load_plan(path)
    values = resolve_inputs(plan.flow, {}, inputs or {}, cwd=tmp_path)

    async def main() -> RunResult:
        client = ResponsesClient(provider or ProviderConfig("emulator", emu.base_url, "test-key"))
        try:
            return await run_plan(plan, client, values, run_root=tmp_path / "runs", **kw)
        finally:
            await client.close()

    return asyncio.run(main())


def step_error(result: RunResult, step: str) -> str:
    outcome = result.steps[step]
    return outcome.error or (outcome.result.error if outcome.result else "") or ""


def record(result: RunResult) -> dict[str, Any]:
    return json.loads((result.run_dir / "record.json").read_text())


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
