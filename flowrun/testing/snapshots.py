"""``flowrun test --update``: rewrite failed ``equals`` snapshots with the actual values.

Only the text of each ``equals`` value is replaced (by its JSON, which is YAML), so the
rest of the file - comments, layout, quoting - stays exactly as written."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from .checks import Failure


def _value_node(root: Any, path: tuple[Any, ...]) -> Any:
    node = root
    for part in path:
        if node is None:
            return None
        if node.id == "mapping":
            node = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif node.id == "sequence" and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return None
    return node


def update_file(path: Path, failures: list[Failure]) -> int:
    """Set every failed ``equals`` in ``path`` to its actual value; returns how many."""
    from ruamel.yaml import YAML

    todo = [f for f in failures if f.path and f.path[-1] == "equals"]
    if not todo:
        return 0
    text = path.read_text(encoding="utf-8")
    root = YAML(typ="rt").compose(io.StringIO(text))
    spans: list[tuple[int, int, str]] = []
    for f in todo:
        node = _value_node(root, f.path)
        if node is None or node.start_mark is None or node.end_mark is None:
            continue
        spans.append((node.start_mark.index, node.end_mark.index,
                      json.dumps(f.actual, ensure_ascii=False, default=str)))
    for start, end, new in sorted(spans, reverse=True):
        text = text[:start] + new + text[end:]
    if spans:
        path.write_text(text, encoding="utf-8")
    return len(spans)
