"""The step cache: the same rendered request gets the same answer, with zero requests.

**Which steps.** A Responses step uses the cache when its ``cache:`` (else
``defaults.cache``) says ``true`` or ``{ttl: ...}``; ``flowrun run --cache`` turns it on
for every step that does not say ``cache: false``; ``--no-cache`` turns it off for all.
A step whose answer depends on the world - it has ``python``, ``command``, ``flow`` or
``mcp`` tools - is cached only when the step itself says ``cache: true`` (not from
``defaults``, not from ``--cache``). Computer-use and sub-flow steps are never cached.

**The key** (:func:`cache_key`, the one place it is computed) is the sha256 of:

- the step's first request as it would be sent: model, instructions, input, tools and
  their schemas, tool choice, parameters, ``text`` format, ``include``, metadata. It is
  built by the step's own request builder with a stand-in client that sends nothing:
  a local file that would be uploaded counts by the sha256 of its bytes (not its file
  id, which changes per upload), as do files put into an existing container;
- for ``continue:`` with ``previous_response_id``, the digest of the continued step's
  conversation (its input and output items) in place of the response id; ``mode:
  manual`` resends that conversation, so it is in the input already;
- the provider kind and endpoint (base URL; for the in-process emulator, its script),
  never a credential.

**Secrets.** A request that contains a secret value (``{{ secrets.X }}``, a credential
header, anything the run's redactor masks) is not cached at all: neither looked up nor
stored, and the run says so. A key derived from a secret would let anyone holding the
cache confirm a guessed secret, and the answer may quote it. A result that contains a
secret (a tool returned one) is not stored either. Everything stored is masked.

**A hit** restores the step's result (text, output, response ids, items, tool calls,
usage as it was when answered), writes its responses into the run's ``responses/`` and
its artifacts into ``artifacts/``, and marks the step ``cached`` in the record and the
run store. Response and container ids are those of the original answer: a later step
that continues a cached one by ``previous_response_id`` needs the service to still have
it (flowrun resends the conversation on a 404).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from .cache_store import CacheStore, default_cache_dir, file_digest
from .durable import digest_of
from .hooks import RunHooks
from .spec import CacheOptions, tool_kind

KEY_VERSION = 1
WORLD_TOOLS = frozenset({"python", "command", "flow", "mcp"})
# result fields that belong to this run of the step, not to the answer
_NOT_STORED = frozenset({"step_id", "status", "error", "error_type", "attempts", "started_at",
                         "finished_at", "index", "cached"})
_NOT_STORED_EXTRA = frozenset({"run_attempt", "cache"})


class RunCache:
    """A run's view of the step cache: the command line's choice, where it lives and
    which endpoint answers; the store is opened on first use."""

    def __init__(self, mode: bool | None, root: Path | None = None, provider: Any = None):
        self.mode = mode  # None: as the flow says; True: --cache; False: --no-cache
        self.root = Path(root) if root is not None else default_cache_dir()
        self.endpoint = endpoint_identity(provider)
        self._store: CacheStore | None = None

    @property
    def store(self) -> CacheStore:
        if self._store is None:
            self._store = CacheStore(self.root)
        return self._store

    def wanted(self, plan: Any) -> bool:
        """Whether any step of the plan (or of its sub-flows) may use the cache."""
        if self.mode is not None:
            return bool(self.mode)
        flows = [plan, *plan.subflows.values()]
        return any(p.flow.defaults.cache or any(s.cache for s in p.flow.steps.values())
                   for p in flows)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def endpoint_identity(provider: Any) -> dict[str, Any]:
    """What identifies the endpoint's answers: kind and URL (or the in-process emulator's
    script), never a credential."""
    if provider is None:
        return {}
    return {"kind": provider.kind,
            "endpoint": getattr(provider, "endpoint_id", None) or provider.base_url}


# --------------------------------------------------------------------------- policy


def world_dependent(sc: Any) -> bool:
    """The step has tools whose results come from outside the model."""
    from .tools import resolve

    for ref in sc.step.tools:
        try:
            _, tool = resolve(sc, ref)
        except Exception:
            return True
        if tool_kind(tool) in WORLD_TOOLS:
            return True
    return False


def options_for(sc: Any) -> CacheOptions | None:
    """The cache options that apply to this step run, or None when it is not cached."""
    cache: RunCache | None = getattr(sc.run, "cache", None)
    if cache is None or cache.mode is False:
        return None
    own, default = sc.step.cache, sc.flow.defaults.cache
    if own is False or (own is None and default is False):
        return None
    if own is None and world_dependent(sc):
        return None  # only an explicit `cache: true` on the step caches world-dependent work
    setting = own if own is not None else default
    if setting is None and cache.mode is True:
        setting = CacheOptions()
    return setting or None


# --------------------------------------------------------------------------- the key


def cache_key(request: dict[str, Any], endpoint: dict[str, Any],
              continues: str | None = None) -> str:
    """The cache key of a step's first request (see the module docstring)."""
    request = dict(request)
    if "previous_response_id" in request:
        request["previous_response_id"] = {"continues": continues}
    return digest_of({"v": KEY_VERSION, "request": request, "endpoint": endpoint})


