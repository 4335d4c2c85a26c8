"""Fixtures: one real MCP server and one emulator on loopback for the session."""

from __future__ import annotations

import pytest

from flowrun.emulator import EmulatorServer
from hosted_mcp_kit import TOKEN, Emu  # type: ignore[import-not-found]
from mcp_docs_fixture import DocsServer  # type: ignore[import-not-found]


@pytest.fixture(scope="session")
def _docs_server():
    server = DocsServer(TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def docs(_docs_server):
    _docs_server.clear()
    return _docs_server


@pytest.fixture(scope="session")
def _emulator():
    with EmulatorServer() as server:
        yield server


@pytest.fixture
def emu(_emulator):
    handle = Emu(_emulator)
    handle.reset()
    yield handle
    handle.reset()


@pytest.fixture
def token_env(monkeypatch):
    monkeypatch.setenv("DOCS_TOKEN", TOKEN)
    return TOKEN
