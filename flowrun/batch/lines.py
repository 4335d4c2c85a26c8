"""Batch input and output lines: custom ids, the JSONL a batch reads (split at the
service's limits), and what each output line means for the request it answers.

A line's ``custom_id`` is ``row-<n>:<step>[:<item>]:<turn>``: the dataset row, the step
(and ``for_each`` index), and the model turn of its tool loop (0 for the first request).
A retried line keeps its id; it goes in a later batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from ..durable import digest_of
from ..errors import ClientError, RateLimited, RequestRejected, ServerError

ENDPOINT = "/v1/responses"
MAX_LINES = 50_000
"""Requests per batch input file (OpenAI and Azure)."""
MAX_BYTES = 200 * 1024 * 1024
"""Bytes per batch input file."""
RETRYABLE_CODES = frozenset({"batch_expired", "batch_cancelled", "server_error", "rate_limit_exceeded",
                             "internal_error", "timeout"})
"""Line error codes worth a try in the next batch."""


def custom_id(row: int, key: str, turn: int) -> str:
    """``row-3:explain:1:0`` for item 1 of step ``explain`` of row 3, first turn."""
    return f"row-{row}:{key.replace('.', ':')}:{turn}"


def parse_custom_id(value: str) -> tuple[int, str, int | None, int]:
    """``(row, step, item or None, turn)`` of a custom id made by :func:`custom_id`."""
    head, *rest = value.split(":")
    if not head.startswith("row-") or len(rest) not in (2, 3):
        raise ValueError(f"not a flowrun batch line id: {value!r}")
    item = int(rest[1]) if len(rest) == 3 else None
    return int(head[4:]), rest[0], item, int(rest[-1])


@dataclass(eq=False)
class Line:
    """One request waiting for its batch, and the future its answer resolves."""

    custom_id: str
    row: int
    body: dict[str, Any]
    future: Any = None
    digest: str = ""
    data: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        record = {"custom_id": self.custom_id, "method": "POST", "url": ENDPOINT, "body": self.body}
        self.data = (json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
                     + "\n").encode("utf-8")
        self.digest = self.digest or digest_of(self.body)


def split(lines: Iterable[Line], max_lines: int = MAX_LINES, max_bytes: int = MAX_BYTES) -> Iterator[list[Line]]:
    """The lines in files of at most ``max_lines`` lines and ``max_bytes`` bytes each."""
    part: list[Line] = []
    size = 0
    for line in lines:
        if len(line.data) > max_bytes:
            raise RequestRejected(f"batch line {line.custom_id} is {len(line.data):,} bytes, more than a "
                                  f"batch file may hold ({max_bytes:,})")
        if part and (len(part) >= max_lines or size + len(line.data) > max_bytes):
            yield part
            part, size = [], 0
        part.append(line)
        size += len(line.data)
    if part:
        yield part


def read_jsonl(data: bytes) -> dict[str, dict[str, Any]]:
    """Output or error file lines by ``custom_id``."""
    out: dict[str, dict[str, Any]] = {}
    for raw in data.decode("utf-8").splitlines():
        raw = raw.strip()
        if not raw:
            continue
        record = json.loads(raw)
        if isinstance(record, dict) and record.get("custom_id"):
            out[record["custom_id"]] = record
    return out


def outcome(record: dict[str, Any] | None, missing: str) -> dict[str, Any] | ClientError:
    """The response body an output line carries, or the error to raise for it (retryable
    ones are tried again in the next batch, without waiting: the batch took its time).
    ``missing``: why a line without a record has none."""
    if record is None:
        return ServerError(f"no answer in the batch for this request ({missing})", retry_after=0.0)
    response = record.get("response") or None
    error = record.get("error") or None
    if response is not None:
        status = int(response.get("status_code") or 0)
        body = response.get("body")
        if status == 200 and isinstance(body, dict):
            return body
        message = _message(body) or _message(error) or f"status {status}"
        if status == 429:
            return RateLimited(f"rate limited in the batch (429): {message}", 429, 0.0)
        if status >= 500:
            return ServerError(f"server error in the batch ({status}): {message}", status, 0.0)
        return RequestRejected(f"request rejected in the batch ({status}): {message}", status)
    code = str((error or {}).get("code") or "")
    message = _message(error) or "no response"
    if code in RETRYABLE_CODES:
        return ServerError(f"batch line failed ({code}): {message}", retry_after=0.0)
    return RequestRejected(f"batch line failed ({code or 'error'}): {message}")


def _message(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    err = value.get("error", value)
    if isinstance(err, dict) and err.get("message"):
        return str(err["message"])
    return None
