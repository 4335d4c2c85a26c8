"""The emulator checks credentials when told to: 401 without the key; ``api-key`` header on
``/openai/v1`` paths, ``Authorization: Bearer`` on both."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import openai
import pytest
from flowkit import REPO, cli_env, run_flow

from flowrun.emulator import EmulatorServer
from flowrun.providers import ProviderConfig

KEY = "sk-emulator-test-0123456789"


@pytest.fixture(scope="module")
def locked():
    with EmulatorServer(api_key=KEY) as server:
        yield server


def _post(url: str, headers: dict[str, str]) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps({"model": "gpt-4.1", "input": "hi"}).encode(),
                                 headers={"content-type": "application/json", **headers}, method="POST")
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_keys_as_the_services_take_them(locked):
    openai_url, azure_url = locked.base_url + "/responses", locked.azure_base_url + "/responses"
    assert _post(openai_url, {"authorization": f"Bearer {KEY}"})[0] == 200
    assert _post(azure_url, {"api-key": KEY})[0] == 200
    assert _post(azure_url, {"authorization": f"Bearer {KEY}"})[0] == 200
    status, body = _post(openai_url, {"api-key": KEY})  # not an OpenAI header
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    status, body = _post(openai_url, {})
    assert status == 401 and "didn't provide an API key" in body["error"]["message"]
    status, body = _post(azure_url, {"api-key": KEY + "x"})
    assert status == 401 and KEY not in json.dumps(body)


def test_sdk_and_flowrun_through_a_locked_emulator(locked, tmp_path):
    with openai.OpenAI(base_url=locked.base_url, api_key="wrong", max_retries=0) as sdk:
        with pytest.raises(openai.AuthenticationError):
            sdk.responses.create(model="gpt-4.1", input="hi")
    good = ProviderConfig("emulator", locked.base_url, KEY)
    result = run_flow(tmp_path, None, "name: f\nsteps:\n  a: {input: hi}\n", provider=good)
    assert result.status == "succeeded"
    bad = ProviderConfig("emulator", locked.base_url, "nope")
    result = run_flow(tmp_path, None, "name: f\nsteps:\n  a: {input: hi}\n", provider=bad, name="g.yaml")
    assert result.status == "failed"
    assert "not authorized (401)" in result.steps["a"].error


def test_cli_emulator_api_key_option(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "flowrun.cli", "emulator", "--port", "0", "--api-key", KEY],
                            cwd=REPO, env=cli_env(), stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        url = line.split("listening on ")[1].split(" ")[0]
        deadline = time.monotonic() + 20
        while True:
            try:
                assert _post(url + "/responses", {})[0] == 401
                break
            except urllib.error.URLError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert _post(url + "/responses", {"authorization": f"Bearer {KEY}"})[0] == 200
    finally:
        proc.terminate()
        proc.wait(10)
