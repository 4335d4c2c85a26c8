"""Record and replay: a cassette is every model turn of a run (the request as sent, its
digest, the final response) plus the container files hosted tools produced, as JSON with
secrets masked and no auth. ``flowrun run --record FILE`` writes one on any provider;
a test case's ``recording:`` (or ``flowrun run --replay FILE``) replays it on the emulator.

Requests are compared after :func:`normalize`: ids the service hands out afresh on every
run (response ids sent as ``previous_response_id``, uploaded file ids) are placeholders, and
so are local paths (:mod:`.local_paths`: ``{flow_dir}/data/sales.csv``), which the cassette
stores that way too, so it replays in another checkout. A cassette recorded before paths
were placeholders still replays where it was recorded: both sides are compared rewritten.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..secrets import Redactor
from .checks import Failure
from .local_paths import Places

VERSION = 1
_VOLATILE = {"previous_response_id": "<previous response>", "file_id": "<file>",
             "headers": "<headers>", "authorization": "<authorization>"}


_UPLOADED = re.compile(r"^(file|assistant)-[A-Za-z0-9]{8,}$")


def normalize(body: Any) -> Any:
    """``body`` without what differs between identical runs."""
    if isinstance(body, str) and _UPLOADED.match(body):
        return "<file>"
    if isinstance(body, dict):
        return {k: (_VOLATILE[k] if k in _VOLATILE and isinstance(v, (str, dict)) else normalize(v))
                for k, v in body.items() if k not in ("stream", "background") or v}
    if isinstance(body, list):
        return [normalize(v) for v in body]
    return body


def digest(body: Any) -> str:
    text = json.dumps(normalize(body), sort_keys=True, ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _key(body: dict[str, Any]) -> str:
    meta = body.get("metadata") or {}
    step = str(meta.get("flowrun_step", ""))
    return f"{step}[{meta['flowrun_item']}]" if "flowrun_item" in meta else step


class Recorder:
    """Wraps a :class:`~flowrun.client.ResponsesClient`, keeping every turn it sees."""

    def __init__(self, client: Any, path: Path, redactor: Redactor | None = None,
                 places: Places | None = None) -> None:
        self._client = client
        self.path = Path(path)
        self.redactor = redactor or Redactor()
        self.places = places or Places()
        self.turns: list[dict[str, Any]] = []
        self._by_id: dict[str, dict[str, Any]] = {}
        self._listed: dict[str, list[dict[str, Any]]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def _turn(self, params: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
        request = self.places.placeholders(params)  # what is sent is left as it was
        turn = {"key": _key(params), "request": request, "digest": digest(request), "response": response}
        self.turns.append(turn)
        if response.get("id"):
            self._by_id[response["id"]] = turn
        return response

    async def create(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._turn(params, await self._client.create(params))

    async def stream(self, params: dict[str, Any], on_event: Any = None) -> dict[str, Any]:
        return self._turn(params, await self._client.stream(params, on_event))

    def _update(self, response: dict[str, Any]) -> dict[str, Any]:
        turn = self._by_id.get(response.get("id", ""))
        if turn is not None:
            turn["response"] = response  # a background response, polled to its end
        return response

    async def retrieve(self, response_id: str) -> dict[str, Any]:
        return self._update(await self._client.retrieve(response_id))

    async def resume_stream(self, response_id: str, starting_after: int, on_event: Any = None) -> dict[str, Any]:
        return self._update(await self._client.resume_stream(response_id, starting_after, on_event))

    async def container_file_content(self, container_id: str, file_id: str) -> bytes:
        """A file a hosted tool wrote: kept with the last turn that used its container."""
        data = await self._client.container_file_content(container_id, file_id)
        owner = next((t for t in reversed(self.turns)
                      if any(isinstance(i, dict) and i.get("container_id") == container_id
                             for i in (t["response"].get("output") or []))), None)
        if owner is not None:
            path = next((f.get("path") for f in self._listed.get(container_id, []) if f.get("id") == file_id),
                        file_id)
            owner.setdefault("container_files", []).append(
                {"container_id": container_id, "id": file_id, "path": path,
                 "data": base64.b64encode(data).decode("ascii")})
        return data

    async def container_files(self, container_id: str) -> list[dict[str, Any]]:
        files = await self._client.container_files(container_id)
        self._listed[container_id] = files
        return files

    def recorded_on(self) -> dict[str, Any]:
        """Where the turns were recorded (kind and base URL, no credentials): ``flowrun test
        --update`` records there again. The in-process emulator's port is left out."""
        cfg = getattr(self._client, "provider", None)
        if cfg is None:
            return {}
        if cfg.kind == "emulator" and cfg.endpoint_id:
            return {"kind": "emulator"}
        return {k: v for k, v in cfg.describe().items() if k in ("kind", "base_url") and v}

    def save(self, flow_name: str) -> None:
        doc = {"flowrun_cassette": VERSION, "flow": flow_name, "provider": self.recorded_on(),
               "turns": self.turns}
        text = json.dumps(self.redactor.deep(doc), indent=1, ensure_ascii=True, default=str)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(text + "\n", encoding="utf-8")
        tmp.replace(self.path)


