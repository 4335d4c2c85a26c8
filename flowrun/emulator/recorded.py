"""Replaying recorded output: the ``recorded`` reply kind returns a recorded response's
output items as they were, and first puts back the container files that turn produced
(with the ids the recording saw), so a cassette (``flowrun run --record``) replays
completely, hosted tools included."""

from __future__ import annotations

import base64
import copy
from typing import Any

from pydantic import BaseModel, ConfigDict

from .containers import container_store
from .model import TURN_CHECKS, Turn, register_kind


class RecordedFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    container_id: str
    id: str
    path: str
    data: str  # base64


class RecordedReply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    output: list[dict[str, Any]]
    container_files: list[RecordedFile] = []


def seed_file(emulator: Any, f: RecordedFile) -> None:
    """Put a recorded container file back, creating its container with its recorded id."""
    store = container_store(emulator)
    container = store.get(f.container_id)
    if container is None:
        container = store.create("recorded")
        with store._lock:
            store._containers.pop(container.id, None)
            container.id = f.container_id
            store._containers[f.container_id] = container
    if f.id in container.files:
        return
    entry = container.add(f.path.rsplit("/", 1)[-1], base64.b64decode(f.data), source="assistant")
    container.files.pop(entry.id)
    entry.id, entry.container_id = f.id, f.container_id
    container.files[f.id] = entry


def _recorded(reply: RecordedReply, turn: Turn) -> list[dict[str, Any]]:
    for f in reply.container_files:
        seed_file(turn.emulator, f)
    return copy.deepcopy(reply.output)


register_kind("recorded", _recorded, RecordedReply)


def _keep_request(turn: Turn) -> None:
    """An emulator replaying a cassette keeps each request whole, to compare it with the
    recorded one (the journal bounds what it keeps)."""
    sink = getattr(turn.emulator, "replay_requests", None)
    if isinstance(sink, list):
        sink.append(copy.deepcopy(turn.request))


TURN_CHECKS.append(_keep_request)
