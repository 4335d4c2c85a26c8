"""Provider resolution, and Azure-style endpoints (key and Entra ID) on the emulator."""

from __future__ import annotations

import pytest

from flowrun.client import ResponsesClient
from flowkit import run_flow

from flowrun.errors import UsageError
from flowrun.providers import IMAGE_DEPLOYMENT_HEADER, azure_v1_url, resolve_provider


def test_azure_endpoint_gets_the_v1_path():
    assert azure_v1_url("https://res.openai.azure.com") == "https://res.openai.azure.com/openai/v1/"
    assert azure_v1_url("https://res.openai.azure.com/openai/v1/") == "https://res.openai.azure.com/openai/v1/"


def test_resolution_order_and_kinds():
    env = {"AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com", "AZURE_OPENAI_API_KEY": "k1",
           "OPENAI_API_KEY": "k2", "AZURE_OPENAI_IMAGE_DEPLOYMENT": "gpt-image-1"}
    azure = resolve_provider(environ=env)
    assert (azure.kind, azure.auth, azure.api_key) == ("azure", "api_key", "k1")
    assert azure.base_url == "https://r.openai.azure.com/openai/v1/"
    assert azure.headers[IMAGE_DEPLOYMENT_HEADER] == "gpt-image-1"
    assert azure.file_purpose == "assistants"
    assert "k1" not in repr(azure) and "k1" not in str(azure.describe())
    openai_cfg = resolve_provider("openai", environ=env)
    assert (openai_cfg.kind, openai_cfg.api_key, openai_cfg.file_purpose) == ("openai", "k2", "user_data")
    entra = resolve_provider(environ={"AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com"})
    assert (entra.auth, entra.api_key) == ("entra_id", None)
    compat = resolve_provider(environ={"OPENAI_BASE_URL": "http://localhost:11434/v1"})
    assert (compat.kind, compat.base_url) == ("compatible", "http://localhost:11434/v1")


def test_missing_configuration_errors_are_specific():
    with pytest.raises(UsageError, match="no provider configured"):
        resolve_provider(environ={"XDG_CONFIG_HOME": "/nonexistent"})
    with pytest.raises(UsageError, match="OPENAI_API_KEY"):
        resolve_provider("openai", environ={})
    with pytest.raises(UsageError, match="Azure needs an endpoint"):
        resolve_provider("azure", environ={})


def test_user_config_file_provides_the_provider(tmp_path):
    cfg = tmp_path / "flowrun"
    cfg.mkdir()
    (cfg / "config.yaml").write_text("provider:\n  kind: compatible\n  base_url: http://h:1/v1\n")
    got = resolve_provider(environ={"XDG_CONFIG_HOME": str(tmp_path)})
    assert (got.kind, got.base_url) == ("compatible", "http://h:1/v1")


FLOW = """
    name: azure
    defaults: {model: my-deployment}
    steps:
      a: {input: "hello azure"}
"""


def _run(tmp_path, provider, credential=None):
    return run_flow(tmp_path, None, FLOW, provider=provider, credential=credential)


def test_azure_api_key_against_an_azure_style_base_url(tmp_path, emu):
    provider = resolve_provider(
        "azure", base_url=emu.server.url, environ={"AZURE_OPENAI_API_KEY": "azure-key-123"}
    )
    result = _run(tmp_path, provider)
    assert result.status == "succeeded", result.error
    (post,) = emu.posts("a")
    assert post["path"] == "/openai/v1/responses"
    assert post["body"]["model"] == "my-deployment"
    assert "azure-key-123" not in str(emu.journal())


class _Credential:
    """An async azure-identity style credential (what DefaultAzureCredential provides)."""

    def __init__(self):
        self.scopes = []

    async def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        self.scopes.extend(scopes)
        return AccessToken("entra-token-xyz", 4102444800)

    async def close(self):
        pass


def test_azure_entra_id_uses_the_cognitive_services_scope(tmp_path, emu):
    provider = resolve_provider("azure", base_url=emu.server.url, environ={})
    assert provider.auth == "entra_id"
    cred = _Credential()
    result = _run(tmp_path, provider, credential=cred)
    assert result.status == "succeeded", result.error
    assert cred.scopes and set(cred.scopes) == {"https://cognitiveservices.azure.com/.default"}
    assert emu.posts("a")[0]["path"] == "/openai/v1/responses"


class _FailingCredential(_Credential):
    async def get_token(self, *scopes, **kwargs):
        from azure.core.exceptions import ClientAuthenticationError

        raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")


def test_entra_sign_in_failure_is_a_clear_step_error(tmp_path, emu):
    provider = resolve_provider("azure", base_url=emu.server.url, environ={})
    result = _run(tmp_path, provider, credential=_FailingCredential())
    assert result.status == "failed"
    assert "Entra ID sign-in failed" in result.steps["a"].error
    assert emu.posts() == []


