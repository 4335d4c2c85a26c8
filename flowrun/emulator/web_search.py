"""The hosted ``web_search`` tool on the emulator: the model searches a local corpus of
web pages (a real FTS5 index ranked by bm25, :mod:`.fulltext`) and answers citing the
pages it found.

**The corpus** is a directory of HTML and Markdown pages (``*.html``, ``*.htm``,
``*.md``, ``*.markdown``, any depth). A page's URL and title come from, in order: a
Markdown front matter block (``---`` / ``url: ...`` / ``title: ...`` / ``---``) or an
HTML ``<link rel="canonical">`` / ``<meta property="og:url">`` and ``<title>``; else the
path - the first directory is the host: ``DIR/news.example.com/q3/results.md`` is
``https://news.example.com/q3/results`` (``index`` pages are the directory), and the
title is the first ``# heading`` or the file name. A page with neither a URL nor a host
directory is a :class:`CorpusError` naming the file. Which corpus: the one set with
:func:`set_web_corpus` (``flowrun emulator --web-corpus DIR``), else the directory in
``FLOWRUN_EMULATOR_WEB_CORPUS`` (also read by the in-process emulator of
``flowrun run --provider emulator`` and ``flowrun test``), else the small corpus that
ships with flowrun (``flowrun/emulator/web_corpus/``). It is indexed once per emulator,
in passages of :data:`PASSAGE_TOKENS` tokens.

**When it searches (default rule)**: like file search (:mod:`.file_search`): a request
with a ``{"type": "web_search"}`` tool (or ``web_search_2025_08_26``), ``tool_choice``
not ``none`` nor another tool, no JSON-schema output, once per user message; the query
is the user's text, plus the ``city``, ``region`` and ``country`` of ``user_location``
as optional terms (pages about the user's place rank higher).
``filters.allowed_domains`` keeps only pages on those hosts or their subdomains.
``search_context_size`` sets how much the model reads: ``low`` cites 1 page with 160
characters, ``medium`` (default) 3 with 320, ``high`` 5 with 640.

**The reply**: a ``web_search_call`` (``action: {type: search, query, queries}``, plus
``sources`` - every page found, ``{type: url, url}`` - only when ``include`` has
``web_search_call.action.sources``) and a message: a lead line, then one paragraph per
cited page (its best passage), each covered by a ``url_citation`` annotation
(``url``, ``title``, ``start_index``, ``end_index``).

**Scripted reply kind** ``web_search``: ``{query: TEXT, text: LEAD}`` (both optional).
**Streaming**: ``response.web_search_call.in_progress`` → ``.searching`` → ``.completed``.
"""
from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from .errors import APIError
from .events import ADDED_FORMS, ITEM_EVENTS
from .file_search import call_events, may_use, search_tools
from .fulltext import FullTextIndex, best_passage, chunk_text, compose, html_text, query_terms
from .model import DEFAULT_RULES, Turn, new_id, register_kind
from .service import RESET_HOOKS

ENV = "FLOWRUN_EMULATOR_WEB_CORPUS"
DEFAULT_CORPUS = Path(__file__).with_name("web_corpus")
INCLUDE_SOURCES = "web_search_call.action.sources"
PAGE_SUFFIXES = (".md", ".markdown", ".html", ".htm")
PASSAGE_TOKENS = 120
CONTEXT = {"low": (1, 160), "medium": (3, 320), "high": (5, 640)}
TOOL_TYPES = ("web_search", "web_search_2025_08_26")
_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)
_HEADING = re.compile(r"^#\s+(.+)$", re.M)
_CANONICAL = re.compile(r"""<link\b[^>]*rel=["']canonical["'][^>]*href=["']([^"']+)["']""", re.I)
_CANONICAL2 = re.compile(r"""<link\b[^>]*href=["']([^"']+)["'][^>]*rel=["']canonical["']""", re.I)
_OG_URL = re.compile(r"""<meta\b[^>]*property=["']og:url["'][^>]*content=["']([^"']+)["']""", re.I)


class CorpusError(ValueError):
    """A web corpus that cannot be loaded; the message names the file and the fix."""


@dataclass
class Page:
    url: str
    title: str
    text: str

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()


def _front_matter(text: str) -> tuple[dict[str, str], str]:
    m = _FRONT.match(text)
    if not m:
        return {}, text
    fields = {}
    for line in m.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip().strip("'\"")
    return fields, text[m.end():]


def _url_from_path(root: Path, path: Path) -> str | None:
    parts = path.relative_to(root).with_suffix("").parts
    if len(parts) < 2 or "." not in parts[0]:
        return None
    rest = list(parts[1:])
    if rest[-1] == "index":
        rest[-1] = ""
    return f"https://{parts[0]}/" + "/".join(rest)


def load_page(root: Path, path: Path) -> Page:
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path}: cannot read this page as UTF-8 text ({exc})") from None
    if path.suffix.lower() in (".html", ".htm"):
        text, title = html_text(raw)
        m = _CANONICAL.search(raw) or _CANONICAL2.search(raw) or _OG_URL.search(raw)
        url = m.group(1) if m else None
    else:
        fields, text = _front_matter(raw)
        url, title = fields.get("url"), fields.get("title", "")
        heading = _HEADING.search(text)
        title = title or (heading.group(1).strip() if heading else "")
    url = url or _url_from_path(root, path)
    if not url or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise CorpusError(f"{path}: no URL for this page; add front matter 'url: https://...' (Markdown), "
                          "<link rel=\"canonical\" href=\"https://...\"> (HTML), or put it under a "
                          "directory named for its host (e.g. news.example.com/)")
    return Page(url, title or path.stem.replace("-", " "), text)


