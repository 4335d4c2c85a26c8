"""Which endpoint a run talks to, and with which credentials.

Order of precedence: ``--provider`` (and ``--base-url``), the flow's ``provider:`` block,
the SDKs' environment variables, then the user config file (``$FLOWRUN_CONFIG``, else
``$XDG_CONFIG_HOME/flowrun/config.yaml``, else ``~/.config/flowrun/config.yaml``). The
first source that names a kind picks it; each setting comes from the first source that
sets it (sources for another kind are ignored).

Environment variables: ``AZURE_OPENAI_ENDPOINT`` with ``AZURE_OPENAI_API_KEY`` (or Entra ID
when no key is set), ``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` (where ``openai`` and
``compatible`` requests go, as for the SDK: a gateway, a proxy, a local server),
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
OPENAI_URL = "https://api.openai.com/v1"
IN_PROCESS_POLL_SECONDS = 0.05  # poll_interval_cap of the in-process emulator

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
    # the longest wait between polls of a background response: the in-process emulator
    # finishes one in milliseconds, so a flow's `poll_interval: 5s` would only idle there
    poll_interval_cap: float | None = None
    # batch mode: the model batch lines name (a name, or a mapping from model names)
    batch_model: Any = None

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


def config_path(environ: Mapping[str, str]) -> Path | None:
    """``$FLOWRUN_CONFIG``, else ``$XDG_CONFIG_HOME/flowrun/config.yaml``, else
    ``$HOME/.config/flowrun/config.yaml`` (all read from ``environ``)."""
    if environ.get("FLOWRUN_CONFIG"):
        return Path(environ["FLOWRUN_CONFIG"])
    base = environ.get("XDG_CONFIG_HOME")
    if not base and environ.get("HOME"):
        base = str(Path(environ["HOME"]) / ".config")
    return Path(base) / "flowrun" / "config.yaml" if base else None


def _user_config(environ: Mapping[str, str]) -> dict[str, Any]:
    path = config_path(environ)
    if path is None or not path.is_file():
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


def _env_kind(env: Mapping[str, str]) -> str | None:
    """The kind the SDKs' environment variables describe, if any."""
    if env.get("AZURE_OPENAI_ENDPOINT"):
        return "azure"
    if env.get("OPENAI_BASE_URL") and "api.openai.com" not in env["OPENAI_BASE_URL"]:
        return "compatible"
    if env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL"):
        return "openai"
    return None


def _env_settings(kind: str, env: Mapping[str, str]) -> dict[str, Any]:
    """The settings the environment gives a provider of ``kind``."""
    out: dict[str, Any] = {}
    if kind == "azure" and env.get("AZURE_OPENAI_ENDPOINT"):
        out["base_url"] = env["AZURE_OPENAI_ENDPOINT"]
    elif kind in ("openai", "compatible") and env.get("OPENAI_BASE_URL"):
        out["base_url"] = env["OPENAI_BASE_URL"]  # the SDK's own convention: gateways, proxies
    if kind != "emulator" and env.get("AZURE_OPENAI_IMAGE_DEPLOYMENT"):
        out["image_generation_deployment"] = env["AZURE_OPENAI_IMAGE_DEPLOYMENT"]
    return out


def resolve_provider(
    flag: str | None = None,
    flow_provider: Any = None,
    base_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ProviderConfig:
    """Pick the endpoint for a run; raises :class:`UsageError` naming the options.

    The kind comes from the first source that names one: ``--provider`` (``--base-url``
    alone means ``compatible``), the flow's block, the environment, the config file. Each
    setting then comes from the first source that sets it, among the sources for that
    kind: ``--base-url``, the flow's block, the environment, the config file (a block
    whose ``kind`` differs is ignored)."""
    env = os.environ if environ is None else environ
    flow_block: dict[str, Any] = {}
    if flow_provider is not None:
        flow_block = flow_provider.model_dump(exclude_none=True, exclude_unset=True)
    config = _user_config(env)
    kind = flag or flow_block.get("kind")
    if kind is None and base_url:
        kind = "compatible"  # --base-url alone: an OpenAI-compatible endpoint
    kind = kind or _env_kind(env) or config.get("kind")
    if kind is None:
        raise UsageError("no provider configured", hint=NO_PROVIDER_HINT)
    if kind not in KINDS:
        raise UsageError(f"unknown provider {kind!r}", hint=f"use one of {', '.join(KINDS)}")
    layers = [{"base_url": base_url} if base_url else {}]
    layers += [b for b in (flow_block,) if b.get("kind", kind) == kind]
    layers.append(_env_settings(kind, env))
    layers += [b for b in (config,) if b.get("kind", kind) == kind]
    block: dict[str, Any] = {}
    for layer in reversed(layers):  # the first source wins
        block.update({k: v for k, v in layer.items() if v is not None})
    cfg = _build(kind, block, env)
    cfg.batch_model = block.get("batch_model")
    return cfg


def _build(kind: str, block: dict[str, Any], env: Mapping[str, str]) -> ProviderConfig:
    key_env = block.get("api_key_env")
    url = block.get("base_url")
    image_dep = block.get("image_generation_deployment")

    if kind == "emulator":
        return ProviderConfig("emulator", base_url=url, api_key="emulator",
                              image_generation_deployment=image_dep)
    if kind == "azure":
        if not url:
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
        cfg = ProviderConfig("azure", azure_v1_url(url), key if auth == "api_key" else None,
                             auth, image_dep)
        if image_dep:
            cfg.headers[IMAGE_DEPLOYMENT_HEADER] = image_dep
        return cfg
    if kind == "openai":
        key = env.get(key_env or "OPENAI_API_KEY")
        if not key:
            raise UsageError(f"OpenAI needs {key_env or 'OPENAI_API_KEY'}",
                             hint="export your API key")
        return ProviderConfig("openai", url or OPENAI_URL, key)
    # compatible
    if not url:
        raise UsageError("a compatible provider needs a base URL",
                         hint="set OPENAI_BASE_URL or --base-url, e.g. http://localhost:8000/v1")
    key = env.get(key_env or "OPENAI_API_KEY") or "unused"
    return ProviderConfig("compatible", url, key)