def test_entra_id_default_credential_needs_no_extra_packages():
    """The real DefaultAzureCredential is built without aiohttp (the async twin needs it);
    no token is requested here, so nothing leaves the machine."""
    import asyncio

    from flowrun.providers import ProviderConfig

    client = ResponsesClient(ProviderConfig("azure", "https://r.openai.azure.com/openai/v1/",
                                            auth="entra_id"))
    try:
        assert type(client._sync_credential).__name__ == "DefaultAzureCredential"
    finally:
        asyncio.run(client.close())


def test_base_url_alone_means_a_compatible_endpoint():
    got = resolve_provider(base_url="http://127.0.0.1:8000/v1", environ={})
    assert (got.kind, got.base_url) == ("compatible", "http://127.0.0.1:8000/v1")


# --------------------------------------------------------------------------- the command line
# Real `flowrun run` subprocesses: the endpoint is the emulator (a real local server) or a
# closed port on loopback; the config file lives in a temporary HOME / XDG_CONFIG_HOME.

CLI_FLOW = """
    name: where
    defaults: {model: gpt-4.1-mini, retries: 0}
    steps:
      a: {input: "which endpoint?"}
"""


@pytest.fixture
def closed_port():
    """A loopback port that refuses connections (bound, never listening)."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def _cli(tmp_path, *args, **env):
    import json

    from flowkit import flowrun_cli, write_flow

    flow = write_flow(tmp_path, CLI_FLOW)
    proc = flowrun_cli("run", str(flow), "--json", *args, cwd=tmp_path, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc, json.loads(proc.stdout or "{}")


def _config(root, text):
    path = root / "flowrun" / "config.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text)


def test_provider_openai_goes_where_openai_base_url_points(tmp_path, emu):
    home = tmp_path / "home"
    home.mkdir()
    proc, out = _cli(tmp_path, "--provider", "openai", HOME=str(home),
                     OPENAI_BASE_URL=emu.base_url, OPENAI_API_KEY="sk-gateway-123")
    assert proc.returncode == 0, proc.stderr
    assert out["status"] == "succeeded"
    (post,) = emu.posts("a")
    assert post["path"] == "/v1/responses"


def test_connection_error_names_the_endpoint_it_tried(tmp_path, closed_port):
    url = f"http://127.0.0.1:{closed_port}/v1"
    proc, out = _cli(tmp_path, "--provider", "openai", HOME=str(tmp_path),
                     OPENAI_BASE_URL=url, OPENAI_API_KEY="sk-closed-456")
    assert proc.returncode == 1
    error = out["steps"]["a"]["error"]
    assert f"POST {url}/responses" in error, error
    assert "sk-closed-456" not in proc.stdout + proc.stderr


def test_environment_wins_over_the_config_file(tmp_path, emu, closed_port):
    cfg = tmp_path / "xdg"
    _config(cfg, f"provider:\n  kind: compatible\n  base_url: http://127.0.0.1:{closed_port}/v1\n")
    proc, out = _cli(tmp_path, XDG_CONFIG_HOME=str(cfg), OPENAI_BASE_URL=emu.base_url)
    assert proc.returncode == 0, out
    assert len(emu.posts("a")) == 1


def test_config_file_under_home_fills_in_when_the_environment_is_silent(tmp_path, emu):
    home = tmp_path / "home"
    _config(home / ".config", f"provider:\n  kind: compatible\n  base_url: {emu.base_url}\n")
    proc, out = _cli(tmp_path, HOME=str(home))
    assert proc.returncode == 0, out
    assert len(emu.posts("a")) == 1


def test_resolution_layers_settings_by_source():
    from flowrun.spec import Provider

    env = {"OPENAI_BASE_URL": "http://gateway:4000/v1", "OPENAI_API_KEY": "k"}
    assert resolve_provider("openai", environ=env).base_url == "http://gateway:4000/v1"
    assert resolve_provider("openai", environ={"OPENAI_API_KEY": "k"}).base_url == \
        "https://api.openai.com/v1"
    # flag > flow > environment
    flow = Provider(kind="openai", base_url="http://flow:1/v1")
    assert resolve_provider(None, flow, environ=env).base_url == "http://flow:1/v1"
    assert resolve_provider(None, flow, "http://flag:2/v1", environ=env).base_url == "http://flag:2/v1"
    # a flow block for another kind does not leak into --provider emulator
    azure = Provider(kind="azure", base_url="https://res.openai.azure.com")
    emulator = resolve_provider("emulator", azure, environ=env)
    assert (emulator.kind, emulator.base_url) == ("emulator", None)
    # a flow block without auth lets Azure fall back to Entra ID when no key is set
    got = resolve_provider(None, Provider.model_validate({"kind": "azure", "base_url": "https://r.openai.azure.com"}),
                           environ={})
    assert got.auth == "entra_id"
