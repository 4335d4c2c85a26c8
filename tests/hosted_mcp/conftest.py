"""Fixtures: one real MCP server on loopback for the session, and this area's own session
emulator on the emulator's default settings (``background_delay_ms`` 50), as these tests
have always run (``emu`` itself comes from tests/conftest.py)."""

from __future__ import annotations

import pytest
from flowkit import emulator_fixture
from hosted_mcp_kit import TOKEN  # type: ignore[import-not-found]
from mcp_docs_fixture import DocsServer  # type: ignore[import-not-found]

emulator_server = emulator_fixture()


@pytest.fixture(scope="session")
def _docs_server():
    server = DocsServer(TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def docs(_docs_server):
    _docs_server.clear()
    return _docs_server


@pytest.fixture
def token_env(monkeypatch):
    monkeypatch.setenv("DOCS_TOKEN", TOKEN)
    return TOKEN
