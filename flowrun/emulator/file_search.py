"""The hosted ``file_search`` tool on the emulator: the model searches the request's
vector stores (:mod:`.vector_stores`, real chunks ranked by bm25) and answers from what
it found, citing the files.

**When it searches (default rule).** A request whose ``tools`` include
``{"type": "file_search", "vector_store_ids": [...]}``, whose ``tool_choice`` is not
``none`` (nor another tool) and whose text format is not a JSON schema searches once per
user message: the query is the last user message's text. Unknown vector store ids are a
404 before anything runs, as on the service.

**The search** honours the tool's ``max_num_results`` (default 10), ``filters``
(attribute filters, :func:`.vector_stores.matches`) and ``ranking_options``
(``score_threshold``) over every store in ``vector_store_ids``.

**The reply** is a ``file_search_call`` (``queries``; ``results`` - file id, filename,
score, chunk text, attributes - only when ``include`` has ``file_search_call.results``,
otherwise ``null``) and an assistant message: a lead line, then for each of the best
files (at most :data:`CITED`, one passage each - the sentence of the top chunk that
shares most words with the query) a paragraph ending in a ``file_citation`` annotation
(``file_id``, ``filename``, ``index`` = the passage's end). Without results the message
says so and cites nothing.

**Scripted reply kind** ``file_search``: ``{query: TEXT or [TEXT, ...], text: LEAD}``
(both optional): the model searches for ``query`` (default: the user's text) and opens
its answer with ``text`` (default ``[emulator] file search: QUERY``).

**Streaming**: ``response.file_search_call.in_progress`` → ``.searching`` →
``.completed`` between the item's ``output_item.added`` and ``.done``.
"""
from __future__ import annotations

from typing import Any, Union

from pydantic import BaseModel, ConfigDict

from .errors import APIError
from .events import ADDED_FORMS, ITEM_EVENTS
from .fulltext import best_passage, compose, query_terms
from .model import DEFAULT_RULES, TURN_CHECKS, Turn, new_id, register_kind
from .vector_stores import result_item, vector_stores

INCLUDE_RESULTS = "file_search_call.results"
CITED = 3


class FileSearchSpec(BaseModel):
    """A scripted file search."""

    model_config = ConfigDict(extra="forbid")
    query: Union[str, list[str], None] = None
    text: str | None = None


def search_tools(turn: Turn, kind: str) -> list[dict[str, Any]]:
    return [t for t in turn.request.get("tools") or [] if isinstance(t, dict) and t.get("type") == kind]


def may_use(turn: Turn, kind: str, item_type: str | None = None) -> bool:
    """The default rule may call the hosted tool ``kind`` (module docstring), whose calls
    are ``item_type`` items (default ``KIND_call``)."""
    choice = turn.request.get("tool_choice")
    if choice == "none" or (isinstance(choice, dict) and choice.get("type") not in (kind, None)):
        return False
    if turn.text_format.get("type") == "json_schema" or turn.trailing_tool_outputs:
        return False
    return bool(search_tools(turn, kind)) and not searched(turn, item_type or f"{kind}_call")


def searched(turn: Turn, item_type: str) -> bool:
    """Whether the conversation already holds a call of ``item_type`` after the last user message."""
    for item in reversed(turn.conversation):
        if item.get("type") == item_type:
            return True
        if item.get("type", "message") == "message" and item.get("role") == "user":
            return False
    return False


def _check_stores(turn: Turn) -> None:
    state = vector_stores(turn.emulator)
    for tool in search_tools(turn, "file_search"):
        for store_id in tool.get("vector_store_ids") or []:
            state.require(store_id)


def run_search(turn: Turn, queries: list[str], lead: str | None = None) -> list[dict[str, Any]]:
    """Search the stores of the request's file_search tools; the call item and the answer."""
    tools = search_tools(turn, "file_search")
    if not tools:
        raise APIError(400, "flowrun emulator script: the model searches files, but the request has no "
                       "file_search tool.", param="tools")
    state = vector_stores(turn.emulator)
    found = []
    for tool in tools:
        ranking = tool.get("ranking_options") or {}
        found += state.search(list(tool.get("vector_store_ids") or []), queries, filters=tool.get("filters"),
                              max_results=int(tool.get("max_num_results") or 10),
                              threshold=float(ranking.get("score_threshold") or 0.0))
    found.sort(key=lambda pair: -pair[0].score)
    include = INCLUDE_RESULTS in (turn.request.get("include") or [])
    call = {"id": new_id("fs"), "type": "file_search_call", "status": "completed", "queries": queries,
            "results": [_result(h, r) for h, r in found] if include else None}
    terms = [t for q in queries for t in query_terms(q)]
    cited, seen = [], set()
    for hit, record in found:
        if record.id not in seen and len(cited) < CITED:
            seen.add(record.id)
            cited.append((best_passage(hit.text, terms), record))
    lead = lead if lead is not None else f"[emulator] file search: {' / '.join(queries)}"
    if not cited:
        lead += "\n\nNo matching passages were found."
    text, spans = compose(lead, [p for p, _ in cited])
    annotations = [{"type": "file_citation", "file_id": r.id, "filename": r.filename, "index": end}
                   for (_, r), (_, end) in zip(cited, spans)]
    message = {"id": new_id("msg"), "type": "message", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": text, "annotations": annotations, "logprobs": []}]}
    return [call, message]


def _result(hit: Any, record: Any) -> dict[str, Any]:
    item = result_item(hit, record)
    return {"file_id": item["file_id"], "filename": item["filename"], "score": item["score"],
            "attributes": item["attributes"], "text": hit.text}


def _default(turn: Turn) -> list[dict[str, Any]] | None:
    if not may_use(turn, "file_search"):
        return None
    return run_search(turn, [turn.last_user_text.strip()[:1000] or "?"])


def _scripted(spec: FileSearchSpec, turn: Turn) -> list[dict[str, Any]]:
    query = spec.query if spec.query is not None else turn.last_user_text.strip()[:1000] or "?"
    return run_search(turn, [query] if isinstance(query, str) else list(query), spec.text)


def call_events(kind: str) -> Any:
    def events(item: dict[str, Any], index: int) -> list[dict[str, Any]]:
        base = {"item_id": item["id"], "output_index": index}
        return [{"type": f"response.{kind}.{stage}", **base} for stage in ("in_progress", "searching", "completed")]
    return events


def _added(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "status": "in_progress", "results": None}


TURN_CHECKS.append(_check_stores)
DEFAULT_RULES.append(_default)
register_kind("file_search", _scripted, FileSearchSpec)
ITEM_EVENTS["file_search_call"] = call_events("file_search_call")
ADDED_FORMS["file_search_call"] = _added
