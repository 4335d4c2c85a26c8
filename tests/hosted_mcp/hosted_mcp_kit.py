"""Helpers for the hosted-MCP tests (the emulator handle and running flows are in flowkit):
the docs server's token and one-step flows that use it as an MCP tool."""

from __future__ import annotations

import json
from typing import Any

TOKEN = "tok-mcp-7d1c9a2f5e"  # the docs server's bearer token; must never be written anywhere


def docs_flow(url: str, step: str = "", **tool: Any) -> str:
    """A one-step flow whose step uses the MCP tool ``docs`` with the given settings."""
    settings = {"mcp": url, "headers": {"Authorization": "Bearer {{ secrets.DOCS_TOKEN }}"}}
    settings.update(tool)
    settings = {k: v for k, v in settings.items() if v is not None}
    return (
        "name: mcp-test\n"
        "secrets: [DOCS_TOKEN]\n"
        f"tools:\n  docs: {json.dumps(settings)}\n"
        "steps:\n"
        "  ask:\n"
        "    input: How do I rotate an API key?\n"
        "    tools: [docs]\n"
        + step
    )
