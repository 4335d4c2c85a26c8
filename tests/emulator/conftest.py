"""Fixtures: one emulator server for the session, reset before each test over HTTP."""
from __future__ import annotations

import sys
from pathlib import Path

import httpx2
import openai
import pytest
import pytest_asyncio

REPO = Path(__file__).resolve().parents[2]
for _path in (REPO, Path(__file__).resolve().parent):  # flowrun, and emulator_helpers for any import mode
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from flowrun.emulator import EmulatorServer  # noqa: E402


@pytest.fixture(scope="session")
def emulator_server():
    with EmulatorServer(background_delay_ms=30) as server:
        yield server


@pytest.fixture
def server(emulator_server):
    httpx2.post(emulator_server.url + "/_emulator/reset").raise_for_status()
    return emulator_server


@pytest.fixture
def http(server):
    with httpx2.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture
def client(server):
    with openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0) as c:
        yield c


@pytest_asyncio.fixture
async def aclient(server):
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0) as c:
        yield c


@pytest.fixture
def load_script(http):
    def load(script: dict) -> None:
        http.post("/_emulator/script", json=script).raise_for_status()
    return load