class KeyingClient:
    """Stands in for the client while the key's request is built: sends nothing; an
    upload answers the sha256 of the file, a container lists empty and records the
    digests of the files it would get."""

    def __init__(self, provider: Any):
        self.provider = provider
        self.container_files_added: list[str] = []

    async def upload_file(self, path: Path, purpose: str | None = None) -> str:
        return f"local-file:sha256:{file_digest(Path(path))}:{purpose}"

    async def container_files(self, container_id: str) -> list[dict[str, Any]]:
        return []

    async def add_container_file(self, container_id: str, path: Path | None = None,
                                 file_id: str | None = None) -> dict[str, Any]:
        what = f"sha256:{file_digest(Path(path))}" if path is not None else file_id
        self.container_files_added.append(f"{container_id}:{what}")
        return {}

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"the step cache key is built without requests ({name})")


async def first_request(sc: Any, build: Callable[[Any], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """The step's first request, built by ``build`` with :class:`KeyingClient` in a copy
    of its context: nothing is sent and nothing in the run changes."""
    from .context import StepContext
    from .results import StepResult

    client = KeyingClient(getattr(sc.run.client, "provider", None))
    run = dataclasses.replace(sc.run, client=client, hooks=RunHooks())
    shadow = StepContext(run, sc.step_id, sc.step, StepResult(sc.step_id, index=sc.result.index),
                         loop=sc.loop)
    request = await build(shadow)
    if client.container_files_added:
        request = {**request, "flowrun_container_files": client.container_files_added}
    return request


def _continues(sc: Any) -> str | None:
    spec = sc.step.continue_
    outcome = sc.run.outcomes.get(spec.step) if spec is not None else None
    if outcome is None or outcome.result is None:
        return None
    return digest_of(outcome.result.conversation)


def _has_secret(sc: Any, value: Any) -> bool:
    return sc.run.redactor.deep(value) != value


# --------------------------------------------------------------------------- the seam


async def through_cache(sc: Any, build: Callable[[Any], Awaitable[dict[str, Any]]],
                        run: Callable[[Any], Awaitable[None]]) -> None:
    """Run a step through the cache: on a hit fill ``sc.result`` from it (zero requests);
    otherwise ``run(sc)`` and keep what it answered. ``build(sc)`` gives the step's first
    request; without caching it is never called."""
    options = options_for(sc)
    if options is None:
        await run(sc)
        return
    request = await first_request(sc, build)
    if _has_secret(sc, request):
        sc.notice(f"step cache: {sc.key} not cached: its request contains a secret")
        await run(sc)
        return
    key = cache_key(request, sc.run.cache.endpoint, _continues(sc))
    entry = sc.run.cache.store.get(key, options.ttl)
    if entry is not None and _restore(sc, key, entry):
        return
    await run(sc)
    _keep(sc, key)


def _restore(sc: Any, key: str, entry: dict[str, Any]) -> bool:
    """Fill the result from a cache entry; False when its files are gone."""
    store, cache = sc.run.store, sc.run.cache.store
    state = entry["result"]
    moved: dict[str, str] = {}
    for art in entry.get("artifacts", []):
        blob = cache.blob_path(art["digest"])
        target = store.artifact_path(sc.key, art["name"])
        try:
            store.write_file(target, blob.read_bytes())
        except FileNotFoundError:
            return False
        moved[art["path"]] = str(target)
    state = _replace_paths(state, moved)
    result = sc.result
    for name, value in state.items():
        if name == "extra":
            result.extra.update(value)
        elif name not in _NOT_STORED and hasattr(result, name):
            setattr(result, name, value)
    for n, response in enumerate(entry.get("responses", [])):
        store.save_response(sc.key, response, n)
    result.cached = True
    result.extra["cache"] = {"key": key, "stored_at": entry.get("created"),
                             "from_run": entry.get("run_id")}
    sc.status("running", "answer from the step cache")
    return True


def _keep(sc: Any, key: str) -> None:
    """Store the answer the step just got (unless it holds a secret)."""
    from .durable import result_state
    from .store import response_name

    result, store = sc.result, sc.run.store
    state = {k: v for k, v in result_state(result).items() if k not in _NOT_STORED}
    state["extra"] = {k: v for k, v in result.extra.items() if k not in _NOT_STORED_EXTRA}
    if _has_secret(sc, state):
        sc.notice(f"step cache: {sc.key} not stored: its result contains a secret")
        return
    responses = []
    for n in range(len(result.response_ids)):
        path = store.dir / "responses" / response_name(sc.key, n)
        if not path.is_file():
            return
        responses.append(json.loads(path.read_text(encoding="utf-8")))
    cache = sc.run.cache.store
    artifacts, digests = [], []
    for path in dict.fromkeys([*result.images, *result.files]):
        p = Path(path)
        if not p.is_file():
            continue  # a URL, or a file that is gone: kept as the text it is
        digest = cache.add_blob(p)
        artifacts.append({"path": path, "name": p.name, "digest": digest})
        digests.append(digest)
    value = {"result": state, "responses": responses, "artifacts": artifacts,
             "run_id": store.run_id, "step": sc.key, "stored": time.time()}
    cache.put(key, value, digests, flow=sc.flow.name, step=sc.key, run_id=store.run_id)


def _replace_paths(value: Any, moved: dict[str, str]) -> Any:
    if not moved:
        return value
    if isinstance(value, str):
        for old, new in moved.items():
            if old in value:
                value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {k: _replace_paths(v, moved) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_paths(v, moved) for v in value]
    return value
