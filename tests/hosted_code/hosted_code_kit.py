"""Helpers for the code interpreter tests: the emulator handle, running flow text through
flowrun's real client (the openai SDK over HTTP), PNG bytes without Pillow, and spec
validators (the Responses subset, plus the container schemas from the full spec)."""

from __future__ import annotations

import asyncio
import json
import struct
import textwrap
import urllib.request
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from flowrun.client import ResponsesClient
from flowrun.emulator import EmulatorServer
from flowrun.plan import load_plan
from flowrun.providers import ProviderConfig
from flowrun.run_inputs import resolve_inputs
from flowrun.runner import RunResult, run_plan

REPO = Path(__file__).resolve().parents[2]


class Emu:
    def __init__(self, server: EmulatorServer):
        self.server = server
        self.base_url = server.base_url

    def reset(self) -> None:
        self.server.emulator.reset()
        self.server.emulator.load_script(None)

    def script(self, script: dict[str, Any]) -> None:
        self.server.emulator.load_script(script)

    def journal(self) -> list[dict[str, Any]]:
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

    def paths(self, method: str) -> list[str]:
        return [e["path"] for e in self.journal() if e["method"] == method]


def run_flow(tmp_path: Path, emu: Emu, text: str, inputs: dict[str, Any] | None = None,
             provider: ProviderConfig | None = None) -> RunResult:
    path = tmp_path / "flow.yaml"
    path.write_text(textwrap.dedent(text))
    plan = load_plan(path)
    values = resolve_inputs(plan.flow, {}, inputs or {}, cwd=tmp_path)

    async def main() -> RunResult:
        client = ResponsesClient(provider or ProviderConfig("emulator", emu.base_url, "test-key"))
        try:
            return await run_plan(plan, client, values, run_root=tmp_path / "runs")
        finally:
            await client.close()

    return asyncio.run(main())


def record(result: RunResult) -> dict[str, Any]:
    return json.loads((result.run_dir / "record.json").read_text())


def png_bytes(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour RGB PNG, built with zlib and struct (same as the code under test)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


PNG_CODE = '''
import struct, zlib
def png(path, width, height, rgb):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    row = b"\\x00" + bytes(rgb) * width
    with open(path, "wb") as fh:
        fh.write(b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                 + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))
'''
"""Python source defining ``png(path, width, height, rgb)`` for code run in the sandbox."""


# --------------------------------------------------------------------------- spec checks


def _validator(doc: dict[str, Any], uri: str, name: str) -> Draft202012Validator:
    registry = Registry().with_resource(uri, Resource(contents=doc, specification=DRAFT202012))
    return Draft202012Validator({"$ref": f"{uri}#/components/schemas/{name}"}, registry=registry)


@lru_cache(maxsize=None)
def _subset_validator(name: str) -> Draft202012Validator:
    doc = json.loads((REPO / "flowrun" / "emulator" / "openapi_subset.json").read_text())
    return _validator(doc, "urn:test:hosted-code-subset", name)


def assert_conforms(name: str, instance: Any) -> None:
    val = _subset_validator(name)
    errors = [f"{list(e.absolute_path)}: {e.message[:300]}" for e in val.iter_errors(instance)]
    assert not errors, f"{name} does not conform:\n" + "\n".join(errors)
