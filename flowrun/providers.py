"""Which endpoint a run talks to, and with which credentials.

Order of precedence: ``--provider`` (and ``--base-url``), the flow's ``provider:`` block,
the SDKs' environment variables, then the user config file
(``$XDG_CONFIG_HOME/flowrun/config.yaml``, ``~/.config/flowrun/config.yaml``).

Environment variables: ``AZURE_OPENAI_ENDPOINT`` with ``AZURE_OPENAI_API_KEY`` (or Entra ID
when no key is set), ``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` (a compatible endpoint),
``AZURE_OPENAI_IMAGE_DEPLOYMENT`` (the image generation deployment header on Azure).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import UsageError

KINDS = ("azure", "openai", "compatible", "emulator")
ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
IMAGE_DEPLOYMENT_HEADER = "x-ms-oai-image-generation-deployment"

NO_PROVIDER_HINT = (
    "set one of: AZURE_OPENAI_ENDPOINT (+ AZURE_OPENAI_API_KEY, or sign in for Entra ID), "
    "OPENAI_API_KEY, or OPENAI_BASE_URL for a compatible endpoint; or pass "
    "--provider emulator to run offline on the built-in emulator; or add a provider: block "
    "to the flow or to ~/.config/flowrun/config.yaml"
)


@dataclass
class ProviderConfig:
    """A resolved endpoint. ``api_key`` is never written anywhere."""

    kind: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    auth: str = "api_key"
    image_generation_deployment: str | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    # what identifies the answers when base_url does not (the in-process emulator and
    # its script); the step cache keys on it
    endpoint_id: str | None = None

    def describe(self) -> dict[str, Any]:
        """What may be recorded about the provider (no credentials)."""
        return {"kind": self.kind, "base_url": self.base_url, "auth": self.auth}

    @property
    def file_purpose(self) -> str:
        """Upload purpose for input files: Azure wants ``assistants``."""
        return "assistants" if self.kind == "azure" else "user_data"


def azure_v1_url(endpoint: str) -> str:
    """``https://RES.openai.azure.com`` -> ``https://RES.openai.azure.com/openai/v1/``."""
    url = endpoint.rstrip("/")
    if not url.endswith("/openai/v1"):
        if url.endswith("/openai"):
            url += "/v1"
        else:
            url += "/openai/v1"
    return url + "/"


def _user_config(environ: Mapping[str, str]) -> dict[str, Any]:
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    path = Path(environ.get("FLOWRUN_CONFIG", str(Path(base) / "flowrun" / "config.yaml")))
    if not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except Exception as exc:
        raise UsageError(f"cannot read config file {path}: {exc}") from None
    block = data.get("provider") if isinstance(data, dict) else None
    if block is not None and not isinstance(block, dict):
        raise UsageError(f"{path}: 'provider' must be a mapping")
    return block or {}


def resolve_provider(
    flag: str | None = None,
    flow_provider: Any = None,
    base_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ProviderConfig:
    """Pick the endpoint for a run; raises :class:`UsageError` naming the options."""
    env = os.environ if environ is None else environ
    block: dict[str, Any] = {}
    if flow_provider is not None:
        block = flow_provider.model_dump(exclude_none=True)
    elif not flag:
        block = _user_config(env)
    kind = flag or block.get("kind")
    if kind is None and base_url:
        kind = "compatible"  # --base-url alone: an OpenAI-compatible endpoint
    if kind is None:
        if env.get("AZURE_OPENAI_ENDPOINT"):
            kind = "azure"
        elif env.get("OPENAI_BASE_URL") and "api.openai.com" not in env["OPENAI_BASE_URL"]:
            kind = "compatible"
        elif env.get("OPENAI_API_KEY"):
            kind = "openai"
        else:
            raise UsageError("no provider configured", hint=NO_PROVIDER_HINT)
    if kind not in KINDS:
        raise UsageError(f"unknown provider {kind!r}", hint=f"use one of {', '.join(KINDS)}")
    key_env = block.get("api_key_env")
    url = base_url or block.get("base_url")
    image_dep = block.get("image_generation_deployment") or env.get("AZURE_OPENAI_IMAGE_DEPLOYMENT")

    if kind == "emulator":
        return ProviderConfig("emulator", base_url=url, api_key="emulator",
                              image_generation_deployment=image_dep)
    if kind == "azure":
        endpoint = url or env.get("AZURE_OPENAI_ENDPOINT")
        if not endpoint:
            raise UsageError(
                "Azure needs an endpoint",
                hint="set AZURE_OPENAI_ENDPOINT=https://RESOURCE.openai.azure.com or "
                "provider.base_url in the flow",
            )
        key = env.get(key_env or "AZURE_OPENAI_API_KEY")
        auth = block.get("auth") or ("api_key" if key else "entra_id")
        if auth == "api_key" and not key:
            raise UsageError(
                f"Azure API key auth needs {key_env or 'AZURE_OPENAI_API_KEY'}",
                hint="export the key, or set provider.auth: entra_id to sign in with "
                "Microsoft Entra ID (az login / managed identity)",
            )
        cfg = ProviderConfig("azure", azure_v1_url(endpoint), key if auth == "api_key" else None,
                             auth, image_dep)
        if image_dep:
            cfg.headers[IMAGE_DEPLOYMENT_HEADER] = image_dep
        return cfg
    if kind == "openai":
        key = env.get(key_env or "OPENAI_API_KEY")
        if not key:
            raise UsageError(f"OpenAI needs {key_env or 'OPENAI_API_KEY'}",
                             hint="export your API key")
        return ProviderConfig("openai", url or "https://api.openai.com/v1", key)
    # compatible
    url = url or env.get("OPENAI_BASE_URL")
    if not url:
        raise UsageError("a compatible provider needs a base URL",
                         hint="set OPENAI_BASE_URL or --base-url, e.g. http://localhost:8000/v1")
    key = env.get(key_env or "OPENAI_API_KEY") or "unused"
    return ProviderConfig("compatible", url, key)