class Corpus:
    """The pages of one directory, indexed in passages."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise CorpusError(f"web corpus {root}: not a directory (give a directory of HTML/Markdown pages)")
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in PAGE_SUFFIXES)
        if not files:
            raise CorpusError(f"web corpus {root}: no .html or .md pages in it")
        self.root = root
        self.pages: dict[str, Page] = {}
        self.index = FullTextIndex()
        for path in files:
            page = load_page(root, path)
            self.pages[page.url] = page
            self.index.add("web", page.url, chunk_text(page.text, PASSAGE_TOKENS, PASSAGE_TOKENS // 4), page.title)

    def search(self, terms: list[str], domains: list[str] | None) -> list[tuple[Any, Page]]:
        out, seen = [], set()
        allowed = [d.lower().strip().removeprefix("www.") for d in domains or [] if d.strip()]
        for hit in self.index.search(terms, ["web"]):
            page = self.pages[hit.doc]
            if allowed and not any(page.host == d or page.host.endswith("." + d) for d in allowed):
                continue
            if page.url not in seen:  # the best passage of each page
                seen.add(page.url)
                out.append((hit, page))
        return out


_lock = threading.Lock()


def set_web_corpus(emulator: Any, directory: str | Path | None) -> None:
    """Use the pages in ``directory`` (None: back to the environment or the default);
    loads them now, so a bad corpus fails here with a :class:`CorpusError`."""
    emulator._web_corpus_dir = Path(directory) if directory is not None else None
    emulator._web_corpus = Corpus(Path(directory)) if directory is not None else None


def use_corpus_dir(directory: str | Path) -> None:
    """Make ``directory`` the corpus of every emulator of this process (and of emulators
    it starts) through :data:`ENV`; checked now, so a bad corpus fails before serving."""
    from ..errors import UsageError

    try:
        Corpus(Path(directory))
    except CorpusError as exc:
        raise UsageError(f"emulator: {exc}") from None
    os.environ[ENV] = str(Path(directory).resolve())


def web_corpus(emulator: Any) -> Corpus:
    """The emulator's corpus (module docstring), loaded on first use."""
    with _lock:
        corpus = getattr(emulator, "_web_corpus", None)
        if corpus is None:
            chosen = getattr(emulator, "_web_corpus_dir", None) or os.environ.get(ENV) or DEFAULT_CORPUS
            corpus = Corpus(Path(chosen))
            emulator._web_corpus = corpus
        return corpus


def _reset(emulator: Any) -> None:
    emulator._web_corpus_dir = None
    emulator._web_corpus = None


RESET_HOOKS.append(_reset)


class WebSearchSpec(BaseModel):
    """A scripted web search."""

    model_config = ConfigDict(extra="forbid")
    query: str | None = None
    text: str | None = None


def _tool(turn: Turn) -> dict[str, Any] | None:
    for kind in TOOL_TYPES:
        tools = search_tools(turn, kind)
        if tools:
            return tools[0]
    return None


def run_search(turn: Turn, query: str, lead: str | None = None) -> list[dict[str, Any]]:
    tool = _tool(turn)
    if tool is None:
        raise APIError(400, "flowrun emulator script: the model searches the web, but the request has no "
                       "web_search tool.", param="tools")
    try:
        corpus = web_corpus(turn.emulator)
    except CorpusError as exc:
        raise APIError(400, f"The flowrun emulator's web corpus cannot be used: {exc}", param="tools") from None
    location = tool.get("user_location") or {}
    terms = query_terms(query) + query_terms(" ".join(str(location.get(k) or "") for k in ("city", "region", "country")))
    domains = (tool.get("filters") or {}).get("allowed_domains")
    found = corpus.search(list(dict.fromkeys(terms)), domains)
    count, size = CONTEXT[tool.get("search_context_size") or "medium"]
    action: dict[str, Any] = {"type": "search", "query": query, "queries": [query]}
    if INCLUDE_SOURCES in (turn.request.get("include") or []):
        action["sources"] = [{"type": "url", "url": page.url} for _, page in found]
    call = {"id": new_id("ws"), "type": "web_search_call", "status": "completed", "action": action}
    cited = [(best_passage(hit.text, query_terms(query), size), page) for hit, page in found[:count]]
    lead = lead if lead is not None else f"[emulator] web search: {query}"
    if not cited:
        lead += "\n\nThe search found no pages."
    text, spans = compose(lead, [p for p, _ in cited])
    annotations = [{"type": "url_citation", "url": page.url, "title": page.title, "start_index": start,
                    "end_index": end} for (_, page), (start, end) in zip(cited, spans)]
    message = {"id": new_id("msg"), "type": "message", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": text, "annotations": annotations, "logprobs": []}]}
    return [call, message]


def _default(turn: Turn) -> list[dict[str, Any]] | None:
    if not any(may_use(turn, kind, "web_search_call") for kind in TOOL_TYPES):
        return None
    return run_search(turn, turn.last_user_text.strip()[:1000] or "?")


def _scripted(spec: WebSearchSpec, turn: Turn) -> list[dict[str, Any]]:
    return run_search(turn, spec.query or turn.last_user_text.strip()[:1000] or "?", spec.text)


DEFAULT_RULES.append(_default)
register_kind("web_search", _scripted, WebSearchSpec)
ITEM_EVENTS["web_search_call"] = call_events("web_search_call")
ADDED_FORMS["web_search_call"] = lambda item: {**item, "status": "in_progress"}
