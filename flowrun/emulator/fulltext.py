"""Full-text search for the emulator's hosted search tools: chunking, an SQLite FTS5
index ranked by bm25, and the passage of a chunk that best answers a query.

Used by :mod:`.vector_stores` (file search) and :mod:`.web_search`. Everything is the
standard library (``sqlite3`` with FTS5, the ``porter unicode61`` tokenizer).

* **Chunks.** :func:`chunk_text` splits a text into windows of at most
  ``max_tokens`` tokens that overlap by ``overlap`` tokens (the static chunking strategy
  of the vector store API; ``auto`` is 800 / 400). A token here is a run of
  non-space characters; a chunk is the exact slice of the text from its first token to
  its last, so formatting survives.
* **Queries.** :func:`query_terms` keeps the words of a query (lower case, no stop
  words unless nothing else is left); the FTS5 query is their quoted ``OR``, so a chunk
  matches when it has any of them and bm25 decides the order (rare words weigh more).
* **Scores** (in ``[0, 1]``, as the API's ``score`` must be): half the share of the
  query's words the chunk has, half its bm25 relative to the best chunk (:func:`ranked`).
"""
from __future__ import annotations

import re
import sqlite3
import threading
from dataclasses import dataclass
from typing import Iterable

_TOKEN = re.compile(r"\S+")
_WORD = re.compile(r"\w+", re.UNICODE)
_BLOCK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
STOP_WORDS = frozenset("""
a about an and any are as at be by can do does for from how i if in into is it its me my
of on or our should so that the their them there these they this to was we what when where
which who why will with you your
""".split())


def chunk_text(text: str, max_tokens: int = 800, overlap: int = 400) -> list[str]:
    """Overlapping windows of ``text`` (module docstring); an empty text has none."""
    spans = [m.span() for m in _TOKEN.finditer(text)]
    if not spans:
        return []
    step = max(1, max_tokens - overlap)
    out = []
    for start in range(0, len(spans), step):
        window = spans[start:start + max_tokens]
        out.append(text[window[0][0]:window[-1][1]])
        if start + max_tokens >= len(spans):
            break
    return out


def query_terms(query: str) -> list[str]:
    """The words of ``query`` that count for matching (module docstring)."""
    words = [w.lower() for w in _WORD.findall(query)]
    kept = [w for w in words if w not in STOP_WORDS] or words
    return list(dict.fromkeys(kept))


def fts_query(terms: Iterable[str]) -> str:
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def ranked(rows: list[tuple], matched: dict[int, int], terms: list[str]) -> list["Hit"]:
    """Hits with their scores, best first: half the share of the query's terms in the
    chunk (``matched``: rowid -> terms it has, title included), half its bm25 relative
    to the best match; ties keep bm25's order."""
    top = max((-row[6] for row in rows), default=0.0)
    hits = []
    for rowid, scope, doc, seq, title, body, rank in rows:
        relative = (-rank / top) if top > 0 else 0.0
        share = matched.get(rowid, 0) / len(terms) if terms else 0.0
        score = round(0.5 * share + 0.5 * max(0.0, relative), 4)
        hits.append(Hit(scope, doc, int(seq), title, body, min(1.0, score)))
    return sorted(hits, key=lambda h: -h.score)


def _stem(word: str) -> str:
    return word.lower()[:5]


def _paragraphs(text: str) -> list[tuple[bool, list[str]]]:
    """``(is_heading, sentences)`` per paragraph; a Markdown heading line is its own."""
    out: list[tuple[bool, list[str]]] = []
    for block in _BLOCK.split(text):
        lines: list[str] = []
        for line in block.splitlines() + ["#"]:
            if line.lstrip().startswith("#"):
                if lines:
                    joined = " ".join(" ".join(lines).split())
                    out.append((False, [s for s in _SENTENCE_END.split(joined) if _WORD.search(s)]))
                    lines = []
                heading = line.strip().lstrip("#").strip()
                if heading:
                    out.append((True, [heading]))
            else:
                lines.append(line.strip().lstrip(">*-").strip() if line.strip()[:1] in ">*-" else line)
    return out