class Replay:
    """A loaded cassette: installs itself into an emulator as a script, then compares the
    requests the run sent with the recorded ones."""

    def __init__(self, path: Path, doc: dict[str, Any]) -> None:
        self.path = path
        self.turns: list[dict[str, Any]] = doc.get("turns", [])
        provider = doc.get("provider")
        self.provider: dict[str, Any] = provider if isinstance(provider, dict) else {}
        self._emulator: Any = None

    @classmethod
    def load(cls, path: str | Path) -> "Replay":
        p = Path(path)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"recording {p}: no such file") from None
        except (OSError, ValueError) as exc:
            raise UsageError(f"recording {p}: not a flowrun cassette ({exc})",
                             hint="record one with `flowrun run FLOW --record FILE`") from None
        if not isinstance(doc, dict) or doc.get("flowrun_cassette") != VERSION or not isinstance(
                doc.get("turns"), list):
            raise UsageError(f"recording {p}: not a flowrun cassette (version {VERSION})",
                             hint="record one with `flowrun run FLOW --record FILE`")
        return cls(p, doc)

    def script(self) -> dict[str, Any]:
        steps: dict[str, list[dict[str, Any]]] = {}
        for turn in self.turns:
            output = (turn.get("response") or {}).get("output") or []
            steps.setdefault(turn["key"], []).append(
                {"recorded": {"output": output, "container_files": turn.get("container_files", [])}})
        return {"steps": steps}

    def install(self, emulator: Any) -> None:
        emulator.load_script(self.script())
        emulator._initial = (emulator.player.script, emulator._initial[1])
        emulator.replay_requests = []
        self._emulator = emulator

    def failures(self, places: Places | None = None) -> list[Failure]:
        """Where the run's requests differ from the recording (a changed prompt, a new step);
        ``places``: where this run is, so local paths compare as placeholders."""
        if self._emulator is None:
            return []
        places = places or Places()
        sent: dict[str, list[dict[str, Any]]] = {}
        for body in self._emulator.replay_requests:
            sent.setdefault(_key(body), []).append(places.placeholders(body))
        recorded: dict[str, list[dict[str, Any]]] = {}
        for turn in self.turns:
            recorded.setdefault(turn["key"], []).append(places.placeholders(turn["request"]))
        out: list[Failure] = []
        for key in sorted(set(sent) | set(recorded)):
            got, want = sent.get(key, []), recorded.get(key, [])
            for i in range(max(len(got), len(want))):
                if i >= len(want):
                    out.append(Failure(("recording",), f"step {key} sent request {i + 1}, which the "
                                       f"recording {self.path.name} does not have; record it anew"))
                    break
                if i >= len(got):
                    out.append(Failure(("recording",), f"step {key} sent {len(got)} request(s); the "
                                       f"recording has {len(want)}"))
                    break
                a, b = normalize(want[i]), normalize(got[i])
                if digest(a) != digest(b):
                    diff = "\n".join(difflib.unified_diff(
                        json.dumps(a, indent=1, sort_keys=True, ensure_ascii=False).splitlines(),
                        json.dumps(b, indent=1, sort_keys=True, ensure_ascii=False).splitlines(),
                        "recorded", "sent", lineterm="", n=2))
                    out.append(Failure(("recording",), f"step {key}'s request {i + 1} no longer matches "
                                       f"the recording (the flow changed? record it anew):\n{diff}"))
                    break
        return out
