"""The citations in a response's text, as ``steps.X.citations``: one place for every
annotation kind the hosted tools produce.

Each citation is a dict with ``type`` and the cited ``text`` (the span of the answer it
supports), in the order they appear:

- ``url_citation`` (web search) -> ``{type: url, url, title, text, start_index, end_index}``;
  ``text`` is the answer between the two indexes;
- ``file_citation`` (file search) -> ``{type: file, file_id, filename, text, index}``; the
  annotation marks a point, so ``text`` is the answer from the start of that line (or
  the previous citation on it) up to ``index``;
- ``container_file_citation`` (code interpreter) -> ``{type: container_file,
  container_id, file_id, filename, text, start_index, end_index}``.

Other annotations (``file_path``) are not citations and are left out.
"""

from __future__ import annotations

from typing import Any


def _span(text: str, start: Any, end: Any) -> str:
    if isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= len(text):
        return text[start:end]
    return ""


def _before(text: str, index: Any, floor: int) -> str:
    if not isinstance(index, int) or not 0 <= index <= len(text):
        return ""
    start = max(floor, text.rfind("\n", 0, index) + 1)
    return text[start:index].strip()


def _of_part(text: str, annotations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    floor = 0
    for ann in annotations:
        kind = ann.get("type")
        if kind == "url_citation":
            start, end = ann.get("start_index"), ann.get("end_index")
            out.append({"type": "url", "url": ann.get("url"), "title": ann.get("title"),
                        "text": _span(text, start, end), "start_index": start, "end_index": end})
        elif kind == "file_citation":
            index = ann.get("index")
            out.append({"type": "file", "file_id": ann.get("file_id"), "filename": ann.get("filename"),
                        "text": _before(text, index, floor if isinstance(index, int) and floor <= index else 0),
                        "index": index})
            if isinstance(index, int):
                floor = index
        elif kind == "container_file_citation":
            start, end = ann.get("start_index"), ann.get("end_index")
            out.append({"type": "container_file", "container_id": ann.get("container_id"),
                        "file_id": ann.get("file_id"), "filename": ann.get("filename"),
                        "text": _span(text, start, end), "start_index": start, "end_index": end})
    return out


def citations(response: dict[str, Any]) -> list[dict[str, Any]]:
    """Every citation in the response's ``output_text`` parts (module docstring)."""
    out: list[dict[str, Any]] = []
    for item in response.get("output") or []:
        if item.get("type") != "message":
            continue
        for part in item.get("content") or []:
            if isinstance(part, dict) and part.get("type") == "output_text":
                out.extend(_of_part(part.get("text") or "", part.get("annotations") or []))
    return out