def best_passage(text: str, terms: list[str], limit: int = 320) -> str:
    """The sentence of ``text`` sharing the most words with ``terms`` (headings only when
    nothing else does; the first on a tie) and the sentences after it in its paragraph
    while they fit in ``limit`` characters; a lone sentence longer than that is cut at a
    word boundary."""
    wanted = {_stem(t) for t in terms}
    best: tuple[int, int] = (-1, -1)
    where: tuple[list[str], int] = ([], 0)
    for heading, sentences in _paragraphs(text):
        for n, sentence in enumerate(sentences):
            key = (len(wanted & {_stem(w) for w in _WORD.findall(sentence)}), 0 if heading else 1)
            if key > best:
                best, where = key, (sentences, n)
    sentences, n = where
    if not sentences:
        return ""
    passage = sentences[n]
    for more in sentences[n + 1:]:
        if len(passage) + 1 + len(more) > limit:
            break
        passage += " " + more
    if len(passage) > limit:
        passage = passage[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "..."
    return passage


@dataclass
class Hit:
    scope: str  # a vector store id, or the web corpus
    doc: str  # a file id, or a page URL
    seq: int  # the chunk's number in its document
    title: str
    text: str
    score: float


class FullTextIndex:
    """An in-memory FTS5 table of chunks ``(title, body)`` with their scope, document and
    number; thread-safe. The title weighs twice the body in bm25."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute("CREATE VIRTUAL TABLE chunks USING fts5(title, body, scope UNINDEXED, "
                         "doc UNINDEXED, seq UNINDEXED, tokenize='porter unicode61')")

    def add(self, scope: str, doc: str, chunks: list[str], title: str = "") -> None:
        with self._lock, self._db:
            self._db.executemany("INSERT INTO chunks(title, body, scope, doc, seq) VALUES (?, ?, ?, ?, ?)",
                                 [(title, c, scope, doc, n) for n, c in enumerate(chunks)])

    def remove(self, scope: str, doc: str | None = None) -> None:
        with self._lock, self._db:
            if doc is None:
                self._db.execute("DELETE FROM chunks WHERE scope = ?", (scope,))
            else:
                self._db.execute("DELETE FROM chunks WHERE scope = ? AND doc = ?", (scope, doc))

    def clear(self) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM chunks")

    def search(self, terms: list[str], scopes: list[str]) -> list[Hit]:
        """Every chunk in ``scopes`` matching any of ``terms``, best first."""
        if not terms or not scopes:
            return []
        marks = ",".join("?" * len(scopes))
        sql = (f"SELECT rowid, scope, doc, seq, title, body, bm25(chunks, 2.0, 1.0) AS rank FROM chunks "
               f"WHERE chunks MATCH ? AND scope IN ({marks}) ORDER BY rank, doc, seq")
        each = f"SELECT rowid FROM chunks WHERE chunks MATCH ? AND scope IN ({marks})"
        matched: dict[int, int] = {}
        with self._lock:
            rows = self._db.execute(sql, (fts_query(terms), *scopes)).fetchall()
            for term in terms:  # the same tokenizer decides which terms a chunk has
                for (rowid,) in self._db.execute(each, (fts_query([term]), *scopes)):
                    matched[rowid] = matched.get(rowid, 0) + 1
        return ranked(rows, matched, terms)


# --------------------------------------------------------------------------- documents


class UnsupportedDocument(ValueError):
    """The bytes are not text the index can read (binary, or a PDF without pypdf)."""


class _HTMLText:
    """Text of an HTML page (scripts and styles dropped) and its ``<title>``."""

    def __init__(self, html: str) -> None:
        from html.parser import HTMLParser

        parts: list[str] = []
        title: list[str] = []
        skip = {"script", "style", "template", "noscript"}
        state = {"skip": 0, "title": False}
        blocks = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section",
                  "article", "header", "footer", "pre", "blockquote"}

        class Parser(HTMLParser):
            def handle_starttag(self, tag: str, attrs: list) -> None:
                if tag in skip:
                    state["skip"] += 1
                elif tag == "title":
                    state["title"] = True
                elif tag in blocks:
                    parts.append("\n")

            def handle_endtag(self, tag: str) -> None:
                if tag in skip and state["skip"]:
                    state["skip"] -= 1
                elif tag == "title":
                    state["title"] = False
                elif tag in blocks:
                    parts.append("\n")

            def handle_data(self, data: str) -> None:
                if state["title"]:
                    title.append(data)
                elif not state["skip"]:
                    parts.append(data)

        parser = Parser(convert_charrefs=True)
        parser.feed(html)
        parser.close()
        lines = (" ".join(line.split()) for line in "".join(parts).splitlines())
        self.text = "\n".join(line for line in lines if line)
        self.title = " ".join("".join(title).split())


def html_text(html: str) -> tuple[str, str]:
    """``(text, title)`` of an HTML page."""
    page = _HTMLText(html)
    return page.text, page.title


def document_text(data: bytes, filename: str) -> str:
    """The searchable text of an uploaded file: PDFs through pypdf, HTML without its
    tags, any other UTF-8 text as it is. Raises :class:`UnsupportedDocument`."""
    if data.startswith(b"%PDF"):
        try:
            import io

            from pypdf import PdfReader
        except ImportError:
            raise UnsupportedDocument("PDF files need pypdf on the emulator (pip install 'flowrun[media]')") from None
        try:
            reader = PdfReader(io.BytesIO(data))
            return "\n".join(page.extract_text() or "" for page in reader.pages)
        except Exception as exc:
            raise UnsupportedDocument(f"the PDF cannot be read: {exc}") from None
    if b"\x00" in data:
        raise UnsupportedDocument(f"{filename} is a binary file; file search reads text, Markdown, HTML and PDF")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnsupportedDocument(f"{filename} is not UTF-8 text") from None
    if filename.lower().endswith((".html", ".htm")):
        return html_text(text)[0]
    return text


def compose(lead: str, passages: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """An answer: ``lead``, then each passage as its own paragraph; returns the text and
    each passage's ``(start, end)`` character span in it (for citation annotations)."""
    text, spans = lead, []
    for passage in passages:
        text += "\n\n"
        spans.append((len(text), len(text) + len(passage)))
        text += passage
    return text, spans
