"""Fixtures: the session emulator (``emulator_server``, from tests/conftest.py), reset
before each test over HTTP, and clients on it."""
from __future__ import annotations

import httpx2
import openai
import pytest
import pytest_asyncio


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
